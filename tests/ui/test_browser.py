"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Skipped, with the reason, where Chromium or Playwright is missing; under ``CI`` that is a
failure instead, so CI cannot pass without running them. Screenshots land in
``test-artifacts/screenshots/`` (git-ignored): look at them, they are what users see.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import LiveHub
from tests.replay import http_sender

from .helpers import HOSTILE_NAME, HOSTILE_RUN, create_snakemake, fill_both_engines, send_event

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LAPTOP = {"width": 1366, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Recorded by the page itself (injected by the driver, so the CSP does not block it).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "playwright is not installed: pip install playwright "
            "(no `playwright install`: the tests drive Debian's chromium)"
        )
    return None


_reason = _missing()
if _reason is not None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveHub, dict[str, str]]]:
    """A real hub process filled with runs of both engines."""
    folder = tmp_path_factory.mktemp("browser-hub")
    live_hub = LiveHub(f"sqlite:///{folder / 'hub.db'}", folder / "hub.log").start()
    try:
        with requests.Session() as session:
            ids = fill_both_engines(http_sender(live_hub.url, session))
        yield live_hub, ids
    finally:
        live_hub.stop()


@pytest.fixture(scope="module")
def browser(hub: tuple[LiveHub, dict[str, str]]) -> Iterator[Browser]:
    """Headless Chromium; closed before the hub stops (its event streams end with it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    """Pages in fresh contexts (laptop size), checked for script errors and CSP violations."""
    contexts = []
    problems: list[str] = []

    def make(color_scheme: str = "light", javascript: bool = True, **options: Any) -> Page:
        context = browser.new_context(
            viewport=options.pop("viewport", LAPTOP),
            color_scheme=color_scheme,
            java_script_enabled=javascript,
            **options,
        )
        contexts.append(context)
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        page.on(
            "dialog",
            lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()),
        )
        return page

    yield make
    for context in contexts:
        for page in context.pages:
            if page.evaluate("() => 1") and page.evaluate("window.__cspViolations || []"):
                problems.append(f"CSP: {page.evaluate('window.__cspViolations')}")
        context.close()
    assert problems == []


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_runs_of_both_engines_are_visible(hub, new_page, scheme):
    live_hub, _ = hub
    page = new_page(scheme)
    page.goto(live_hub.url + "/")
    rows = page.locator("tr.run-row")
    expect(rows).to_have_count(7)
    expect(page.locator("tr.run-row .engine-snakemake")).to_have_count(4)
    expect(page.locator("tr.run-row .engine-nextflow")).to_have_count(3)
    expect(page.locator("#live-indicator")).to_have_text("live")
    names = rows.locator("td.name a").all_inner_texts()
    assert {"rnaseq-nightly", "ridiculous_montalcini", HOSTILE_RUN} <= set(names)
    # times are shown in the browser's zone, the UTC text stays in the tooltip
    assert page.locator("time[data-local]").count() >= 7
    shot(page, f"runs-{scheme}")


def test_filters_search_and_status_chips(hub, new_page):
    live_hub, _ = hub
    page = new_page()
    page.goto(live_hub.url + "/")
    page.select_option("select[name=engine]", "nextflow")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(f"{live_hub.url}/?q=&engine=nextflow&status=&sort=started&dir=desc")
    expect(page.locator("tr.run-row")).to_have_count(3)
    expect(page.locator("tr.run-row .engine-snakemake")).to_have_count(0)
    shot(page, "runs-filtered-nextflow")
    page.goto(live_hub.url + "/")
    page.fill("input[name=q]", "night")
    page.press("input[name=q]", "Enter")
    expect(page.locator("tr.run-row td.name a")).to_have_text(["rnaseq-nightly"])
    page.goto(live_hub.url + "/")
    page.click("#status-counts a.s-error")
    expect(page.locator("tr.run-row")).to_have_count(2)
    expect(page.locator("#status-counts a.chip.active")).to_contain_text("Error")


def test_markup_in_names_renders_as_text(hub, new_page):
    live_hub, ids = hub
    page = new_page()
    page.goto(f"{live_hub.url}/workflow/{ids['hostile']}")
    expect(page.locator("h1")).to_have_text(HOSTILE_RUN)
    expect(page.locator("#run-jobs td.name")).to_contain_text(HOSTILE_NAME)
    assert page.locator("img[src='x']").count() == 0 and page.locator("main script").count() == 0
    assert page.title().startswith(f"Running · {HOSTILE_RUN}")
    shot(page, "run-hostile-names")
    page.goto(f"{live_hub.url}/workflow/{ids['hostile']}/job/{ids['hostile_job']}")
    expect(page.locator("h1")).to_contain_text(HOSTILE_NAME)
    assert page.locator("img[src='x']").count() == 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_run_pages_show_why_a_job_failed(hub, new_page, scheme):
    live_hub, ids = hub
    page = new_page(scheme)
    page.goto(f"{live_hub.url}/workflow/{ids['snakemake_failed']}")
    expect(page.locator("#run-failed h2")).to_have_text("Why it failed")
    expect(page.locator("#run-failed .failed-job")).to_contain_text("logs/process/B.log")
    expect(page.locator("svg.rulegraph g.node")).to_have_count(4)
    assert page.title() == "Error · variant-calling · panoptes"
    shot(page, f"run-snakemake-failed-{scheme}")
    # second click: from the failure to the job's own page
    page.click("#run-failed .failed-job h3 a")
    expect(page.locator("h1")).to_contain_text("process")
    expect(page.locator("main")).to_contain_text("exit 3")
    shot(page, f"job-snakemake-failed-{scheme}")
    page.goto(f"{live_hub.url}/workflow/{ids['nextflow_multi']}")
    # Its three failed tasks were ignored (errorStrategy 'ignore'): no failure panel.
    expect(page.locator("#run-failed .failed-job")).to_have_count(0)
    expect(page.locator("#run-failed")).to_be_hidden()
    expect(page.locator("ul.stats")).to_contain_text("3ignored")
    expect(page.locator("figure.box-figure")).to_have_count(5)
    shot(page, f"run-nextflow-{scheme}")
    page.goto(f"{live_hub.url}/workflow/{ids['nextflow_multi']}/job/6")
    expect(page.locator("main")).to_contain_text(".command.err")
    shot(page, f"job-nextflow-{scheme}")


def test_pages_read_without_javascript(hub, new_page):
    live_hub, ids = hub
    page = new_page(javascript=False)
    page.goto(f"{live_hub.url}/workflow/{ids['nextflow_multi']}")
    expect(page.locator("h1")).to_have_text("ridiculous_montalcini")
    expect(page.locator("#run-jobs tbody tr")).to_have_count(15)
    expect(page.locator("svg.timeline rect.job")).to_have_count(15)
    expect(page.locator("#live-indicator")).to_have_text("live updates off")
    page.click("summary:has-text('More from the engine')")  # <details> needs no script
    expect(page.locator("#meta-extra pre")).to_be_visible()
    shot(page, "run-nextflow-no-javascript")


def test_new_events_change_the_page_in_place(hub, new_page):
    live_hub, _ = hub
    with requests.Session() as session:
        send = http_sender(live_hub.url, session)
        run = create_snakemake(send, "live-demo")
        send_event(
            send, run, {"level": "job_info", "jobid": 1, "name": "align", "wildcards": {"s": "1"}}
        )
        send_event(send, run, {"level": "progress", "done": 0, "total": 2})

        page = new_page()
        listing = new_page()
        page.goto(f"{live_hub.url}/workflow/{run}")
        listing.goto(f"{live_hub.url}/")
        expect(page.locator("#live-indicator")).to_have_text("live")
        expect(listing.locator("#live-indicator")).to_have_text("live")
        page.evaluate("window.__marker = 42")
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        assert page.title() == "Running · live-demo · panoptes"
        shot(page, "live-before")

        started = time.monotonic()
        send_event(send, run, {"level": "job_finished", "jobid": 1})
        send_event(
            send, run, {"level": "job_info", "jobid": 2, "name": "call", "wildcards": {"s": "1"}}
        )
        send_event(send, run, {"level": "progress", "done": 1, "total": 2})
        expect(page.locator("#run-summary .stats li").first).to_contain_text("1", timeout=5000)
        expect(page.locator("#run-jobs tbody tr")).to_have_count(2, timeout=5000)
        updated_after = time.monotonic() - started
        assert updated_after < 4, updated_after  # the issue asks for 2 s; slack for loaded CI

        for step in (
            {"level": "job_finished", "jobid": 2},
            {"level": "progress", "done": 2, "total": 2},
        ):
            send_event(send, run, step)
        expect(page).to_have_title("Done · live-demo · panoptes", timeout=5000)
        expect(page.locator(".title-badges .badge")).to_have_text("Done")
        assert page.evaluate("window.__marker") == 42 and navigations == []
        shot(page, "live-after")

        # the runs list hears about new runs too
        create_snakemake(send, "arrived-while-watching")
        expect(listing.locator("tr.run-row td.name a").first).to_have_text(
            "arrived-while-watching", timeout=5000
        )
        shot(listing, "live-runs-list")


def test_delete_asks_for_confirmation(hub, new_page):
    live_hub, ids = hub
    page = new_page()
    page.goto(f"{live_hub.url}/workflow/{ids['nextflow_done']}")
    page.click("text=Delete…")
    expect(page.locator("h1")).to_have_text("Delete this run?")
    shot(page, "delete-confirmation")
    page.click("text=Keep it")
    expect(page.locator("h1")).to_have_text("nostalgic_pasteur")
    response = requests.get(f"{live_hub.url}/api/workflow/{ids['nextflow_done']}", timeout=5)
    assert response.status_code == 200 and json.loads(response.text)["workflow"]["status"] == "Done"
