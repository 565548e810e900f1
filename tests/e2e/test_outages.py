"""The hub through database outages: PostgreSQL stopped with ``-m immediate`` for 10 s and
started again, SQLite on a full filesystem, and the hub killed while its journal holds
events. Clients get 2xx (stored in the database or the journal) or 503 with Retry-After,
never anything else; nothing acknowledged is lost, nothing is stored twice."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from panoptes.config import database_uri
from panoptes.models import Job, RawEvent, Workflow
from tests.conftest import LiveHub, free_port, wait_projected

pytestmark = pytest.mark.e2e

OUTAGE_S = 10.0


class OwnPostgres:
    """A PostgreSQL server of this test's own (never the shared one), on a free port, that
    the test may stop and start."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries or shutil.which("runuser") is None or os.geteuid() != 0:
            reason = "needs Debian's PostgreSQL binaries and root (to run them as postgres)"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        self.bin = Path(binaries[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="panoptes-own-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                          "postgres", "--no-sync")  # fmt: skip

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.dir / "server.log"), "-o", options, "-w", "start")  # fmt: skip

    def stop_immediately(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")  # fmt: skip

    def remove(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
             "-m", "immediate", "stop"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.remove()


class Sender(threading.Thread):
    """Sends a bounded number of events, one request each, and keeps every answer."""

    def __init__(self, url: str, kind: str, requests_to_send: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.url, self.kind = url, kind
        self.count, self.pause = requests_to_send, pause
        self.statuses: list[int] = []
        self.acked: list[int] = []  # job or task numbers acknowledged with a 2xx
        self.retry_after_missing = 0
        self.workflow_id = ""

    def run(self) -> None:
        with requests.Session() as session:
            if self.kind == "tower":
                created = session.post(f"{self.url}/trace/create", json={"runName": "outage"})
                self.workflow_id = created.json()["workflowId"]
            else:
                self.workflow_id = session.get(f"{self.url}/create_workflow").json()["id"]
            for number in range(1, self.count + 1):
                answer = self._send(session, number)
                self.statuses.append(answer.status_code)
                if 200 <= answer.status_code < 300:
                    self.acked.append(number)
                elif answer.status_code == 503 and "Retry-After" not in answer.headers:
                    self.retry_after_missing += 1
                time.sleep(self.pause)

    def _send(self, session: requests.Session, number: int) -> requests.Response:
        if self.kind == "tower":
            task = {"taskId": number, "status": "COMPLETED", "process": "p", "exit": 0}
            return session.put(
                f"{self.url}/trace/{self.workflow_id}/progress", json={"tasks": [task]}, timeout=30
            )
        message = f'{{"level": "job_info", "jobid": {number}, "name": "step"}}'
        return session.post(
            f"{self.url}/update_workflow_status",
            data={"msg": message, "id": self.workflow_id, "timestamp": "t"},
            timeout=30,
        )


def journal_events(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    match = re.search(r"^panoptes_journal_events (\S+)$", text, re.M)
    assert match, text[-2000:]
    return float(match.group(1))


def wait_until_replayed(url: str, timeout: float = 120.0) -> None:
    """Until the journal is empty and every event is projected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if journal_events(url) == 0:
                wait_projected(url, timeout=max(deadline - time.monotonic(), 1))
                return
        except (requests.RequestException, AssertionError):
            pass  # the database is still coming back
        assert time.monotonic() < deadline, "the journal was not replayed"
        time.sleep(0.2)


def stored(database_url: str, sender: Sender, kind: str) -> tuple[int, set[int]]:
    """Raw events of ``kind`` for the sender's run, and its job numbers."""
    engine = create_engine(database_uri(database_url))
    try:
        with Session(engine) as session:
            raw = session.scalar(
                select(func.count())
                .select_from(RawEvent)
                .where(RawEvent.workflow_id == sender.workflow_id, RawEvent.kind == kind)
            )
            keys = session.scalars(
                select(Job.job_key)
                .join(Workflow, Job.workflow_pk == Workflow.pk)
                .where(Workflow.id == sender.workflow_id)
            ).all()
        return int(raw or 0), {int(key) for key in keys}
    finally:
        engine.dispose()


def assert_nothing_lost_nothing_doubled(database_url: str, senders: list[Sender]) -> None:
    for sender in senders:
        assert set(sender.statuses) <= {200, 503}, sender.statuses
        assert sender.retry_after_missing == 0
        kind = "progress" if sender.kind == "tower" else "update"
        raw, jobs = stored(database_url, sender, kind)
        assert raw == len(sender.acked), (sender.kind, raw, len(sender.acked))
        assert jobs == set(sender.acked), sender.kind


def test_postgresql_stopped_for_ten_seconds_aborts_no_client(tmp_path, own_postgres):
    hub = LiveHub(
        own_postgres.url,
        tmp_path / "hub.log",
        env={"PANOPTES_JOURNAL_DIR": str(tmp_path / "journal")},
    ).start()
    try:
        senders = [Sender(hub.url, kind, 120, 0.15) for kind in ("tower", "snakemake")]
        for sender in senders:
            sender.start()
        time.sleep(3)
        own_postgres.stop_immediately()
        time.sleep(OUTAGE_S)
        own_postgres.start()
        for sender in senders:
            sender.join(120)
            assert not sender.is_alive()
        wait_until_replayed(hub.url)
        assert_nothing_lost_nothing_doubled(own_postgres.url, senders)
        assert all(len(sender.acked) == sender.count for sender in senders)  # no 503 needed
    finally:
        hub.stop()


def test_a_hub_killed_while_its_journal_holds_events_loses_none(tmp_path, own_postgres):
    journal = tmp_path / "journal"
    hub = LiveHub(
        own_postgres.url, tmp_path / "hub.log", env={"PANOPTES_JOURNAL_DIR": str(journal)}
    ).start()
    senders = [Sender(hub.url, kind, 20, 0.0) for kind in ("tower", "snakemake")]
    try:
        for sender in senders:
            sender.count = 0
            sender.run()  # creates the runs while the database is there
            sender.count = 20
        own_postgres.stop_immediately()
        for sender in senders:
            for number in range(1, sender.count + 1):
                with requests.Session() as session:
                    answer = sender._send(session, number)
                assert answer.status_code == 200
                sender.acked.append(number)
                sender.statuses.append(answer.status_code)
        assert list(journal.glob("journal-*.jsonl"))
    finally:
        hub.kill()
    own_postgres.start()
    restarted = LiveHub(
        own_postgres.url, tmp_path / "hub.log", env={"PANOPTES_JOURNAL_DIR": str(journal)}
    ).start()
    try:
        wait_until_replayed(restarted.url)
        assert_nothing_lost_nothing_doubled(own_postgres.url, senders)
        assert not [p for p in journal.glob("journal-*.jsonl") if p.stat().st_size]
    finally:
        restarted.stop()


@pytest.fixture
def small_filesystem() -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (skipped where mounting is not allowed)."""
    mount = Path(tempfile.mkdtemp(prefix="panoptes-full-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    shutil.rmtree(mount, ignore_errors=True)


def test_sqlite_on_a_full_filesystem_aborts_no_client(tmp_path, small_filesystem):
    database = f"sqlite:///{small_filesystem / 'hub.db'}"
    hub = LiveHub(
        database, tmp_path / "hub.log", env={"PANOPTES_JOURNAL_DIR": str(tmp_path / "journal")}
    ).start()
    filler = small_filesystem / "filler"
    try:
        senders = [Sender(hub.url, kind, 0, 0.0) for kind in ("tower", "snakemake")]
        for sender in senders:
            sender.run()
            sender.count = 30
        # Fill the filesystem to the last byte.
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        with requests.Session() as session:
            for sender in senders:
                for number in range(1, sender.count + 1):
                    answer = sender._send(session, number)
                    sender.statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        sender.acked.append(number)
        assert journal_events(hub.url) > 0  # kept aside while the disk is full
        filler.unlink()
        wait_until_replayed(hub.url)
        assert_nothing_lost_nothing_doubled(database, senders)
        assert all(len(sender.acked) == sender.count for sender in senders)
    finally:
        hub.stop()
