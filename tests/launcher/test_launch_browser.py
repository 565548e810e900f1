"""The launcher in real headless Chromium (Debian's ``chromium`` driven by Playwright): sign in
with a launch token, launch from the form, watch the log grow live, cancel; parameter fields
from a pipeline's nextflow_schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher.helpers import LaunchHub, launch_processes, queue_toml, start_hub
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, SCREENSHOTS, WATCH_CSP

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():  # tests.ui.test_browser already skipped or failed the import
    pytest.skip(f"{CHROMIUM} not found", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LaunchHub]:
    launch_hub = start_hub(tmp_path, queue_toml(work_dir=str(tmp_path / "work")))
    yield launch_hub
    launch_hub.hub.stop()


def test_launch_from_the_form_watch_the_log_and_cancel(hub: LaunchHub) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context(viewport=LAPTOP)
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        page.goto(hub.url + "/launches/new")
        page.fill("input[name=token]", hub.token)
        page.locator("form button[type=submit]").first.click()
        expect(page.locator("#launch-form")).to_be_visible()
        page.select_option("#launch-engine", "nextflow")
        page.fill("#launch-pipeline", "hello")
        page.fill("input[name=run_name]", "from_the_browser")
        page.fill("#launch-params", '{"seconds": 60}')
        page.click("#launch-submit")
        expect(page.locator("h1")).to_have_text("from_the_browser")
        log = page.locator("#launch-log")
        expect(log).to_contain_text("sayHello running", timeout=60_000)
        lines_then = log.inner_text().count("sayHello running")
        # The log keeps growing on the open page, with no reload.
        page.wait_for_function(
            "n => document.getElementById('launch-log').textContent"
            ".split('sayHello running').length - 1 > n",
            arg=lines_then,
            timeout=30_000,
        )
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        # The run reported: its link appears without a reload.
        expect(page.locator("#launch-run a")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "launch-running.png"), full_page=True)
        launch_id = page.url.rstrip("/").rsplit("/", 1)[1]
        page.click("#launch-cancel")
        expect(page.locator("#launch-status")).to_contain_text("cancelled", timeout=60_000)
        expect(page.locator("#launch-run a")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "launch-cancelled.png"), full_page=True)
        violations = page.evaluate("window.__cspViolations || []")
        context.close()
        browser.close()
    assert problems == [] and violations == []
    assert hub.get(launch_id)["status"] == "cancelled"
    assert launch_processes(launch_id) == []


NEXTFLOW_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "stand-in pipeline parameters",
    "type": "object",
    "$defs": {
        "input_output_options": {
            "title": "Input/output options",
            "type": "object",
            "properties": {
                "greeting": {"type": "string", "default": "hello", "description": "what to say"},
                "times": {"type": "integer", "default": 1},
                "loud": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["fast", "careful"], "default": "fast"},
            },
        }
    },
    "allOf": [{"$ref": "#/$defs/input_output_options"}],
}


def test_the_form_builds_parameter_fields_from_nextflow_schema(
    hub: LaunchHub, tmp_path: Path
) -> None:
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "nextflow_schema.json").write_text(json.dumps(NEXTFLOW_SCHEMA))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_context(viewport=LAPTOP).new_page()
        page.goto(hub.url + "/launches/new")
        page.fill("input[name=token]", hub.token)
        page.locator("form button[type=submit]").first.click()
        page.select_option("#launch-engine", "nextflow")
        page.fill("#launch-pipeline", str(pipeline))
        page.locator("#launch-pipeline").dispatch_event("change")
        expect(page.locator("#schema-fields")).to_be_visible()
        expect(page.locator("[data-param=greeting]")).to_have_value("hello")
        page.fill("[data-param=greeting]", "bonjour")
        page.fill("[data-param=times]", "3")
        page.check("[data-param=loud]")
        page.select_option("[data-param=mode]", "careful")
        page.fill("#launch-params", '{"extra": true}')
        page.screenshot(path=str(SCREENSHOTS / "launch-form-schema.png"), full_page=True)
        page.click("#launch-submit")
        expect(page.locator("h1")).to_have_text(str(pipeline))
        launch_id = page.url.rstrip("/").rsplit("/", 1)[1]
        browser.close()
    assert hub.get(launch_id)["params"] == {
        "extra": True,
        "greeting": "bonjour",
        "times": 3,
        "loud": True,
        "mode": "careful",
    }
