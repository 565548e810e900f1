"""necroflow runs reported by panoptes_necroflow to a real hub process on loopback, read back
through the hub's own API: Done, Error with the failed call's exit code and log tail,
Cached on an unchanged re-run, and nothing missing after the hub is SIGKILLed mid-run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LiveHub, wait_projected

pytestmark = pytest.mark.e2e

necroflow = pytest.importorskip("necroflow", reason="necroflow is not installed")
panoptes_necroflow = pytest.importorskip("panoptes_necroflow")

from tests.necroflow.pipeline import FAIL_EXIT_CODE, FAIL_MESSAGE, build_dag  # noqa: E402

SAMPLES = ["A", "B", "C"]
STEPS = {"make_reference": 1, "fetch_reads": len(SAMPLES), "align": len(SAMPLES)}
CALLS = sum(STEPS.values())
# Enough for a loaded machine; reporting stops waiting as soon as everything is delivered.
CLOSE_TIMEOUT = 60.0
PIPELINE = Path(__file__).resolve().parents[2] / "example_workflow" / "necroflow" / "pipeline.py"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def workflow(url: str, run_id: str) -> dict[str, Any]:
    wait_projected(url)
    response = requests.get(f"{url}/api/workflow/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["workflow"]
    return found


def jobs(url: str, run_id: str) -> dict[str, dict[str, Any]]:
    wait_projected(url)
    response = requests.get(f"{url}/api/workflow/{run_id}/jobs?limit=1000", timeout=10)
    assert response.status_code == 200, response.text
    return {job["jobid"]: job for job in response.json()["jobs"]}


def report(hub: LiveHub, run_id: str, nodes: Path, **kwargs: Any) -> Any:
    dag = build_dag(nodes, SAMPLES, kwargs.pop("fail_sample", None))
    return panoptes_necroflow.run(
        dag, hub.url, name=run_id, run_id=run_id, close_timeout=CLOSE_TIMEOUT, **kwargs
    )


def assert_no_spool(directory: Path) -> None:
    assert not list((directory / ".panoptes" / "spool").glob("*.jsonl"))


def test_a_successful_run_is_done_with_every_rule_call_done(
    live_hub: LiveHub, tmp_path: Path
) -> None:
    result = report(live_hub, "three-samples", tmp_path / "nodes")
    assert len(result) == CALLS

    run = workflow(live_hub.url, "three-samples")
    assert run["status"] == "Done"
    assert run["engine"] == "necroflow"
    assert run["name"] == "three-samples"
    shown = jobs(live_hub.url, "three-samples")
    assert len(shown) == CALLS
    assert {job["status"] for job in shown.values()} == {"Done"}
    # One reference for the three samples: the call necroflow de-duplicates is one job.
    assert Counter(job["name"] for job in shown.values()) == STEPS
    listed = requests.get(f"{live_hub.url}/api/workflows", timeout=10).json()["workflows"]
    assert [(w["id"], w["engine"]) for w in listed] == [("three-samples", "necroflow")]
    assert_no_spool(tmp_path)


def test_a_failing_rule_with_keep_going_ends_in_error_with_its_exit_code_and_log_tail(
    live_hub: LiveHub, tmp_path: Path
) -> None:
    with pytest.raises(ExceptionGroup):
        report(live_hub, "one-fails", tmp_path / "nodes", fail_sample="B", keep_going=True)

    run = workflow(live_hub.url, "one-fails")
    assert run["status"] == "Error"
    shown = jobs(live_hub.url, "one-fails")
    [failed] = [job for job in shown.values() if job["status"] == "Error"]
    assert failed["name"] == "align"
    assert failed["exit_code"] == FAIL_EXIT_CODE
    assert FAIL_MESSAGE in json.dumps(failed)  # the tail of its job.log is shown
    done = Counter(job["name"] for job in shown.values() if job["status"] == "Done")
    assert done == {"make_reference": 1, "fetch_reads": 3, "align": 2}
    assert_no_spool(tmp_path)


def test_running_again_unchanged_shows_the_calls_cached(live_hub: LiveHub, tmp_path: Path) -> None:
    report(live_hub, "first", tmp_path / "nodes")
    report(live_hub, "again", tmp_path / "nodes")

    run = workflow(live_hub.url, "again")
    assert run["status"] == "Done"
    shown = jobs(live_hub.url, "again")
    assert len(shown) == CALLS
    assert {job["status"] for job in shown.values()} == {"Cached"}
    assert set(shown) == set(jobs(live_hub.url, "first"))


def test_hub_killed_and_restarted_mid_run_misses_nothing(live_hub: LiveHub, tmp_path: Path) -> None:
    samples = ["A", "B", "C", "D", "E", "F"]
    total = 1 + 2 * len(samples)
    (tmp_path / "pipeline.py").write_text(PIPELINE.read_text())
    (tmp_path / "job.toml").write_text(
        '".pipeline" = "pipeline.py:samples_pipeline"\n'
        f"samples = {json.dumps(samples)}\nstep_seconds = 1\n"
    )
    wrapper = Path(sys.executable).with_name("panoptes-necroflow")
    run = subprocess.Popen(
        [
            str(wrapper), "--panoptes-address", live_hub.url, "--panoptes-run-id", "killed",
            "--panoptes-close-timeout", str(CLOSE_TIMEOUT),
            "run", "job.toml", "--nodes-dir", "nodes", "--results-dir", "results", "-c", "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            try:
                if workflow(live_hub.url, "killed")["jobs_done"] >= 3:
                    break
            except (requests.RequestException, AssertionError):
                pass  # not there yet
            assert run.poll() is None, "the run ended before the hub was killed"
            time.sleep(0.1)
        else:
            pytest.fail("no finished rule call reached the hub")
        live_hub.kill()
        time.sleep(1.0)  # rule calls go on finishing while nothing listens
        live_hub.start()
        assert run.poll() is None, "the run ended before the hub came back: make it longer"
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, output

    shown = workflow(live_hub.url, "killed")
    assert shown["status"] == "Done"
    calls = jobs(live_hub.url, "killed")
    assert len(calls) == total
    assert {job["status"] for job in calls.values()} == {"Done"}
    assert Counter(job["name"] for job in calls.values()) == {
        "make_reference": 1,
        "fetch_reads": len(samples),
        "align": len(samples),
    }
    assert_no_spool(tmp_path)
