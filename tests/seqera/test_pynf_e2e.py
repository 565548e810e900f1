"""A Seqera Platform client written the way the py-nf plan describes it (``requests``, the four
TOWER_* environment variables, launch then poll until a terminal status) against a hub process
whose launch worker runs the Nextflow stand-in (tests/bin/nextflow)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.launcher.helpers import NEXTFLOW_EXAMPLE, LaunchHub, queue_toml, start_hub

pytestmark = pytest.mark.e2e

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "UNKNOWN"}


class PlatformClient:
    """What a py-nf style remote execution does: nothing but requests and the environment."""

    def __init__(self) -> None:
        self.endpoint = os.environ["TOWER_API_ENDPOINT"].rstrip("/")
        self.workspace = os.environ.get("TOWER_WORKSPACE_ID")
        self.compute_env = os.environ.get("TOWER_COMPUTE_ENV_ID")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {os.environ['TOWER_ACCESS_TOKEN']}"

    def _params(self) -> dict[str, str]:
        return {"workspaceId": self.workspace} if self.workspace else {}

    def launch(self, **launch: Any) -> str:
        body = {"launch": {"computeEnvId": self.compute_env, **launch}}
        response = self.http.post(
            f"{self.endpoint}/workflow/launch", params=self._params(), json=body, timeout=10
        )
        response.raise_for_status()
        workflow_id: str = response.json()["workflowId"]
        return workflow_id

    def describe(self, workflow_id: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.endpoint}/workflow/{workflow_id}", params=self._params(), timeout=10
        )
        response.raise_for_status()
        workflow: dict[str, Any] = response.json()["workflow"]
        return workflow

    def cancel(self, workflow_id: str) -> int:
        response = self.http.post(
            f"{self.endpoint}/workflow/{workflow_id}/cancel", params=self._params(), timeout=10
        )
        return response.status_code

    def wait(
        self, workflow_id: str, until: set[str] = TERMINAL, timeout: float = 120
    ) -> tuple[dict[str, Any], list[str]]:
        """Poll until the status is one of ``until``; the statuses seen, in order."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            workflow = self.describe(workflow_id)
            if not seen or seen[-1] != workflow["status"]:
                seen.append(workflow["status"])
            if workflow["status"] in until:
                return workflow, seen
            assert time.monotonic() < deadline, f"still {seen} after {timeout} s"
            time.sleep(0.1)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LaunchHub]:
    launch_hub = start_hub(tmp_path, queue_toml(work_dir=str(tmp_path / "work")))
    yield launch_hub
    launch_hub.hub.stop()


@pytest.fixture
def platform(hub: LaunchHub, monkeypatch: pytest.MonkeyPatch) -> PlatformClient:
    monkeypatch.setenv("TOWER_ACCESS_TOKEN", hub.token)
    monkeypatch.setenv("TOWER_API_ENDPOINT", f"{hub.url}/seqera")
    monkeypatch.setenv("TOWER_WORKSPACE_ID", "40230138858677")
    monkeypatch.setenv("TOWER_COMPUTE_ENV_ID", "local")
    return PlatformClient()


def test_a_launch_is_seen_submitted_then_running_then_succeeded(
    platform: PlatformClient, hub: LaunchHub, tmp_path: Path
) -> None:
    work = tmp_path / "py-nf-run"
    workflow_id = platform.launch(
        pipeline=str(NEXTFLOW_EXAMPLE),
        revision="main",
        runName="py_nf_run",
        workDir=str(work),
        configText="process.cpus = 1\n",
        paramsText=json.dumps({"greeting": "hi", "seconds": 1.5}),
    )
    workflow, seen = platform.wait(workflow_id)
    assert seen == ["SUBMITTED", "RUNNING", "SUCCEEDED"], seen
    assert workflow["id"] == workflow_id and workflow["runName"] == "py_nf_run"
    assert workflow["success"] is True and workflow["exitStatus"] == 0
    assert workflow["params"] == {"greeting": "hi", "seconds": 1.5}
    assert workflow["complete"] and workflow["errorMessage"] is None
    # The run is the hub's run of that id, with its tasks; the launch's log is there too.
    assert hub.run(workflow_id)["status"] == "Done"
    tasks = platform.http.get(f"{platform.endpoint}/workflow/{workflow_id}/tasks").json()
    assert tasks["total"] == 1 and tasks["tasks"][0]["task"]["process"] == "sayHello"
    log = platform.http.get(f"{platform.endpoint}/workflow/{workflow_id}/log").json()["log"]
    assert any("sayHello" in line for line in log["entries"]) and log["pending"] is False
    given = json.loads((work / ".nextflow-standin.json").read_text())
    assert given["env"]["TOWER_WORKFLOW_ID"] == workflow_id
    assert given["config"] == "process.cpus = 1\n"


def test_a_failing_launch_is_seen_failed_with_the_error_message(
    platform: PlatformClient,
) -> None:
    workflow_id = platform.launch(
        pipeline=str(NEXTFLOW_EXAMPLE), paramsText="fail: true\nseconds: 1\n"
    )
    workflow, seen = platform.wait(workflow_id)
    assert seen[0] == "SUBMITTED" and seen[-1] == "FAILED", seen
    assert "Error executing process > 'sayHello'" in workflow["errorMessage"]
    assert workflow["success"] is False and workflow["exitStatus"] == 1


def test_a_cancelled_launch_is_seen_cancelled(platform: PlatformClient) -> None:
    workflow_id = platform.launch(pipeline=str(NEXTFLOW_EXAMPLE), paramsText='{"seconds": 60}')
    _workflow, before = platform.wait(workflow_id, until={"RUNNING", *TERMINAL})
    assert before[-1] == "RUNNING", before
    assert platform.cancel(workflow_id) == 204
    workflow, seen = platform.wait(workflow_id)
    assert seen == ["RUNNING", "CANCELLED"], seen
    assert workflow["success"] is False and workflow["complete"]


def test_pre_and_post_run_scripts_run_around_the_pipeline_where_the_queue_allows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = start_hub(tmp_path, queue_toml(work_dir=str(tmp_path / "work"), run_scripts=True))
    try:
        monkeypatch.setenv("TOWER_ACCESS_TOKEN", hub.token)
        monkeypatch.setenv("TOWER_API_ENDPOINT", f"{hub.url}/seqera")
        monkeypatch.setenv("TOWER_COMPUTE_ENV_ID", "local")
        platform = PlatformClient()
        work = tmp_path / "scripted"
        workflow_id = platform.launch(
            pipeline=str(NEXTFLOW_EXAMPLE),
            workDir=str(work),
            # each script sees whether the pipeline has run yet (the stand-in leaves a file)
            preRunScript='test ! -e .nextflow-standin.json && echo "$TOWER_WORKFLOW_ID" > pre',
            postRunScript='test -e .nextflow-standin.json && echo "$PANOPTES_EXIT_CODE" > post',
        )
        workflow, seen = platform.wait(workflow_id)
        assert seen[-1] == "SUCCEEDED", seen
        assert (work / "pre").read_text().strip() == workflow_id
        assert (work / "post").read_text().strip() == "0"

        # A failing pre-run script fails the launch; the pipeline never starts.
        refused = tmp_path / "refused"
        workflow_id = platform.launch(
            pipeline=str(NEXTFLOW_EXAMPLE),
            workDir=str(refused),
            preRunScript="echo 'no reference genome here' >&2\nexit 3\n",
            postRunScript="touch post",
        )
        workflow, seen = platform.wait(workflow_id)
        assert seen[-1] == "FAILED" and workflow["exitStatus"] == 3, (seen, workflow)
        assert not (refused / ".nextflow-standin.json").exists()
        assert not (refused / "post").exists()
        log = platform.http.get(f"{platform.endpoint}/workflow/{workflow_id}/log").json()["log"]
        assert any("no reference genome here" in line for line in log["entries"])
        assert any("pre-run script failed (exit code 3)" in line for line in log["entries"])
    finally:
        hub.hub.stop()
