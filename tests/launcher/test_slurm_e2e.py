"""The SLURM executor against a real single-node SLURM (started by ``tests/launcher/slurm.py``
when it is not running; skipped with the reason where it cannot be)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher.helpers import (
    SNAKEMAKE_EXAMPLE,
    LaunchHub,
    launch_processes,
    queue_toml,
    start_hub,
)
from tests.launcher.slurm import PARTITION, ensure_slurm, stop_slurm

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    reason = ensure_slurm()
    if reason:
        stop_slurm()
        pytest.skip(f"no SLURM: {reason}")
    yield
    stop_slurm()


@pytest.fixture
def hub(slurm: None, tmp_path: Path) -> Iterator[LaunchHub]:
    launch_hub = start_hub(
        tmp_path,
        queue_toml(
            "hpc",
            executor="slurm",
            work_dir=str(tmp_path / "work"),
            slurm_partition=PARTITION,
            slurm_time="00:10:00",
            slurm_cpus=1,
            cores=1,
            run_scripts=True,
        ),
    )
    yield launch_hub
    launch_hub.hub.stop()


def test_snakemake_head_job_runs_under_slurm(hub: LaunchHub) -> None:
    launch = hub.launch(engine="snakemake", pipeline=str(SNAKEMAKE_EXAMPLE), run_name="on-slurm")
    done = hub.wait(launch["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0, hub.log(launch["id"])
    assert done["executor"] == "slurm" and done["slurm_job_id"]
    assert "steps (100%) done" in hub.log(launch["id"])  # SLURM's output file, in the database
    run = hub.run(launch["workflow_id"])
    assert run["status"] == "Done" and run["name"] == "on-slurm"


def test_a_failing_slurm_launch_keeps_its_exit_code(hub: LaunchHub) -> None:
    launch = hub.launch(engine="nextflow", pipeline="hello", params={"fail": True})
    done = hub.wait(launch["id"])
    assert done["status"] == "failed" and done["exit_code"] == 1
    assert hub.run(launch["workflow_id"])["status"] == "Error"


def test_pre_and_post_run_scripts_run_in_the_slurm_job(hub: LaunchHub, tmp_path: Path) -> None:
    work = tmp_path / "scripted"
    launch = hub.launch(
        engine="nextflow",
        pipeline="hello",
        work_dir=str(work),
        pre_run_script='echo "$SLURM_JOB_ID" > pre',
        post_run_script='test -e .nextflow-standin.json && echo "$PANOPTES_EXIT_CODE" > post',
    )
    done = hub.wait(launch["id"])
    assert done["status"] == "succeeded", hub.log(launch["id"])
    assert (work / "pre").read_text().strip() == done["slurm_job_id"]
    assert (work / "post").read_text().strip() == "0"


def test_cancel_scancels_the_head_job(hub: LaunchHub) -> None:
    launch = hub.launch(engine="nextflow", pipeline="hello", params={"seconds": 120})
    hub.wait(launch["id"], lambda current: "sayHello running" in hub.log(current["id"]))
    hub.http.post(f"{hub.url}/api/launches/{launch['id']}/cancel", timeout=10)
    done = hub.wait(launch["id"])
    assert done["status"] == "cancelled"
    assert launch_processes(launch["id"]) == []
    assert hub.run(launch["workflow_id"])["status"] == "Cancelled"
