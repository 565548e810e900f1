"""On a server without threads (``wsgi.multithread`` false) a live page polls: its stream
answers the current state once and asks the browser back in 5 s, holding no worker."""

from __future__ import annotations

import pytest

from tests.replay import flask_sender

from .helpers import create_snakemake
from .test_live import events


@pytest.fixture
def holding_app(app_factory):
    # Streams that would hold their worker for a long time, were they allowed to.
    return app_factory(LIVE_POLL_SECONDS=0.02, LIVE_STREAM_SECONDS=3600, LIVE_MAX_STREAMS=4)


@pytest.mark.parametrize("workflow", [True, False], ids=["one run", "runs list"])
def test_without_threads_every_stream_is_one_answer_and_a_poll_later(holding_app, workflow):
    client = holding_app.test_client()
    run = create_snakemake(flask_sender(client), "sync-worker")
    url = f"/api/stream?workflow_id={run}&since=old" if workflow else "/api/stream?since=old"
    for _ in range(6):  # more pages than LIVE_MAX_STREAMS: none holds anything
        response = client.get(url, headers={"Accept": "text/event-stream"}, multithread=False)
        body = response.get_data(as_text=True)  # the body ends: the request is over
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        assert body.startswith("retry: 5000\n\n")
        assert [event["event"] for event in events(body)] == ["change"]


def test_with_threads_the_same_request_is_a_held_stream(holding_app):
    client = holding_app.test_client()
    run = create_snakemake(flask_sender(client), "gthread")
    response = client.get(
        f"/api/stream?workflow_id={run}&since=old",
        headers={"Accept": "text/event-stream"},
        buffered=False,
        multithread=True,
    )
    try:
        chunks = iter(response.response)
        assert next(chunks) == b"retry: 1000\n\n"  # a stream that holds its thread
    finally:
        response.close()
