"""gunicorn with 4 workers, 8 concurrent writers for several seconds: no non-2xx answer and
exactly the rows the writers were told were stored. On SQLite and on PostgreSQL."""

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub, wait_projected

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
DURATION_S = 5.0
MAX_REQUESTS_PER_WRITER = 2000  # bounded whatever the machine's speed


def gunicorn_hub(tmp_path, database_url):
    return LiveHub(
        database_url,
        tmp_path / "gunicorn.log",
        command=[
            str(BIN / "gunicorn"),
            "-c",
            "python:panoptes.gunicorn_conf",
            "panoptes:create_app()",
        ],
        env={
            "PANOPTES_DATABASE_URL": database_url,
            "PANOPTES_BIND": "127.0.0.1:{port}",
            "PANOPTES_WORKERS": "4",
            "PANOPTES_THREADS": "4",
            "PANOPTES_SECRET_KEY": "test-only-" + "y" * 32,
        },
    )


class Writer(threading.Thread):
    """Sends one kind of traffic until the deadline; remembers what was acknowledged."""

    def __init__(self, url, kind, deadline, shared_id=None, offset=0):
        super().__init__(daemon=True)
        self.url, self.kind, self.deadline = url, kind, deadline
        self.shared_id, self.offset = shared_id, offset
        self.statuses: Counter[int] = Counter()
        self.expected: dict[str, int] = {}  # workflow id -> number of Done jobs
        self.session = requests.Session()

    def ok(self, response):
        self.statuses[response.status_code] += 1
        return response.ok

    def running(self, sent):
        return time.monotonic() < self.deadline and sent < MAX_REQUESTS_PER_WRITER

    def snakemake_update(self, workflow_id, msg):
        return self.ok(
            self.session.post(
                f"{self.url}/update_workflow_status",
                data={"msg": json.dumps(msg), "timestamp": "t", "id": workflow_id},
                timeout=30,
            )
        )

    def run(self):
        try:
            getattr(self, f"_{self.kind}")()
        finally:
            self.session.close()

    def _snakemake(self):
        sent = 0
        workflow_id = (
            self.shared_id
            or self.session.get(f"{self.url}/create_workflow", timeout=30).json()["id"]
        )
        jobid = self.offset
        while self.running(sent):
            jobid += 1
            if self.snakemake_update(
                workflow_id, {"level": "job_info", "jobid": jobid, "name": "r"}
            ) and self.snakemake_update(workflow_id, {"level": "job_finished", "jobid": jobid}):
                self.expected[workflow_id] = self.expected.get(workflow_id, 0) + 1
            sent += 2

    def _tower(self):
        sent = 0
        while self.running(sent):
            response = self.session.post(
                f"{self.url}/trace/create", json={"runName": "c"}, timeout=30
            )
            self.ok(response)
            workflow_id = response.json()["workflowId"]
            tasks = [
                {"taskId": i, "status": "COMPLETED", "process": "p", "exit": 0}
                for i in range(1, 11)
            ]
            if self.ok(
                self.session.put(
                    f"{self.url}/trace/{workflow_id}/progress", json={"tasks": tasks}, timeout=30
                )
            ):
                self.expected[workflow_id] = 10
            sent += 2

    def _batch(self):
        sent = 0
        workflow_id = self.session.get(f"{self.url}/create_workflow", timeout=30).json()["id"]
        jobid = 0
        while self.running(sent):
            events = []
            for _ in range(20):
                jobid += 1
                events += [
                    {"event_id": f"{jobid}a", "level": "job_info", "jobid": jobid, "name": "b"},
                    {"event_id": f"{jobid}b", "level": "job_finished", "jobid": jobid},
                ]
            body = {"workflow_id": workflow_id, "events": events}
            # every batch twice: the second copy must be absorbed
            first = self.session.post(f"{self.url}/api/snakemake/events", json=body, timeout=30)
            again = self.session.post(f"{self.url}/api/snakemake/events", json=body, timeout=30)
            if self.ok(first) and self.ok(again):
                assert first.json()["accepted"] + again.json()["accepted"] == 40
                self.expected[workflow_id] = jobid
            sent += 2


def hammer(hub):
    shared = requests.get(f"{hub.url}/create_workflow", timeout=30).json()["id"]
    deadline = time.monotonic() + DURATION_S
    writers = [
        Writer(hub.url, "snakemake", deadline),
        Writer(hub.url, "snakemake", deadline),
        Writer(hub.url, "snakemake", deadline, shared_id=shared, offset=0),
        Writer(hub.url, "snakemake", deadline, shared_id=shared, offset=1_000_000),
        Writer(hub.url, "tower", deadline),
        Writer(hub.url, "tower", deadline),
        Writer(hub.url, "batch", deadline),
        Writer(hub.url, "batch", deadline),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=DURATION_S + 120)
        assert not writer.is_alive()

    statuses = sum((w.statuses for w in writers), Counter())
    assert set(statuses) == {200}, statuses
    expected: Counter[str] = Counter()
    for writer in writers:
        expected.update(writer.expected)
    wait_projected(hub.url)
    for workflow_id, done in expected.items():
        run = requests.get(f"{hub.url}/api/workflow/{workflow_id}", timeout=30).json()["workflow"]
        jobs = requests.get(f"{hub.url}/api/workflow/{workflow_id}/jobs?limit=1", timeout=30).json()
        assert (jobs["count"], run["jobs_done"], run["jobs_running"]) == (done, done, 0), (
            workflow_id
        )
    assert expected[shared] > 0
    return sum(statuses.values())


def test_concurrent_writers_on_sqlite(tmp_path):
    hub = gunicorn_hub(tmp_path, f"sqlite:///{tmp_path / 'busy.db'}").start(timeout=60)
    try:
        assert hammer(hub) > 100
    finally:
        hub.stop(timeout=40)
    assert "database is locked" not in hub.log_path.read_text()


@pytest.mark.postgresql
def test_concurrent_writers_on_postgresql(tmp_path, postgres_url):
    hub = gunicorn_hub(tmp_path, postgres_url).start(timeout=60)
    try:
        assert hammer(hub) > 100
    finally:
        hub.stop(timeout=40)


def first_contact_race(hub):
    """Eight clients report the same unknown run at once (a hub restarted on an empty
    database): one row, no error."""
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def report(task_id):
        with requests.Session() as session:
            barrier.wait()
            body = {"tasks": [{"taskId": task_id, "status": "RUNNING", "process": "p"}]}
            statuses.append(
                session.put(f"{hub.url}/trace/RaceRun1/progress", json=body, timeout=30).status_code
            )

    threads = [threading.Thread(target=report, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 8
    wait_projected(hub.url)
    listing = requests.get(f"{hub.url}/api/workflows", timeout=30).json()
    assert listing["count"] == 1
    assert requests.get(f"{hub.url}/api/workflow/RaceRun1/jobs", timeout=30).json()["count"] == 8


def test_first_contact_race_on_sqlite(tmp_path):
    hub = gunicorn_hub(tmp_path, f"sqlite:///{tmp_path / 'race.db'}").start(timeout=60)
    try:
        first_contact_race(hub)
    finally:
        hub.stop(timeout=40)


@pytest.mark.postgresql
def test_first_contact_race_on_postgresql(tmp_path, postgres_url):
    hub = gunicorn_hub(tmp_path, postgres_url).start(timeout=60)
    try:
        first_contact_race(hub)
    finally:
        hub.stop(timeout=40)
