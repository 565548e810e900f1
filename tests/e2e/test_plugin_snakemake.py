"""Real Snakemake 9 runs of the example workflow, reported by our logger plugin to a live hub.

Each test copies ``example_workflow/snakemake`` to a temporary directory, runs the
``snakemake`` of the interpreter running pytest with ``--logger panoptes`` against a hub
process, and checks what the hub's read API then holds.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LiveHub, wait_projected


def _require(module: str, install: str) -> None:
    """Skip these tests without ``module``, or fail where it is required (CI sets
    PANOPTES_TEST_REQUIRE_SNAKEMAKE=1)."""
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed: pip install {install}"
    if os.environ.get("PANOPTES_TEST_REQUIRE_SNAKEMAKE"):
        pytest.fail(reason + " (required: PANOPTES_TEST_REQUIRE_SNAKEMAKE is set)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


_require("snakemake", "-e './snakemake_logger_plugin[test]' (Snakemake 9.27.1)")
_require("snakemake_logger_plugin_panoptes", "-e ./snakemake_logger_plugin")

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "example_workflow" / "snakemake"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SAMPLES = ["A", "B", "C", "D"]
RULES_PER_SAMPLE = ["fetch", "trim", "count"]
JOBS = len(SAMPLES) * len(RULES_PER_SAMPLE) + 2  # + report + all


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh copy of the example workflow."""
    target = tmp_path / "workflow"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".snakemake", "data", "logs"))
    return target


def snakemake_command(hub_url: str, name: str, *args: str, cores: int = 4) -> list[str]:
    # Options go after the targets-free command and before --logger (which takes several
    # values), so no option is mistaken for a logger name.
    return [
        str(SNAKEMAKE), "--cores", str(cores), *args,
        "--logger", "panoptes",
        "--logger-panoptes-address", hub_url,
        "--logger-panoptes-name", name,
    ]  # fmt: skip


def run_snakemake(
    workdir: Path, hub_url: str, name: str, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        snakemake_command(hub_url, name, *args),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def workflow_named(hub_url: str, name: str) -> dict[str, Any]:
    wait_projected(hub_url)
    listing = requests.get(f"{hub_url}/api/workflows", timeout=10).json()
    matches = [workflow for workflow in listing["workflows"] if workflow["name"] == name]
    assert len(matches) == 1, listing
    return matches[0]


def jobs_of(hub_url: str, workflow_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The hub's jobs by (rule, sample); the gather jobs have sample ''."""
    wait_projected(hub_url)
    answer = requests.get(
        f"{hub_url}/api/workflow/{workflow_id}/jobs", params={"limit": 1000}, timeout=10
    ).json()
    assert answer["count"] == len(answer["jobs"])
    jobs = {}
    for job in answer["jobs"]:
        key = (job["name"], (job.get("wildcards") or {}).get("sample", ""))
        assert key not in jobs, f"job {key} listed twice"
        jobs[key] = job
    return jobs


def command_of(job: dict[str, Any]) -> str:
    # The hub names this field "shell_command" (the brief said "command").
    return str(job.get("command") or job.get("shell_command") or "")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_no_spool(workdir: Path) -> None:
    leftovers = list((workdir / ".snakemake" / "panoptes").glob("*.jsonl"))
    assert leftovers == [], "undelivered events were spooled"


@pytest.mark.parametrize("quiet", [[], ["--quiet", "all"], ["-q"]], ids=["plain", "quiet-all", "q"])
def test_success_run(live_hub: LiveHub, workdir: Path, quiet: list[str]) -> None:
    result = run_snakemake(workdir, live_hub.url, "success", *quiet)
    assert result.returncode == 0, result.stderr

    workflow = workflow_named(live_hub.url, "success")
    assert workflow["status"] == "Done"
    assert workflow["engine"] == "snakemake"
    assert (workflow["jobs_done"], workflow["jobs_total"], workflow["jobs_failed"]) == (
        JOBS, JOBS, 0,
    )  # fmt: skip
    jobs = jobs_of(live_hub.url, workflow["id"])
    assert len(jobs) == JOBS
    assert {job["status"] for job in jobs.values()} == {"Done"}
    assert {job["attempt"] for job in jobs.values()} == {1}
    trim = jobs[("trim", "B")]
    assert trim["log"] == ["logs/trim/B.log"]
    assert "sed" in command_of(trim)
    assert trim["wildcards"] == {"sample": "B"}
    assert_no_spool(workdir)


def test_failing_run_with_keep_going(live_hub: LiveHub, workdir: Path) -> None:
    result = run_snakemake(
        workdir, live_hub.url, "failing", "--keep-going", "--config", "fail_sample=B"
    )
    assert result.returncode != 0

    workflow = workflow_named(live_hub.url, "failing")
    assert workflow["status"] == "Error"
    assert workflow["jobs_failed"] == 1
    assert "did not complete successfully" in (workflow["error_message"] or "")
    jobs = jobs_of(live_hub.url, workflow["id"])
    failed = jobs[("trim", "B")]
    assert failed["status"] == "Error"
    assert failed["exit_code"] == 3  # from the job's own error text, which the plugin joins
    # Everything that could run without B's trimmed file ran and is Done; B's count, the
    # report and `all` never started.
    done = {key for key, job in jobs.items() if job["status"] == "Done"}
    expected = {(rule, sample) for rule in RULES_PER_SAMPLE for sample in SAMPLES} - {
        ("trim", "B"), ("count", "B"),
    }  # fmt: skip
    assert done == expected
    assert set(jobs) == expected | {("trim", "B")}
    assert_no_spool(workdir)


def test_job_failing_once_then_succeeding_on_retry(live_hub: LiveHub, workdir: Path) -> None:
    result = run_snakemake(
        workdir, live_hub.url, "retry", "--retries", "1", "--config", "flaky_sample=C"
    )
    assert result.returncode == 0, result.stderr
    assert (workdir / "flaky" / "C.failed-once").exists()  # it did fail once

    workflow = workflow_named(live_hub.url, "retry")
    assert workflow["status"] == "Done"
    assert (workflow["jobs_done"], workflow["jobs_total"]) == (JOBS, JOBS)
    jobs = jobs_of(live_hub.url, workflow["id"])
    assert {job["status"] for job in jobs.values()} == {"Done"}
    assert jobs[("count", "C")]["attempt"] == 2
    assert {job["attempt"] for key, job in jobs.items() if key != ("count", "C")} == {1}


def test_hub_killed_and_restarted_mid_run(live_hub: LiveHub, workdir: Path) -> None:
    """SIGKILL the hub part-way; once it is back, it ends up with every job, correct."""
    samples = ["A", "B", "C", "D", "E", "F"]
    total = len(samples) * len(RULES_PER_SAMPLE) + 2
    run = subprocess.Popen(
        snakemake_command(
            live_hub.url, "fault", "--config", f"samples=[{','.join(samples)}]",
            "step_seconds=1", cores=2,
        ),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:

        def some_jobs_done() -> bool:
            try:
                return workflow_named(live_hub.url, "fault")["jobs_done"] >= 3
            except (requests.RequestException, AssertionError):
                return False

        wait_until(some_jobs_done, 60, "the first finished jobs on the hub")
        live_hub.kill()
        time.sleep(1.0)  # events keep coming while nothing listens
        live_hub.start()
        assert run.poll() is None, "the run ended before the hub came back: make it longer"
        output, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, output
    assert "[panoptes]" in output  # the outage was told, once, on stderr

    workflow = workflow_named(live_hub.url, "fault")
    assert workflow["status"] == "Done"
    assert (workflow["jobs_done"], workflow["jobs_total"]) == (total, total)
    jobs = jobs_of(live_hub.url, workflow["id"])
    assert len(jobs) == total
    assert {job["status"] for job in jobs.values()} == {"Done"}
    assert_no_spool(workdir)


def test_unreachable_hub_neither_fails_nor_slows_the_run(tmp_path: Path, workdir: Path) -> None:
    """With nothing listening, the run succeeds at once; its events wait in the spool file
    and the command the plugin prints delivers them once a hub is there."""
    hub = LiveHub(f"sqlite:///{tmp_path / 'later.db'}", tmp_path / "later.log")
    started = time.monotonic()
    result = run_snakemake(workdir, hub.url, "offline")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 30
    [spool] = (workdir / ".snakemake" / "panoptes").glob("*.jsonl")
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith(f"-m panoptes_hub_client send-spool {spool} --address {hub.url}")
    hint = last_line.split("or now: ")[1]

    hub.start()
    try:
        # The hint is runnable as printed, where Snakemake ran.
        sent = subprocess.run(
            shlex.split(hint), capture_output=True, text=True, timeout=60, check=False
        )
        assert sent.returncode == 0, sent.stderr
        assert f"{spool}: " in sent.stdout and "event(s) delivered" in sent.stdout
        workflow = workflow_named(hub.url, "offline")
        assert workflow["status"] == "Done"
        assert workflow["jobs_done"] == JOBS
        assert not spool.exists()
    finally:
        hub.stop()


def test_dry_run_sends_nothing(live_hub: LiveHub, workdir: Path) -> None:
    result = run_snakemake(workdir, live_hub.url, "dry", "--dry-run")
    assert result.returncode == 0, result.stderr
    live_hub.projected()
    listing = requests.get(f"{live_hub.url}/api/workflows", timeout=10).json()
    assert listing["count"] == 0
    assert not (workdir / ".snakemake" / "panoptes").exists()
