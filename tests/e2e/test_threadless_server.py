"""The hub served the plainest way, ``gunicorn 'panoptes:create_app()'``: one sync worker,
no threads. Open live pages must not take that worker from the pipelines."""

import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_live_pages_poll_and_ingestion_goes_on_with_one_sync_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    hub = LiveHub(
        url,
        tmp_path / "sync.log",
        command=[
            str(BIN / "gunicorn"),
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "1",
            "panoptes:create_app()",
        ],
        env={"PANOPTES_DATABASE_URL": url, "PANOPTES_LIVE_STREAM_SECONDS": "3600"},
    ).start(timeout=60)
    try:
        run = requests.post(f"{hub.url}/trace/create", json={"runName": "s"}, timeout=10)
        workflow_id = run.json()["workflowId"]
        for _ in range(3):  # three open pages, one after the other
            page = requests.get(
                f"{hub.url}/api/stream?workflow_id={workflow_id}&since=old",
                headers={"Accept": "text/event-stream"},
                timeout=30,  # a held stream would be read until this runs out
            )
            assert page.status_code == 200 and page.text.startswith("retry: 5000\n\n")
            beat = requests.put(f"{hub.url}/trace/{workflow_id}/heartbeat", json={}, timeout=30)
            assert beat.status_code == 200
    finally:
        hub.stop()
    assert "Booting worker" in hub.log_path.read_text()
    assert "gthread" not in hub.log_path.read_text()
