"""The run and job pages of real Snakemake 9 runs, in headless Chromium, with screenshots
in ``test-artifacts/screenshots/`` (look at them).

The browser set-up is ``test_browser.py``'s; the runs are made as in
``tests/e2e/test_plugin_snakemake.py``.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub
from tests.e2e.test_plugin_snakemake import (  # noqa: F401
    run_snakemake,
    snakemake_command,
    wait_until,
    workdir,
    workflow_named,
)

from .test_browser import browser, expect, new_page, shot  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveHub, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("browser-runs")
    live_hub = LiveHub(f"sqlite:///{folder / 'hub.db'}", folder / "hub.log").start()
    try:
        yield live_hub, {}
    finally:
        live_hub.stop()


def test_a_keep_going_failure_shows_the_plan_and_the_log_tail(
    hub,
    new_page,  # noqa: F811
    workdir: Path,  # noqa: F811
) -> None:
    live_hub, _ = hub
    result = run_snakemake(
        workdir, live_hub.url, "keep-going", "--keep-going", "--config", "fail_sample=B"
    )
    assert result.returncode == 1
    run_id = workflow_named(live_hub.url, "keep-going")["id"]
    page = new_page()
    page.goto(f"{live_hub.url}/workflow/{run_id}")
    expect(page.locator("#run-failed h2")).to_have_text("Why it failed")
    tail = page.locator("#run-failed details.log-tail")
    expect(tail.locator("summary")).to_have_text(str(workdir / "logs" / "trim" / "B.log"))
    expect(tail.locator("pre")).to_have_text("trim: corrupt input for B")
    expect(page.locator("ul.stats")).to_contain_text("3not run")
    count_row = page.locator("#run-rules tr", has_text="count")
    expect(count_row.locator("td.num").last).to_have_text("4")
    expect(page.locator("#not-run")).to_have_text(
        "Planned but never run: count (1), report (1), all (1)."
    )
    expect(page.locator("svg.rulegraph g.node.state-not-run")).to_have_count(3)
    shot(page, "run-snakemake-keep-going")
    page.click("#run-failed .failed-job h3 a")
    expect(page.locator("main")).to_contain_text("200 MB")
    expect(page.locator("main")).to_contain_text("trim: corrupt input for B")
    shot(page, "job-snakemake-keep-going")


def test_the_runs_table_keeps_its_progress_at_phone_width(hub, new_page) -> None:  # noqa: F811
    live_hub, _ = hub
    created = requests.get(
        f"{live_hub.url}/create_workflow", params={"workflow_id": "on-the-phone"}, timeout=10
    ).json()["id"]
    events = [
        {"event_id": "p1", "level": "progress", "done": 3, "total": 8, "timestamp": 1},
        {"event_id": "p2", "level": "job_info", "jobid": 1, "name": "a", "timestamp": 1},
    ]
    answer = requests.post(
        f"{live_hub.url}/api/snakemake/events",
        json={"workflow_id": created, "events": events},
        timeout=10,
    )
    assert answer.status_code == 200
    live_hub.projected()
    page = new_page(viewport={"width": 420, "height": 800})
    page.goto(live_hub.url + "/")
    rows = page.locator("tr.run-row")
    assert rows.count() >= 1
    wrap = page.locator(".table-wrap").bounding_box()
    assert wrap is not None
    right = wrap["x"] + wrap["width"]
    for part in (".progress svg.bar", ".progress-text"):
        box = rows.first.locator(part).bounding_box()
        assert box is not None and box["width"] >= 40, (part, box)
        assert box["x"] + box["width"] <= right, f"{part} is cut off at 420 px"
    expect(rows.first.locator(".progress-text")).to_contain_text("3/8")
    shot(page, "runs-420px")


def test_an_interrupted_run_shows_no_failure_and_no_running_job(
    hub,
    new_page,  # noqa: F811
    workdir: Path,  # noqa: F811
) -> None:
    live_hub, _ = hub
    run = subprocess.Popen(
        snakemake_command(live_hub.url, "ctrl-c", "--config", "step_seconds=30", cores=2),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def two_running() -> bool:
            try:
                return workflow_named(live_hub.url, "ctrl-c")["jobs_running"] >= 2
            except (requests.RequestException, AssertionError):
                return False

        wait_until(two_running, 60, "two running jobs")
        run.send_signal(signal.SIGINT)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    wait_until(
        lambda: workflow_named(live_hub.url, "ctrl-c")["status"] == "Cancelled", 30, "Cancelled"
    )
    run_id = workflow_named(live_hub.url, "ctrl-c")["id"]
    page = new_page()
    page.goto(f"{live_hub.url}/workflow/{run_id}")
    expect(page.locator("#run-failed")).to_be_hidden()
    expect(page.locator("#run-ended")).to_contain_text("Cancelled:")
    expect(page.locator("ul.stats")).to_contain_text("2aborted")
    expect(page.locator("svg.bar .seg.running")).to_have_count(0)
    expect(page.locator("#run-jobs .badge.s-aborted")).to_have_count(2)
    fetch = page.locator("#run-rules tr", has_text="fetch")
    expect(fetch.locator("td.num")).to_have_text(["0", "", "", "", "2", "2", "4"])
    shot(page, "run-snakemake-interrupted")
