"""SIGKILL the hub while four clients send Tower and Snakemake traffic, restart it on the same
database: every request that got a 2xx is there, nothing is half-written, and events re-sent
after the crash (as our plugin does) are absorbed without duplicates."""

import json
import threading
import time

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from panoptes.config import database_uri
from panoptes.models import Job, RawEvent, Workflow
from tests.conftest import LiveHub, wait_projected

pytestmark = pytest.mark.e2e

RUN_BEFORE_KILL_S = 2.0


class Client(threading.Thread):
    """Sends until the hub dies; keeps what was acknowledged."""

    def __init__(self, url, kind):
        super().__init__(daemon=True)
        self.url, self.kind = url, kind
        self.acked: dict[str, set[str]] = {}  # workflow id -> job keys acknowledged as Done
        self.pending_batch: dict | None = None  # sent, answer never seen
        self.sent_batches: list[dict] = []
        self.errors: list[str] = []

    def run(self):
        with requests.Session() as session:
            try:
                getattr(self, f"_{self.kind}")(session)
            except requests.RequestException:
                pass  # the hub was killed: refused, reset, or cut off mid-answer
            except Exception as error:
                self.errors.append(repr(error))

    def _ack(self, workflow_id, keys):
        self.acked.setdefault(workflow_id, set()).update(keys)

    def _tower(self, session):
        while True:
            created = session.post(
                f"{self.url}/trace/create", json={"runName": "crash"}, timeout=10
            )
            assert created.status_code == 200
            workflow_id = created.json()["workflowId"]
            assert session.put(
                f"{self.url}/trace/{workflow_id}/begin", json={"workflow": {}}, timeout=10
            ).ok
            self._ack(workflow_id, set())
            for start in range(1, 40, 5):
                keys = list(range(start, start + 5))
                tasks = [
                    {"taskId": k, "status": "COMPLETED", "process": "p", "exit": 0} for k in keys
                ]
                response = session.put(
                    f"{self.url}/trace/{workflow_id}/progress", json={"tasks": tasks}, timeout=10
                )
                assert response.status_code == 200
                self._ack(workflow_id, {str(k) for k in keys})

    def _snakemake(self, session):
        workflow_id = session.get(f"{self.url}/create_workflow", timeout=10).json()["id"]
        self._ack(workflow_id, set())
        jobid = 0
        while True:
            jobid += 1
            for msg in (
                {"level": "job_info", "jobid": jobid, "name": "r"},
                {"level": "job_finished", "jobid": jobid},
            ):
                response = session.post(
                    f"{self.url}/update_workflow_status",
                    data={"msg": json.dumps(msg), "timestamp": "t", "id": workflow_id},
                    timeout=10,
                )
                assert response.status_code == 200
            self._ack(workflow_id, {str(jobid)})

    def _batch(self, session):
        workflow_id = session.get(f"{self.url}/create_workflow", timeout=10).json()["id"]
        self._ack(workflow_id, set())
        jobid = 0
        while True:
            events = []
            for _ in range(25):
                jobid += 1
                events += [
                    {
                        "event_id": f"run:{jobid}:i",
                        "level": "job_info",
                        "jobid": jobid,
                        "name": "b",
                    },
                    {"event_id": f"run:{jobid}:f", "level": "job_finished", "jobid": jobid},
                ]
            batch = {"workflow_id": workflow_id, "events": events}
            self.pending_batch = batch
            response = session.post(f"{self.url}/api/snakemake/events", json=batch, timeout=10)
            assert response.status_code == 200
            self.pending_batch = None
            self.sent_batches.append(batch)
            self._ack(workflow_id, {str(e["jobid"]) for e in events})


def done_job_keys(session, url, workflow_id):
    """Every Done job of a run, page by page."""
    keys: set[str] = set()
    offset = 0
    wait_projected(url)
    while True:
        page = session.get(
            f"{url}/api/workflow/{workflow_id}/jobs",
            params={"status": "Done", "limit": 1000, "offset": offset},
            timeout=10,
        ).json()
        keys |= {job["jobid"] for job in page["jobs"]}
        offset += 1000
        if offset >= page["count"]:
            return keys


def check_consistency(database_url):
    """Counters equal the rows they count, for every run: no half-applied event."""
    engine = create_engine(database_uri(database_url))
    try:
        with Session(engine) as session:
            for workflow in session.scalars(select(Workflow)):
                by_status = dict(
                    session.execute(
                        select(Job.status, func.count())
                        .where(Job.workflow_pk == workflow.pk)
                        .group_by(Job.status)
                    ).all()
                )
                assert workflow.n_done == by_status.get("Done", 0), workflow.id
                assert workflow.n_running == by_status.get("Running", 0), workflow.id
                assert sum(by_status.values()) == sum(
                    getattr(workflow, f"n_{s}")
                    for s in (
                        "pending",
                        "submitted",
                        "running",
                        "done",
                        "error",
                        "cached",
                        "aborted",
                    )
                )
            duplicates = session.execute(
                select(RawEvent.workflow_id, RawEvent.dedupe_key, func.count())
                .where(RawEvent.dedupe_key.is_not(None))
                .group_by(RawEvent.workflow_id, RawEvent.dedupe_key)
                .having(func.count() > 1)
            ).all()
            assert duplicates == []
    finally:
        engine.dispose()


def crash_and_recover(tmp_path, database_url):
    hub = LiveHub(database_url, tmp_path / "hub.log", ["--threads", "8"]).start()
    clients = [Client(hub.url, kind) for kind in ("tower", "tower", "snakemake", "batch")]
    for client in clients:
        client.start()
    time.sleep(RUN_BEFORE_KILL_S)
    hub.kill()
    for client in clients:
        client.join(timeout=30)
        assert not client.is_alive()
        assert client.errors == []
    acked = sum(len(keys) for client in clients for keys in client.acked.values())
    assert acked > 20, "the clients did too little before the kill to prove anything"

    check_consistency(database_url)
    restarted = LiveHub(database_url, tmp_path / "hub.log").start()
    try:
        with requests.Session() as session:
            batcher = clients[3]
            # What the plugin does after a crash: re-send the batch in flight and the last one.
            for batch in [b for b in (batcher.pending_batch, *batcher.sent_batches[-1:]) if b]:
                response = session.post(
                    f"{restarted.url}/api/snakemake/events", json=batch, timeout=10
                )
                assert response.status_code == 200
                answer = response.json()
                assert answer["accepted"] + answer["duplicates"] == len(batch["events"])
                batcher._ack(batch["workflow_id"], {str(e["jobid"]) for e in batch["events"]})
            for client in clients:
                for workflow_id, keys in client.acked.items():
                    done = done_job_keys(session, restarted.url, workflow_id)
                    assert keys <= done, f"acknowledged but missing in {workflow_id}: {keys - done}"
    finally:
        restarted.stop()
    check_consistency(database_url)


def test_sigkill_during_traffic_on_sqlite(tmp_path):
    crash_and_recover(tmp_path, f"sqlite:///{tmp_path / 'crash.db'}")


@pytest.mark.postgresql
def test_sigkill_during_traffic_on_postgresql(tmp_path, postgres_url):
    crash_and_recover(tmp_path, postgres_url)


def kill_during_projection(tmp_path, database_url):
    """A backlog of stored events, then a hub whose projector works through it in small
    batches, killed half-way: each batch is all or nothing, and the next hub carries on."""
    runs, batches, per_batch = 10, 20, 50
    hub = LiveHub(
        database_url, tmp_path / "hub.log", env={"PANOPTES_PROJECTOR_THREAD": "0"}
    ).start()
    try:
        with requests.Session() as session:
            for run in range(runs):
                for batch in range(batches):
                    events = [
                        {
                            "event_id": f"{batch}-{i}-{level}",
                            "level": level,
                            "jobid": batch * per_batch + i,
                        }
                        for i in range(per_batch)
                        for level in ("job_info", "job_finished")
                    ]
                    answer = session.post(
                        f"{hub.url}/api/snakemake/events",
                        json={"workflow_id": f"backlog{run}", "events": events},
                        timeout=30,
                    )
                    assert answer.status_code == 200
            total = session.get(f"{hub.url}/api/log", timeout=10).json()["pending"]
    finally:
        hub.stop()
    assert total == runs * batches * per_batch * 2
    hub = LiveHub(
        database_url, tmp_path / "hub.log", env={"PANOPTES_PROJECTOR_BATCH_SIZE": "20"}
    ).start()
    pending = total
    for _ in range(2000):  # bounded: about 40 s
        pending = requests.get(f"{hub.url}/api/log", timeout=10).json()["pending"]
        if pending < total // 2:
            break
        time.sleep(0.02)
    hub.kill()
    assert 0 < pending < total, "the projector was not caught half-way"
    check_consistency(database_url)
    restarted = LiveHub(database_url, tmp_path / "hub.log").start()
    try:
        restarted.projected(timeout=120)
        with requests.Session() as session:
            for run in range(runs):
                done = done_job_keys(session, restarted.url, f"backlog{run}")
                assert len(done) == batches * per_batch
    finally:
        restarted.stop()
    check_consistency(database_url)


def test_sigkill_during_projection_on_sqlite(tmp_path):
    kill_during_projection(tmp_path, f"sqlite:///{tmp_path / 'backlog.db'}")


@pytest.mark.postgresql
def test_sigkill_during_projection_on_postgresql(tmp_path, postgres_url):
    kill_during_projection(tmp_path, postgres_url)
