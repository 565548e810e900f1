"""What a new user meets on real Snakemake 9 runs of the example workflow: counts that add up
to the plan, runs that end with no job left running, failures told with their logs.

Same set-up as ``test_plugin_snakemake.py``: a hub process, ``snakemake --logger panoptes``.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub, wait_projected
from tests.e2e.test_plugin_snakemake import (
    JOBS,
    jobs_of,
    run_snakemake,
    snakemake_command,
    wait_until,
    workdir,  # noqa: F401  (fixture)
    workflow_named,
)

pytestmark = pytest.mark.e2e


def detail(hub_url: str, workflow_id: str) -> dict:
    wait_projected(hub_url)
    return requests.get(f"{hub_url}/api/workflow/{workflow_id}", timeout=10).json()["workflow"]


def page(hub_url: str, path: str) -> str:
    wait_projected(hub_url)
    answer = requests.get(f"{hub_url}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_keep_going_failure_counts_every_planned_job_and_tells_why(
    live_hub: LiveHub,
    workdir: Path,  # noqa: F811
) -> None:
    result = run_snakemake(
        workdir, live_hub.url, "failing", "--keep-going", "--config", "fail_sample=B"
    )
    assert result.returncode == 1

    workflow = workflow_named(live_hub.url, "failing")
    assert workflow["status"] == "Error"
    # 14 planned: 10 done, 1 failed, and count B, report and all never ran.
    counts = {key: workflow[key] for key in ("jobs_total", "jobs_done", "jobs_failed")}
    assert counts == {"jobs_total": JOBS, "jobs_done": 10, "jobs_failed": 1}
    assert (workflow["jobs_pending"], workflow["jobs_running"], workflow["jobs_not_run"]) == (
        0, 0, 3,
    )  # fmt: skip
    assert workflow["exit_status"] == 1
    run = detail(live_hub.url, workflow["id"])
    assert run["extra"]["config_overrides"] == {"fail_sample": "B"}

    # Why it failed: the end of its log file, by its absolute path.
    failed = jobs_of(live_hub.url, workflow["id"])[("trim", "B")]
    log = workdir / "logs" / "trim" / "B.log"
    [tail] = failed["extra"]["log_tails"]
    assert tail == {"path": str(log), "text": "trim: corrupt input for B", "truncated": False}

    html = page(live_hub.url, f"/workflow/{workflow['id']}")
    failures = html[html.index('id="run-failed"') : html.index('id="run-rules"')]
    assert "Why it failed" in failures
    assert str(log) in failures and "trim: corrupt input for B" in failures
    rules = html[html.index('id="run-rules"') : html.index('class="jobs-section"')]
    # count: 3 done and 1 not run, of 4 planned; report and all: 1 not run each.
    assert 'aria-label="3 of 4 done"' in rules
    assert "Planned but never run: count (1), report (1), all (1)." in rules
    assert "<b>3</b><span>not run</span>" in html
    graph = html[html.index('id="run-graph"') : html.index('class="jobs-section"')]
    assert graph.count('class="node state-not-run"') == 3  # count, report and all
    assert "no job yet" not in graph.split("</svg>")[0]

    job_page = page(live_hub.url, f"/workflow/{workflow['id']}/job/{failed['jobid']}")
    assert "<dt>Memory requested</dt><dd>200 MB</dd>" in job_page.replace("\n", "")
    assert str(log) in job_page and "trim: corrupt input for B" in job_page


def test_ctrl_c_cancels_the_run_and_aborts_its_running_jobs(
    live_hub: LiveHub,
    workdir: Path,  # noqa: F811
) -> None:
    run = subprocess.Popen(
        snakemake_command(live_hub.url, "interrupted", "--config", "step_seconds=30", cores=2),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def jobs_running() -> bool:
            try:
                return workflow_named(live_hub.url, "interrupted")["jobs_running"] >= 2
            except (requests.RequestException, AssertionError):
                return False

        wait_until(jobs_running, 60, "two running jobs on the hub")
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, output

    def ended() -> bool:
        return workflow_named(live_hub.url, "interrupted")["status"] != "Running"

    wait_until(ended, 30, "the end of the run on the hub")
    workflow = workflow_named(live_hub.url, "interrupted")
    assert workflow["status"] == "Cancelled"
    assert (workflow["jobs_running"], workflow["jobs_failed"]) == (0, 0)
    assert workflow["jobs_aborted"] == 2
    assert workflow["jobs_not_run"] == JOBS - 2
    jobs = jobs_of(live_hub.url, workflow["id"])
    assert {job["status"] for job in jobs.values()} == {"Aborted"}
    assert all(job["completed_at"] for job in jobs.values())

    html = page(live_hub.url, f"/workflow/{workflow['id']}")
    # No red box: nothing failed; how the run ended is said in a note.
    assert 'id="run-failed" data-live class="failures" hidden' in html
    ended_note = html[html.index('id="run-ended"') : html.index('id="run-failed"')]
    assert "Cancelled:" in ended_note and "hidden" not in ended_note.split(">")[0]
    assert 'class="bar"' in html and "seg running" not in html


def test_a_retried_job_keeps_its_failed_attempt(
    live_hub: LiveHub,
    workdir: Path,  # noqa: F811
) -> None:
    result = run_snakemake(
        workdir, live_hub.url, "retry", "--retries", "1", "--config", "flaky_sample=C"
    )
    assert result.returncode == 0, result.stderr
    workflow = workflow_named(live_hub.url, "retry")
    assert (workflow["status"], workflow["exit_status"], workflow["jobs_not_run"]) == (
        "Done", None, 0,
    )  # fmt: skip
    count = jobs_of(live_hub.url, workflow["id"])[("count", "C")]
    assert count["attempt"] == 2 and count["status"] == "Done" and count["exit_code"] is None
    [first] = count["extra"]["attempts"]
    assert (first["attempt"], first["status"], first["exit_code"]) == (1, "Error", 1)
    assert first["started_at"] < first["completed_at"] <= count["started_at"]
    assert first["log_tails"][0]["text"] == "count: transient failure for C"
    job_page = page(live_hub.url, f"/workflow/{workflow['id']}/job/{count['jobid']}")
    assert "Earlier attempts" in job_page and "count: transient failure for C" in job_page


def test_an_unnamed_run_is_named_after_its_directory_and_prints_its_url(
    live_hub: LiveHub,
    workdir: Path,  # noqa: F811
) -> None:
    command = [
        word
        for word in snakemake_command(live_hub.url, "unused")
        if word not in ("--logger-panoptes-name", "unused")
    ]
    command.insert(1, "data/counts/A.tsv")  # a target, before the options
    result = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    wait_projected(live_hub.url)
    [run] = requests.get(f"{live_hub.url}/api/workflows", timeout=10).json()["workflows"]
    assert run["name"] == f"{workdir.name}: data/counts/A.tsv"
    assert f"[panoptes] this run on the hub: {live_hub.url}/workflow/{run['id']}" in result.stderr


def test_benchmarked_jobs_report_their_use_against_their_request(
    live_hub: LiveHub,
    workdir: Path,  # noqa: F811
) -> None:
    """``count`` has a ``benchmark:`` file: the plugin sends what it measured, and the run
    page compares it with the rule's request, for this run and the pipeline's last runs."""
    for name, extra in (("bench-1", ()), ("bench-2", ("--forceall",))):
        result = run_snakemake(workdir, live_hub.url, name, *extra)
        assert result.returncode == 0, result.stderr
    workflow = workflow_named(live_hub.url, "bench-2")
    jobs = jobs_of(live_hub.url, workflow["id"])
    for sample in ("A", "B", "C", "D"):
        count = jobs[("count", sample)]
        assert count["realtime_ms"] is not None and count["realtime_ms"] >= 200  # sleeps 0.2 s
        assert count["peak_rss"] is not None and count["peak_rss"] > 0
    assert jobs[("trim", "A")]["realtime_ms"] is None  # no benchmark: no usage

    html = page(live_hub.url, f"/workflow/{workflow['id']}")
    fit = html[html.index('id="fit-run"') : html.index("</table>", html.index('id="fit-run"'))]
    [row] = [r for r in fit.split("<tr>") if '<td class="name">count</td>' in r]
    cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
    # jobs, CPUs (asked, used, fit, suggested), memory and time (asked, p95, fit, suggested)
    assert cells[0] == "4" and cells[1] == "2"  # four jobs asking for 2 threads each
    assert cells[5] == "144.0 MiB"  # mem_mb=150, as Snakemake turns it into MiB
    assert cells[6].endswith("MiB") and cells[7].endswith("%") and cells[8].endswith("MiB")
    assert cells[9] == "1m 00s" and cells[11].endswith("%")  # runtime=1 asked
    assert cells[12] == "1m 00s"  # a sleep of 0.2 s: the smallest suggestion, 1 min
    history = html[html.index('id="fit-history"') :]
    assert "The last 2 successful runs of this pipeline" in html
    assert '<td class="name">count</td><td class="num">8</td>' in history
    assert 'id="cpu-hours"' in html
    # and as a Snakemake profile, from both runs
    settings = html[html.index('id="fit-settings"') :].split("</pre>")[0]
    assert "as a Snakemake profile (config.yaml), from the last 2 runs" in settings
    assert "set-threads:\n  count: 1\n" in settings  # a sleep keeps no CPU busy
    count_resources = r"set-resources:\n(.|\n)*  count:\n    mem_mb: \d+\n    runtime: 1\n"
    assert re.search(count_resources, settings)
