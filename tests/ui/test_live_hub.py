"""The live stream in a real hub (gunicorn, threaded workers): open dashboards must not starve
ingestion, and a change written by any worker reaches every stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub, load_json

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """One worker with 4 threads: 3 open streams leave one thread for everything else."""
    hub = LiveHub(
        f"sqlite:///{tmp_path / 'hub.db'}",
        tmp_path / "hub.log",
        extra_args=["--workers", "1", "--threads", "4"],
    ).start()
    yield hub
    hub.stop()


def open_stream(stack: ExitStack, url: str) -> Iterator[str]:
    """An SSE stream, its lines as they arrive (the connection closes with ``stack``)."""
    response = stack.enter_context(
        requests.get(url, stream=True, timeout=(5, 10), headers={"Accept": "text/event-stream"})
    )
    assert response.status_code == 200
    lines = response.iter_lines(decode_unicode=True)
    assert next(lines).startswith("retry: ")  # the thread is now serving this stream
    return lines


def next_event(lines: Iterator[str]) -> str:
    for line in lines:
        if line.startswith("event: "):
            return line.removeprefix("event: ")
    raise AssertionError("the stream ended without an event")


def test_open_streams_do_not_starve_ingestion(small_hub):
    session = requests.Session()
    created = session.get(f"{small_hub.url}/create_workflow", timeout=5).json()["id"]
    nextflow = session.post(
        f"{small_hub.url}/trace/create", json={"runName": "streams"}, timeout=5
    ).json()["workflowId"]
    with ExitStack() as stack:
        streams = [
            open_stream(stack, f"{small_hub.url}/api/stream?workflow_id={created}&since=x"),
            open_stream(stack, f"{small_hub.url}/api/stream?workflow_id={nextflow}&since=x"),
            open_stream(stack, f"{small_hub.url}/api/stream?since=x"),
        ]
        for lines in streams:
            assert next_event(lines) == "change"  # all three are live
        # Ingestion is answered while the three streams hold their threads (they last five
        # minutes, far beyond the requests' timeout, and are still open below).
        for jobid in range(1, 4):
            msg = {"level": "job_info", "jobid": jobid, "name": "align"}
            answer = session.post(
                f"{small_hub.url}/update_workflow_status",
                data={"msg": json.dumps(msg), "timestamp": "t", "id": created},
                timeout=30,
            )
            assert answer.status_code == 200
            progress = load_json("tower/modern/02_progress_request_submitted.json")
            answer = session.put(
                f"{small_hub.url}/trace/{nextflow}/progress", json=progress, timeout=30
            )
            assert answer.status_code == 200
        # and the same streams, still open, hear about it
        assert next_event(streams[0]) == "change"
        assert next_event(streams[1]) == "change"
    # the streams' threads are free again once their clients left
    time.sleep(1)
    with ExitStack() as stack:
        for _ in range(3):
            open_stream(stack, f"{small_hub.url}/api/stream?since=x")
        answer = session.get(f"{small_hub.url}/api/workflows", timeout=30)
        assert answer.status_code == 200


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_streams_hear_changes_written_by_any_worker_or_hub(tmp_path, request, backend):
    """Two hub processes of two workers each on one database: an in-memory feed would miss
    events handled elsewhere; the database-fed stream sees them all."""
    if backend == "postgresql":
        database = request.getfixturevalue("postgres_url")
    else:
        database = f"sqlite:///{tmp_path / 'shared.db'}"
    first = LiveHub(database, tmp_path / "a.log", extra_args=["--workers", "2"]).start()
    try:
        second = LiveHub(database, tmp_path / "b.log", extra_args=["--workers", "2"]).start()
        try:
            session = requests.Session()
            run = session.get(f"{first.url}/create_workflow", timeout=5).json()["id"]
            with ExitStack() as stack:
                streams = [
                    open_stream(stack, f"{hub.url}/api/stream?workflow_id={run}&since=x")
                    for hub in (first, first, second, second)
                ]
                for lines in streams:
                    assert next_event(lines) == "change"
                for jobid, hub in enumerate((second, first), start=1):
                    msg = {"level": "job_info", "jobid": jobid, "name": "step"}
                    session.post(
                        f"{hub.url}/update_workflow_status",
                        data={"msg": json.dumps(msg), "timestamp": "t", "id": run},
                        timeout=5,
                    ).raise_for_status()
                    for lines in streams:  # every stream, whichever process serves it
                        assert next_event(lines) == "change"
        finally:
            second.stop()
    finally:
        first.stop()
