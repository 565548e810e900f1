"""A hub process with launch queues, a launch token, and waiting for launches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.conftest import LiveHub

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE_EXAMPLE = ROOT / "example_workflow" / "snakemake"
NEXTFLOW_EXAMPLE = ROOT / "example_workflow" / "nextflow"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
NEXTFLOW_STANDIN = str(Path(__file__).resolve().parent.parent / "bin" / "nextflow")
# Fast enough for tests: the worker looks for work and cancels every 0.2 s; a worker silent
# for 10 s has its launches marked lost (long enough for a busy machine never to make a live
# worker's launch lost); a cancelled head job gets 2 s before SIGKILL.
LAUNCH_ENV = {
    "PANOPTES_LAUNCH_POLL_SECONDS": "0.2",
    "PANOPTES_LAUNCH_LOST_SECONDS": "10",
    "PANOPTES_LAUNCH_CANCEL_GRACE_SECONDS": "2",
    "PANOPTES_TOKEN_CACHE_SECONDS": "0.5",
    "PANOPTES_LIVE_POLL_SECONDS": "0.1",
}
FINISHED = {"succeeded", "failed", "cancelled", "lost"}


def queue_toml(name: str = "local", **keys: Any) -> str:
    """A [queues.NAME] table."""
    lines = [f"[queues.{name}]"]
    settings = {"executor": "local", "max_active": 1, "snakemake": SNAKEMAKE}
    settings.update(keys)
    settings.setdefault("nextflow", NEXTFLOW_STANDIN)
    for key, value in settings.items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, dict):
            pairs = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            lines.append(f"{key} = {{ {pairs} }}")
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def cli(database_url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """``python -m panoptes --db URL ARGS``; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "panoptes", "--db", database_url, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class LaunchHub:
    """A started hub with queues and a launch token; a ``requests`` session carrying it."""

    def __init__(self, hub: LiveHub, token: str) -> None:
        self.hub = hub
        self.url = hub.url
        self.token = token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def launch(self, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/api/launches", json=body, timeout=10)
        assert response.status_code == 201, response.text
        launch: dict[str, Any] = response.json()["launch"]
        return launch

    def get(self, launch_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/launches/{launch_id}", timeout=10)
        assert response.status_code == 200, response.text
        launch: dict[str, Any] = response.json()["launch"]
        return launch

    def log(self, launch_id: str) -> str:
        return self.http.get(f"{self.url}/api/launches/{launch_id}/log", timeout=10).text

    def wait(
        self,
        launch_id: str,
        until: Callable[[dict[str, Any]], bool] = lambda launch: launch["status"] in FINISHED,
        timeout: float = 180,
    ) -> dict[str, Any]:
        """Poll the launch until ``until`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            launch = self.get(launch_id)
            if until(launch):
                return launch
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"launch {launch_id} never got there: {launch}\n{self.log(launch_id)}"
                )
            time.sleep(0.2)

    def run(self, workflow_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/workflow/{workflow_id}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["workflow"]  # type: ignore[no-any-return]

    def jobs(self, workflow_id: str) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.url}/api/workflow/{workflow_id}/jobs", params={"limit": 1000}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["jobs"]  # type: ignore[no-any-return]


def start_hub(
    tmp_path: Path,
    queues: str,
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> LaunchHub:
    """A hub process on its own database with these queues and a launch-only token."""
    database_url = database_url or f"sqlite:///{tmp_path / 'launch.db'}"
    config = tmp_path / "panoptes.toml"
    config.write_text(queues)
    cli(database_url, "db", "upgrade")  # commands other than these refuse a missing database
    token = cli(database_url, "token", "create", "launcher", "--scope", "launch").strip()
    hub = LiveHub(
        database_url,
        tmp_path / "hub.log",
        ["--config", str(config), *(extra_args or [])],
        env={**LAUNCH_ENV, **(env or {})},
    )
    hub.start()
    return LaunchHub(hub, token)


def launch_processes(launch_id: str) -> list[int]:
    """Pids of the processes of a launch still on this machine (they carry its id)."""
    from panoptes.launcher.executors import processes_of

    return processes_of(launch_id)


class Worker:
    """``panoptes worker`` as a process of its own."""

    def __init__(self, database_url: str, config: Path, hub_url: str, log: Path) -> None:
        command = [sys.executable, "-m", "panoptes", "--db", database_url]
        command += ["--config", str(config), "worker", "--hub", hub_url]
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **LAUNCH_ENV},
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
