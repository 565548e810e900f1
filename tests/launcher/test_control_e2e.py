"""Cancel, max_active, lost workers: the launcher's control of head jobs, on hub and worker
processes with real Snakemake and the Nextflow stand-in."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.launcher.helpers import (
    SNAKEMAKE_EXAMPLE,
    LaunchHub,
    Worker,
    launch_processes,
    queue_toml,
    start_hub,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LaunchHub]:
    """Two gunicorn processes: still one launch worker between them."""
    launch_hub = start_hub(
        tmp_path, queue_toml(work_dir=str(tmp_path / "work")), extra_args=["--workers", "2"]
    )
    yield launch_hub
    launch_hub.hub.stop()


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_cancelling_a_running_snakemake_launch_leaves_no_process(hub: LaunchHub) -> None:
    launch = hub.launch(
        engine="snakemake", pipeline=str(SNAKEMAKE_EXAMPLE), params={"step_seconds": 30}
    )
    hub.wait(launch["id"], lambda current: "rule fetch" in hub.log(current["id"]))
    running = hub.get(launch["id"])
    assert running["status"] == "running" and launch_processes(launch["id"])
    answer = hub.http.post(f"{hub.url}/api/launches/{launch['id']}/cancel", timeout=10)
    assert answer.status_code == 200 and answer.json()["launch"]["cancel_requested_at"]
    done = hub.wait(launch["id"])
    assert done["status"] == "cancelled"
    assert launch_processes(launch["id"]) == []
    assert hub.run(launch["workflow_id"])["status"] == "Cancelled"
    assert "cancel requested" in hub.log(launch["id"])


def test_cancelling_a_queued_launch_drops_it(hub: LaunchHub) -> None:
    first = hub.launch(engine="nextflow", pipeline="hello", params={"seconds": 30})
    second = hub.launch(engine="nextflow", pipeline="hello")
    hub.wait(first["id"], lambda launch: launch["status"] == "running")
    answer = hub.http.delete(f"{hub.url}/api/launches/{second['id']}", timeout=10)
    assert answer.json()["launch"]["status"] == "cancelled"
    hub.http.post(f"{hub.url}/api/launches/{first['id']}/cancel", timeout=10)
    assert hub.wait(first["id"])["status"] == "cancelled"
    dropped = hub.get(second["id"])
    assert dropped["status"] == "cancelled" and dropped["started_at"] is None


def test_max_active_one_runs_launches_one_after_another(hub: LaunchHub) -> None:
    ids = [
        hub.launch(engine="nextflow", pipeline="hello", params={"seconds": 1})["id"]
        for _ in range(3)
    ]
    done = [hub.wait(launch_id) for launch_id in ids]
    assert [launch["status"] for launch in done] == ["succeeded"] * 3
    ordered = sorted(done, key=lambda launch: at(launch["started_at"]))
    assert [launch["id"] for launch in ordered] == ids  # first queued, first run
    for before, after in itertools.pairwise(ordered):
        assert at(before["finished_at"]) <= at(after["started_at"])
    assert len({launch["worker"] for launch in done}) == 1  # the hub runs one worker


def test_a_worker_killed_mid_launch_leaves_the_launch_lost(tmp_path: Path) -> None:
    hub = start_hub(
        tmp_path,
        queue_toml(work_dir=str(tmp_path / "work")),
        env={"PANOPTES_LAUNCH_WORKER": "0"},
    )
    config = tmp_path / "panoptes.toml"
    first = Worker(hub.hub.database_url, config, hub.url, tmp_path / "worker1.log")
    second: Worker | None = None
    try:
        launch = hub.launch(engine="nextflow", pipeline="hello", params={"seconds": 120})
        running = hub.wait(launch["id"], lambda current: current["status"] == "running")
        assert launch_processes(launch["id"])
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        second = Worker(hub.hub.database_url, config, hub.url, tmp_path / "worker2.log")
        lost = hub.wait(launch["id"])
        assert lost["status"] == "lost" and running["worker"] in lost["error"]
        assert launch_processes(launch["id"]) == []
        # The head job was stopped by the worker that found it lost, and its run ended.
        assert hub.run(launch["workflow_id"])["status"] == "Cancelled"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        hub.hub.stop()


@pytest.mark.postgresql
def test_two_workers_on_postgresql_share_launches_within_max_active(
    tmp_path: Path, postgres_url: str
) -> None:
    record = tmp_path / "starts.txt"
    max_active = 2
    hub = start_hub(
        tmp_path,
        queue_toml(
            work_dir=str(tmp_path / "work"),
            max_active=max_active,
            env={"STANDIN_RECORD_FILE": str(record)},
        ),
        database_url=postgres_url,
        env={"PANOPTES_LAUNCH_WORKER": "0"},
    )
    config = tmp_path / "panoptes.toml"
    workers = [Worker(postgres_url, config, hub.url, tmp_path / f"worker{n}.log") for n in (1, 2)]
    try:
        ids = [
            hub.launch(engine="nextflow", pipeline="hello", params={"seconds": 0.5})["id"]
            for _ in range(8)
        ]
        done = [hub.wait(launch_id) for launch_id in ids]
    finally:
        for worker in workers:
            worker.stop()
        hub.hub.stop()
    assert [launch["status"] for launch in done] == ["succeeded"] * len(ids)
    starts = record.read_text().split()
    assert sorted(starts) == sorted(launch["workflow_id"] for launch in done)  # each once
    events = sorted(
        [(at(launch["started_at"]), 1) for launch in done]
        + [(at(launch["finished_at"]), -1) for launch in done]
    )
    running = peak = 0
    for _moment, change in events:
        running += change
        peak = max(peak, running)
    assert peak <= max_active
    assert all(launch["worker"] for launch in done)  # each names the worker that ran it
