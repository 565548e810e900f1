"""Launches through REST on a hub process whose in-process worker runs real Snakemake 9 and the
Nextflow stand-in (tests/bin/nextflow): the launch's life, its log, and its run on the hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher.helpers import (
    NEXTFLOW_EXAMPLE,
    SNAKEMAKE_EXAMPLE,
    LaunchHub,
    queue_toml,
    start_hub,
)

pytestmark = pytest.mark.e2e

SAMPLES = ["A", "B", "C", "D"]
JOBS = len(SAMPLES) * 3 + 2  # fetch, trim, count per sample; report; all


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LaunchHub]:
    launch_hub = start_hub(tmp_path, queue_toml(work_dir=str(tmp_path / "work")))
    yield launch_hub
    launch_hub.hub.stop()


def seen_statuses(hub: LaunchHub, launch_id: str) -> list[str]:
    """The statuses a launch goes through, as polled until it ends."""
    seen: list[str] = []

    def record(launch: dict[str, object]) -> bool:
        status = str(launch["status"])
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in {"succeeded", "failed", "cancelled", "lost"}

    hub.wait(launch_id, record)
    return seen


def test_snakemake_launch_succeeds_and_its_run_is_linked(hub: LaunchHub) -> None:
    launch = hub.launch(
        engine="snakemake",
        pipeline=str(SNAKEMAKE_EXAMPLE),
        run_name="launched-example",
        params={"step_seconds": 0.3},
    )
    assert launch["status"] == "queued" and launch["workflow_id"]
    assert launch["requested_by"] == "launcher"
    statuses = seen_statuses(hub, launch["id"])
    assert statuses[0] in {"queued", "starting", "running"}
    assert "running" in statuses and statuses[-1] == "succeeded", statuses
    done = hub.get(launch["id"])
    assert done["exit_code"] == 0 and done["started_at"] and done["finished_at"]
    run = hub.run(launch["workflow_id"])
    assert run["id"] == launch["workflow_id"]
    assert run["status"] == "Done" and run["name"] == "launched-example"
    jobs = hub.jobs(launch["workflow_id"])
    assert len(jobs) == JOBS and {job["status"] for job in jobs} == {"Done"}
    log = hub.log(launch["id"])
    assert "steps (100%) done" in log and "exit code 0" in log


def test_failing_snakemake_launch_ends_failed_with_its_run_in_error(hub: LaunchHub) -> None:
    launch = hub.launch(
        engine="snakemake", pipeline=str(SNAKEMAKE_EXAMPLE), params={"fail_sample": "B"}
    )
    done = hub.wait(launch["id"])
    assert done["status"] == "failed" and done["exit_code"] not in (None, 0)
    assert hub.run(launch["workflow_id"])["status"] == "Error"
    failed = [job for job in hub.jobs(launch["workflow_id"]) if job["status"] == "Error"]
    assert [job["name"] for job in failed] == ["trim"]


def test_nextflow_launch_reports_through_the_tower_protocol(hub: LaunchHub, tmp_path: Path):
    work = tmp_path / "nf-run"
    launch = hub.launch(
        engine="nextflow",
        pipeline=str(NEXTFLOW_EXAMPLE),
        revision="main",
        profile="test",
        run_name="tower_launch",
        params={"greeting": "hi"},
        config="process.cpus = 2\n",
        work_dir=str(work),
        args=["--extra", "value"],
    )
    done = hub.wait(launch["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    run = hub.run(launch["workflow_id"])
    assert run["engine"] == "nextflow" and run["status"] == "Done"
    assert run["name"] == "tower_launch" and run["params"] == {"greeting": "hi"}
    given = json.loads((work / ".nextflow-standin.json").read_text())
    params_file = work / ".panoptes" / launch["id"] / "params.json"
    config_file = work / ".panoptes" / launch["id"] / "launch.config"
    assert given["argv"] == [
        "run", str(NEXTFLOW_EXAMPLE), "-with-tower", hub.url, "-r", "main",
        "-profile", "test", "-name", "tower_launch", "-params-file", str(params_file),
        "-c", str(config_file), "--extra", "value",
    ]  # fmt: skip
    assert given["env"]["TOWER_WORKFLOW_ID"] == launch["workflow_id"]
    assert given["env"]["TOWER_ACCESS_TOKEN"].startswith("pnl_")
    assert given["params"] == {"greeting": "hi"} and given["config"] == "process.cpus = 2\n"


def test_failing_nextflow_launch_ends_failed(hub: LaunchHub) -> None:
    launch = hub.launch(engine="nextflow", pipeline="hello", params={"fail": True})
    done = hub.wait(launch["id"])
    assert done["status"] == "failed" and done["exit_code"] == 1
    run = hub.run(launch["workflow_id"])
    assert run["status"] == "Error"


def test_launches_report_with_their_own_token_on_a_closed_hub(tmp_path: Path) -> None:
    static = "static-token-of-a-closed-hub"
    closed = start_hub(
        tmp_path,
        queue_toml(work_dir=str(tmp_path / "work")),
        env={"PANOPTES_TOKEN": static},
    )
    try:
        closed.http.headers["Authorization"] = f"Bearer {static}"
        snakemake = closed.launch(engine="snakemake", pipeline=str(SNAKEMAKE_EXAMPLE))
        nextflow = closed.launch(engine="nextflow", pipeline="hello")
        for launch in (snakemake, nextflow):
            assert closed.wait(launch["id"])["status"] == "succeeded"
            assert closed.run(launch["workflow_id"])["status"] == "Done"
    finally:
        closed.hub.stop()
