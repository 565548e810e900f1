"""The live stream (server-sent events fed from the database) and the version it compares."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from panoptes import live
from panoptes.config import Staleness, stale_after
from panoptes.extensions import db
from panoptes.models import utcnow
from tests.conftest import silence
from tests.replay import flask_sender

from .conftest import csrf_token, page
from .helpers import create_snakemake, send_event

FAST = {"LIVE_POLL_SECONDS": 0.02, "LIVE_STREAM_SECONDS": 0.4}


def events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body (comments and ``retry`` lines dropped)."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            found.append(fields)
    return found


def version_of(app, workflow_id: str | None) -> str | None:
    with app.app_context():
        return live.version(db.session.connection(), workflow_id, stale_after(app.config))


@pytest.fixture
def fast_app(app_factory):
    return app_factory(**FAST)


@pytest.fixture
def fast_client(fast_app):
    return fast_app.test_client()


def open_stream(client, url: str, **headers: str) -> tuple[object, Iterator[bytes]]:
    """A stream as EventSource opens it (it always sends this Accept header), from a threaded
    server as the hub is served (the test client says single-threaded unless told)."""
    headers = {"Accept": "text/event-stream", **headers}
    response = client.get(url, headers=headers, buffered=False, multithread=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"].startswith("no-cache")
    return response, iter(response.response)


def read_all(client, url: str, **headers: str) -> str:
    response, chunks = open_stream(client, url, **headers)
    try:
        return b"".join(chunks).decode()
    finally:
        response.close()


def test_the_version_moves_with_every_change_a_page_shows(app, client):
    send = flask_sender(client)
    run = create_snakemake(send, "v")
    seen = {version_of(app, run)}
    listing = {version_of(app, None)}
    send_event(send, run, {"level": "job_info", "jobid": 1, "name": "a"})
    seen.add(version_of(app, run))
    token = csrf_token(page(client, f"/workflow/{run}"))
    client.post(f"/workflow/{run}/rename", data={"csrf_token": token, "name": "w"})
    seen.add(version_of(app, run))
    client.post(f"/workflow/{run}/cancel", data={"csrf_token": token})
    seen.add(version_of(app, run))
    assert len(seen) == 4
    listing.add(version_of(app, None))
    other = create_snakemake(send, "other")
    listing.add(version_of(app, None))
    client.delete(f"/api/workflow/{run}")
    listing.add(version_of(app, None))
    assert len(listing) == 4 and version_of(app, run) is None  # changes, a new run, a deletion
    # a run turning Stale changes its version without any write
    with app.app_context():
        hour = Staleness({}, timedelta(hours=1))
        before = live.version(db.session.connection(), other, hour)
        later = live.version(db.session.connection(), other, hour, utcnow() + timedelta(hours=2))
    assert before.endswith("|Running") and later.endswith("|Stale")


def test_a_stream_reports_a_change_since_the_page_version(fast_app, fast_client):
    run = create_snakemake(flask_sender(fast_client), "s")
    current = version_of(fast_app, run)
    quiet = read_all(fast_client, f"/api/stream?workflow_id={run}&since={current}")
    assert quiet.startswith("retry: 1000\n\n") and events(quiet) == []
    behind = events(read_all(fast_client, f"/api/stream?workflow_id={run}&since=old"))
    assert behind == [
        {
            "id": current,
            "event": "change",
            "data": json.dumps({"workflow_id": run, "version": current}),
        }
    ]
    # a reconnecting browser sends the last id it saw: that wins over the URL's since
    resumed = read_all(
        fast_client, f"/api/stream?workflow_id={run}&since=old", **{"Last-Event-ID": current}
    )
    assert events(resumed) == []


def test_events_arriving_during_a_stream_are_sent_and_no_connection_is_held(fast_app, fast_client):
    send = flask_sender(fast_client)
    run = create_snakemake(send, "during")
    fast_app.config["LIVE_STREAM_SECONDS"] = 5
    response, chunks = open_stream(
        fast_client, f"/api/stream?workflow_id={run}&since={version_of(fast_app, run)}"
    )
    try:
        with fast_app.app_context():
            pool = db.engine.pool
        assert next(chunks) == b"retry: 1000\n\n"
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        for jobid in (1, 2):
            send_event(send, run, {"level": "job_info", "jobid": jobid, "name": "r"})
            started = time.monotonic()
            change = events(next(chunks).decode())
            assert change[0]["event"] == "change" and time.monotonic() - started < 1
            assert change[0]["id"] == version_of(fast_app, run)
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
        fast_client.delete(f"/api/workflow/{run}")  # Running: refused, nothing changes
        fast_client.post(f"/api/workflow/{run}/cancel")
        assert events(next(chunks).decode())[0]["event"] == "change"
        assert fast_client.delete(f"/api/workflow/{run}").status_code == 204
        assert events(next(chunks).decode()) == [
            {"event": "deleted", "data": json.dumps({"workflow_id": run})}
        ]
        assert next(chunks, None) is None  # the stream ends after "deleted"
    finally:
        response.close()


def test_the_runs_list_stream_sees_new_runs(fast_app, fast_client):
    since = version_of(fast_app, None)
    create_snakemake(flask_sender(fast_client), "new")
    found = events(read_all(fast_client, f"/api/stream?since={since}"))
    assert [e["event"] for e in found] == ["change"]
    assert found[0]["id"] == version_of(fast_app, None) != since


def test_a_stream_ends_after_its_lifetime(fast_app, fast_client):
    run = create_snakemake(flask_sender(fast_client), "bounded")
    started = time.monotonic()
    read_all(fast_client, f"/api/stream?workflow_id={run}&since={version_of(fast_app, run)}")
    assert 0.35 < time.monotonic() - started < 3


def test_streams_past_the_limit_answer_once_and_come_back_later(app_factory):
    app = app_factory(**{**FAST, "LIVE_MAX_STREAMS": 1, "LIVE_STREAM_SECONDS": 10})
    client = app.test_client()
    run = create_snakemake(flask_sender(client), "crowded")
    current = version_of(app, run)
    holder, chunks = open_stream(client, f"/api/stream?workflow_id={run}&since={current}")
    try:
        assert next(chunks) == b"retry: 1000\n\n"  # holds the only slot
        started = time.monotonic()
        surplus = read_all(client, f"/api/stream?workflow_id={run}&since=old")
        assert time.monotonic() - started < 2
        assert surplus.startswith("retry: 5000\n\n")  # come back in 5 s
        assert [e["event"] for e in events(surplus)] == ["change"]  # but say what changed
    finally:
        holder.close()
    app.config["LIVE_STREAM_SECONDS"] = 0.1
    assert read_all(client, f"/api/stream?workflow_id={run}&since={current}").startswith(
        "retry: 1000"
    )  # the slot was released when the first stream closed


def test_clients_that_do_not_ask_for_a_stream_get_one_answer(fast_app, fast_client):
    fast_app.config["LIVE_STREAM_SECONDS"] = 30
    run = create_snakemake(flask_sender(fast_client), "curl")
    started = time.monotonic()
    body = fast_client.get(f"/api/stream?workflow_id={run}&since=old").get_data(as_text=True)
    assert time.monotonic() - started < 2
    assert body.startswith("retry: 5000") and [e["event"] for e in events(body)] == ["change"]


def test_unknown_run_is_a_json_404(client):
    response = client.get("/api/stream?workflow_id=nope")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_pages_name_their_stream_with_the_version_they_show(app, client):
    run = create_snakemake(flask_sender(client), "named")
    html = page(client, f"/workflow/{run}")
    version = version_of(app, run)
    assert (
        f'data-stream="/api/stream?workflow_id={run}&amp;since={version.replace("|", "%7C")}"'
        in html
    )
    listing = page(client, "/")
    assert 'data-stream="/api/stream?since=' in listing


def test_stale_runs_change_version_on_their_own(app, client):
    run = create_snakemake(flask_sender(client), "quiet")
    before = version_of(app, run)
    silence(app, run, timedelta(days=9))
    assert version_of(app, run) != before and version_of(app, run).endswith("|Stale")
