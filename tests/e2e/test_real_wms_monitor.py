"""Real Snakemake 7.31.1, 7.32.4 and 8.30.0 with ``--wms-monitor`` against a live hub.

Recorded traffic (test_live_replay.py) shows what one run sent once; these tests run the real
clients, so their quirks are exercised as they are today: 7.32 sends raw JSON without a
Content-Type, 8.x sends every event twice and a ``PUT /api/workflow/<id>`` with ``{}``, and any
401/403/404/500 from the hub ends the run (docs: shared/protocols/SNAKEMAKE.md, sections 2 and 4).

Each Snakemake release lives in a cached venv (tests/e2e/snakemake_venvs.py); the tests skip when
the package index cannot be reached and ``PANOPTES_TEST_REQUIRE_SNAKEMAKE`` is not set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LiveHub
from tests.e2e.snakemake_venvs import (
    REQUIRE_ENV,
    SNAKEMAKE_VERSIONS,
    SnakemakeVenv,
    Unavailable,
    VenvBuilder,
)

pytestmark = pytest.mark.e2e

WORKFLOW = Path(__file__).parents[1] / "data" / "wms_workflow"
SAMPLES = ("a", "b", "c")
FAIL_SAMPLE = "b"
# The Snakefile's DAG: one ``process`` job per sample, a ``gather``, the target rule ``all``.
EXPECTED_RULES = Counter({"process": len(SAMPLES), "gather": 1, "all": 1})
EXPECTED_JOBS = sum(EXPECTED_RULES.values())
SNAKEMAKE_TIMEOUT = 180.0
# Identifies this module's own API reads in the hub's access log, apart from Snakemake's.
TEST_AGENT = "panoptes-e2e-real-wms-monitor"

# What Snakemake 7/8 print when the hub answers badly (``check_response``, service-info) and
# what a client crash looks like; none of it may appear, even in runs that Snakemake survives.
CLIENT_COMPLAINTS = re.compile(
    r"response code \d+ is not recognized|Problem with server|There was a server error"
    r"|endpoint was not found|Authorization is required|Permission is denied"
    r"|is not in 'running' mode|Traceback"
)
# One gunicorn access-log line: request line, status, then the user agent last.
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) .*"(?P<agent>[^"]*)"$'
)


# -- Snakemake -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnakemakeRun:
    """One finished ``snakemake`` process."""

    version: str
    args: list[str]
    workdir: Path
    returncode: int
    output: str  # stdout and stderr interleaved, as a user sees them

    def describe(self) -> str:
        """The run for an assertion message: command, exit code, the end of its output."""
        tail = "\n".join(self.output.splitlines()[-40:])
        return (
            f"snakemake {self.version} {' '.join(self.args)} (in {self.workdir}) "
            f"exited {self.returncode}; output ends:\n{tail}"
        )


def copy_workflow(tmp_path: Path) -> Path:
    """A fresh copy of tests/data/wms_workflow (never the results of an earlier run)."""
    target = tmp_path / "workflow"
    shutil.copytree(WORKFLOW, target, ignore=shutil.ignore_patterns(".snakemake", "results"))
    return target


def run_snakemake(
    venv: SnakemakeVenv, workdir: Path, args: list[str], token: str | None = None
) -> SnakemakeRun:
    """Runs ``snakemake ARGS`` in ``workdir`` to the end (Snakemake's own console script)."""
    env = dict(os.environ)
    # Nothing from this test process may leak into the client: no token unless asked for, no
    # import paths of the hub's venv; Snakemake's caches go to the test's directory.
    for name in ("WMS_MONITOR_TOKEN", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    if token is not None:
        env["WMS_MONITOR_TOKEN"] = token
    env["XDG_CACHE_HOME"] = str(workdir.parent / "xdg-cache")
    result = subprocess.run(
        [str(venv.snakemake), *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT,
        check=False,
    )
    return SnakemakeRun(venv.version, args, workdir, result.returncode, result.stdout)


def monitor_args(hub: LiveHub, *extra: str, snakefile: bool = True) -> list[str]:
    """A one-core monitored run; ``-s`` is needed by 7.x, which crash without it."""
    return [
        *(["-s", "Snakefile"] if snakefile else []),
        "--cores",
        "1",
        "--wms-monitor",
        hub.url,
        *extra,
    ]


# -- the hub ---------------------------------------------------------------------------------


class HubApi:
    """Reads the hub's JSON API the way the UI does."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.session = requests.Session()
        self.session.headers["User-Agent"] = TEST_AGENT

    def get(self, path: str) -> Any:
        self.hub.projected()
        response = self.session.get(f"{self.hub.url}{path}", timeout=10)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def only_workflow(self) -> dict[str, Any]:
        """The one run on this hub, once it has left Running (ingest is synchronous today;
        the short wait keeps the tests valid if it ever is not)."""
        deadline = time.monotonic() + 5
        while True:
            listing = self.get("/api/workflows")
            settled = listing["count"] == 1 and listing["workflows"][0]["status"] != "Running"
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listing["count"] == 1 and len(listing["workflows"]) == 1, listing
        workflow: dict[str, Any] = listing["workflows"][0]
        return workflow

    def jobs(self, workflow_id: str) -> list[dict[str, Any]]:
        listing = self.get(f"/api/workflow/{workflow_id}/jobs?limit=1000")
        assert listing["count"] == len(listing["jobs"]), listing
        jobs: list[dict[str, Any]] = listing["jobs"]
        return jobs

    def close(self) -> None:
        self.session.close()


def client_requests(hub: LiveHub) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request the hub logged from anyone but this module."""
    found = []
    for line in hub.log_path.read_text(errors="replace").splitlines():
        match = ACCESS_LINE.search(line)
        if match and match["agent"] != TEST_AGENT:
            found.append((match["method"], match["path"], int(match["status"])))
    return found


def assert_hub_answered_ok(hub: LiveHub, run: SnakemakeRun) -> None:
    """Snakemake said nothing about the hub, and the hub answered every request with 200."""
    complaints = CLIENT_COMPLAINTS.findall(run.output)
    assert not complaints, f"{complaints}\n{run.describe()}"
    bad = [request for request in client_requests(hub) if request[2] != 200]
    assert not bad, f"the hub answered Snakemake with errors: {bad}"


def assert_workflow_recorded(workflow: dict[str, Any], run: SnakemakeRun) -> None:
    """A Snakemake run with the command line and working directory the client sent."""
    assert workflow["engine"] == "snakemake", workflow
    # Snakemake 7/8 send "snakemake " + the arguments as given (generate_parser_metadata).
    assert workflow["command_line"] == "snakemake " + " ".join(run.args), workflow
    assert workflow["work_dir"] == str(run.workdir.resolve()), workflow


def assert_no_duplicate_jobs(jobs: list[dict[str, Any]]) -> None:
    """One row per Snakemake job, on its first attempt (8.x sends every event twice)."""
    jobids = Counter(job["jobid"] for job in jobs)
    assert all(count == 1 for count in jobids.values()), jobids
    assert {job["attempt"] for job in jobs} == {1}, jobs


def assert_all_jobs_done(jobs: list[dict[str, Any]]) -> None:
    """The five jobs of the Snakefile, all Done, each with its rule, command and files."""
    assert_no_duplicate_jobs(jobs)
    assert Counter(job["name"] for job in jobs) == EXPECTED_RULES, jobs
    assert {job["status"] for job in jobs} == {"Done"}, jobs
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_rule.setdefault(job["name"], []).append(job)
    for job in by_rule["process"]:
        sample = job["wildcards"]["sample"]
        assert job["output"] == [f"results/{sample}.txt"], job
        assert f"echo {sample} > results/{sample}.txt" in job["shell_command"], job
    assert {job["wildcards"]["sample"] for job in by_rule["process"]} == set(SAMPLES), jobs
    (gather,) = by_rule["gather"]
    inputs = [f"results/{sample}.txt" for sample in SAMPLES]
    assert gather["input"] == inputs and gather["output"] == ["results/summary.txt"], gather
    assert gather["shell_command"] == f"cat {' '.join(inputs)} > results/summary.txt", gather
    # The target rule has no shell command; anything else there would be a misattribution.
    (target,) = by_rule["all"]
    assert target["shell_command"] is None and target["input"] == ["results/summary.txt"], target


def assert_successful_run(hub: LiveHub, api: HubApi, run: SnakemakeRun) -> dict[str, Any]:
    """Everything a successful monitored run must leave behind; returns the workflow."""
    assert run.returncode == 0, run.describe()
    assert_hub_answered_ok(hub, run)
    workflow = api.only_workflow()
    assert_workflow_recorded(workflow, run)
    assert workflow["status"] == "Done", workflow
    assert workflow["jobs_done"] == workflow["jobs_total"] == EXPECTED_JOBS, workflow
    assert workflow["jobs_failed"] == 0, workflow
    assert_all_jobs_done(api.jobs(workflow["id"]))
    return workflow


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def venv_builder(request: pytest.FixtureRequest) -> Iterator[VenvBuilder]:
    """Builds, in parallel, the venvs of the versions the selected tests use (not all three
    when ``-k`` picks one)."""
    wanted = [
        item.callspec.params.get("version")
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and "snakemake" in item.fixturenames
        and hasattr(item, "callspec")  # only parametrized tests have one
    ]
    builder = VenvBuilder(version for version in wanted if version in SNAKEMAKE_VERSIONS)
    yield builder
    builder.close()


@pytest.fixture
def snakemake(version: str, venv_builder: VenvBuilder) -> SnakemakeVenv:
    """The venv of the test's ``version``: skips when the index is unreachable, fails when a
    build breaks for any other reason (or always, under PANOPTES_TEST_REQUIRE_SNAKEMAKE=1)."""
    venv = venv_builder.get(version)
    if isinstance(venv, Unavailable):
        if venv.offline and os.environ.get(REQUIRE_ENV) != "1":
            pytest.skip(venv.reason)
        pytest.fail(venv.reason, pytrace=False)
    return venv


@pytest.fixture
def api(live_hub: LiveHub) -> Iterator[HubApi]:
    client = HubApi(live_hub)
    yield client
    client.close()


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SNAKEMAKE_VERSIONS)
def test_a_successful_run_is_done_with_every_job(
    version: str, snakemake: SnakemakeVenv, live_hub: LiveHub, api: HubApi, tmp_path: Path
) -> None:
    workdir = copy_workflow(tmp_path)
    run = run_snakemake(snakemake, workdir, monitor_args(live_hub))
    assert_successful_run(live_hub, api, run)
    if version.startswith("8."):
        # 8.x PUTs {} right after create; it must have reached the hub (and got its 200).
        assert any(method == "PUT" for method, _, _ in client_requests(live_hub))


@pytest.mark.parametrize("version", SNAKEMAKE_VERSIONS)
def test_a_named_run_keeps_its_name(
    version: str, snakemake: SnakemakeVenv, live_hub: LiveHub, api: HubApi, tmp_path: Path
) -> None:
    """``--wms-monitor-arg name=my-run``: 7.x put it on the create query; 8.x also PUT
    ``{"name": "my-run"}`` to rename, and need no ``-s`` (7.x crash without it)."""
    workdir = copy_workflow(tmp_path)
    args = monitor_args(
        live_hub, "--wms-monitor-arg", "name=my-run", snakefile=not version.startswith("8.")
    )
    workflow = assert_successful_run(live_hub, api, run_snakemake(snakemake, workdir, args))
    assert workflow["name"] == "my-run", workflow
    if version.startswith("8."):
        renames = [r for r in client_requests(live_hub) if r[0] == "PUT"]
        assert renames == [("PUT", f"/api/workflow/{workflow['id']}", 200)], renames


@pytest.mark.parametrize("version", SNAKEMAKE_VERSIONS)
def test_a_failed_job_makes_the_run_an_error(
    version: str, snakemake: SnakemakeVenv, live_hub: LiveHub, api: HubApi, tmp_path: Path
) -> None:
    workdir = copy_workflow(tmp_path)
    run = run_snakemake(
        snakemake, workdir, monitor_args(live_hub, "--config", f"fail_sample={FAIL_SAMPLE}")
    )
    # The job's failure, not the hub's: a run aborted by a bad hub answer also exits 1 once jobs
    # run (255 at start-up), but says so (CLIENT_COMPLAINTS) and lacks Snakemake's own lines.
    assert run.returncode == 1, run.describe()
    assert "Error in rule process:" in run.output, run.describe()
    assert "Exiting because a job execution failed" in run.output, run.describe()
    assert_hub_answered_ok(live_hub, run)

    workflow = api.only_workflow()
    assert_workflow_recorded(workflow, run)
    assert workflow["status"] == "Error", workflow
    assert workflow["jobs_failed"] == 1 and workflow["jobs_total"] == EXPECTED_JOBS, workflow

    jobs = api.jobs(workflow["id"])
    assert_no_duplicate_jobs(jobs)
    failed = [job for job in jobs if job["status"] == "Error"]
    assert len(failed) == 1, jobs
    assert failed[0]["name"] == "process", failed
    assert failed[0]["wildcards"] == {"sample": FAIL_SAMPLE}, failed
    assert "exit 3" in failed[0]["shell_command"], failed
    # With one core, Snakemake stops after the failure: the others that started finished, and
    # the gather and target jobs never started.
    others = [job for job in jobs if job is not failed[0]]
    assert all(job["status"] == "Done" and job["name"] == "process" for job in others), jobs
    assert workflow["jobs_done"] == len(others), (workflow, jobs)


@pytest.mark.parametrize("version", SNAKEMAKE_VERSIONS)
def test_a_bearer_token_is_accepted(
    version: str, snakemake: SnakemakeVenv, live_hub: LiveHub, api: HubApi, tmp_path: Path
) -> None:
    """``WMS_MONITOR_TOKEN`` puts ``Authorization: Bearer`` on every request; a hub that
    refused it (401/403) would end the run."""
    workdir = copy_workflow(tmp_path)
    run = run_snakemake(snakemake, workdir, monitor_args(live_hub), token="sometoken")
    assert_successful_run(live_hub, api, run)
