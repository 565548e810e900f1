"""Restarting (or upgrading) the hub under steady ingestion refuses nothing: gunicorn's USR2
starts a new master with new workers on the same listening socket, then TERM stops the old
master gracefully; HUP replaces the workers under the same master (README, "Restarts and
upgrades"). Clients open a new connection per request,
as Snakemake 7/8 do, so every request meets whichever processes are up at that moment."""

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
CLIENTS = 3
AFTER_RESTART = 40  # requests each client still sends once the new master runs alone
MAX_REQUESTS = 3000  # per client, whatever the machine's speed


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def wait_for(condition, what, attempts=600):
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Client(threading.Thread):
    """Sends events one after another, each on a new connection, until told the restart is
    over and ``AFTER_RESTART`` more have been answered."""

    def __init__(self, url, number, restarted):
        super().__init__(daemon=True)
        self.url, self.number, self.restarted = url, number, restarted
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.sent = 0

    def send(self):
        if self.sent % 2:
            workflow_id = f"restartnf{self.number:05d}"
            return requests.put(
                f"{self.url}/trace/{workflow_id}/progress", json={"tasks": []}, timeout=30
            )
        message = {"level": "progress", "done": self.sent, "total": MAX_REQUESTS}
        return requests.post(
            f"{self.url}/update_workflow_status",
            data={"id": f"restartsm{self.number:05d}", "msg": json.dumps(message)},
            timeout=30,
        )

    def run(self):
        after = 0
        while self.sent < MAX_REQUESTS and after < AFTER_RESTART:
            try:
                self.statuses[self.send().status_code] += 1
            except requests.RequestException as error:
                self.errors.append(f"{type(error).__name__}: {error}")
            self.sent += 1
            if self.restarted.is_set():
                after += 1


def gunicorn_hub(tmp_path, pidfile):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    return LiveHub(
        url,
        tmp_path / "hub.log",
        command=[
            str(BIN / "gunicorn"),
            "-c",
            "python:panoptes.gunicorn_conf",
            "--pid",
            str(pidfile),
            "panoptes:create_app()",
        ],
        env={
            "PANOPTES_DATABASE_URL": url,
            "PANOPTES_BIND": "127.0.0.1:{port}",
            "PANOPTES_WORKERS": "2",
            "PANOPTES_THREADS": "4",
        },
    ).start(timeout=60)


def during_ingestion(hub, procedure):
    """Run ``procedure()`` while clients send; every client error and status."""
    restarted = threading.Event()
    clients = [Client(hub.url, number, restarted) for number in range(CLIENTS)]
    try:
        for client in clients:
            client.start()
        wait_for(lambda: all(client.sent >= 20 for client in clients), "steady ingestion")
        procedure()
        restarted.set()
        for client in clients:
            client.join(timeout=300)
        assert not any(client.is_alive() for client in clients)
    finally:
        restarted.set()
    assert all(client.sent > AFTER_RESTART for client in clients)
    errors = [error for client in clients for error in client.errors]
    return errors, sum((client.statuses for client in clients), Counter())


def test_usr2_then_term_restarts_during_ingestion_with_nothing_refused(tmp_path):
    pidfile = tmp_path / "gunicorn.pid"
    hub = gunicorn_hub(tmp_path, pidfile)
    old_master = hub.process.pid
    masters = []

    def restart():
        # The procedure: USR2 to the master, wait for the new one's workers, TERM the old one.
        os.kill(old_master, signal.SIGUSR2)
        new_pidfile = Path(f"{pidfile}.2")
        wait_for(new_pidfile.exists, "the new master")
        new_master = int(new_pidfile.read_text())
        masters.append(new_master)

        def new_workers_up():
            text = hub.log_path.read_text()
            return text.count("Booting worker") >= 4 and f"({new_master})" in text

        wait_for(new_workers_up, "the new workers")
        os.kill(old_master, signal.SIGTERM)
        assert hub.process.wait(timeout=60) == 0  # the old master stopped gracefully
        wait_for(lambda: pidfile.exists() and int(pidfile.read_text()) == new_master, "promotion")

    try:
        errors, statuses = during_ingestion(hub, restart)
    finally:
        for master in masters:
            if alive(master):
                os.kill(master, signal.SIGTERM)
                wait_for(lambda master=master: not alive(master), "the new master to stop")
        hub.stop()
    assert errors == [], errors[:5]
    assert set(statuses) == {200}, statuses
    assert "Master has been promoted" in hub.log_path.read_text()


def test_hup_replaces_the_workers_during_ingestion_with_nothing_refused(tmp_path):
    hub = gunicorn_hub(tmp_path, tmp_path / "gunicorn.pid")

    def reload():
        os.kill(hub.process.pid, signal.SIGHUP)
        wait_for(lambda: hub.log_path.read_text().count("Booting worker") >= 4, "new workers")
        wait_for(
            lambda: hub.log_path.read_text().count("Worker exiting") >= 2, "old workers to exit"
        )

    try:
        errors, statuses = during_ingestion(hub, reload)
    finally:
        code = hub.stop(timeout=40)
    assert errors == [], errors[:5]
    assert set(statuses) == {200}, statuses
    assert code == 0
