"""The live stream: server-sent events fed from the database.

``GET /api/stream`` (all runs) or ``GET /api/stream?workflow_id=ID`` (one run) polls the
database every ``LIVE_POLL_SECONDS`` for a *version* of what the page shows, and sends
``event: change`` with the new version as its ``id`` whenever it differs from the last one the
client saw (``since`` in the URL, or the ``Last-Event-ID`` header when the browser reconnects).

The version is read from the database, never from process memory, so a change written by any
gunicorn worker or any hub instance on the same database reaches every open page:

- one run: its ``updated_at`` (every event, rename and cancel moves it) and its status as read
  (so a run turning Stale is seen too); a deleted run gives ``event: deleted``;
- all runs: their count (deletions), the newest ``updated_at``, and how many read as Stale.

Bounds: each poll checks a pooled connection out and returns it (no transaction stays open
across the sleep); a stream ends after ``LIVE_STREAM_SECONDS`` (the browser reconnects after the
``retry`` delay, resuming from ``Last-Event-ID``), as soon as the client is seen to have gone,
and at most ``LIVE_MAX_STREAMS`` streams per process hold a thread: past that, a stream answers
the current state once and asks the browser to come back in ``LIVE_BUSY_RETRY_MS``, which turns
surplus pages into slow pollers instead of starving ingestion of threads. A client that does
not ask for ``text/event-stream`` (EventSource always does) gets the current state once, too,
and so does every page when the server has no threads (``wsgi.multithread`` false, e.g.
gunicorn's sync workers), where a held stream would hold a whole worker.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from . import apidoc, queries, serializers, store
from .config import Staleness, stale_after
from .errors import ApiError
from .extensions import db
from .models import Workflow, utcnow

bp = Blueprint("live", __name__)

# Internal timings; the user-facing LIVE_* settings (poll, lifetime, cap) are in config.py.
DEFAULTS: dict[str, Any] = {
    "LIVE_HEARTBEAT_SECONDS": 15.0,
    "LIVE_RETRY_MS": 1000,
    "LIVE_BUSY_RETRY_MS": 5000,
}
# Set when the worker is asked to stop (gunicorn_conf.post_worker_init): open streams end at
# once instead of holding a graceful shutdown for their whole lifetime.
SHUTTING_DOWN = threading.Event()
_EXTENSION = "panoptes.live"


@dataclass(frozen=True, slots=True)
class Settings:
    poll: float
    lifetime: float
    heartbeat: float
    retry_ms: int
    busy_retry_ms: int


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    for key, value in DEFAULTS.items():
        state.app.config.setdefault(key, value)
    state.app.extensions[_EXTENSION] = threading.BoundedSemaphore(
        max(1, int(state.app.config["LIVE_MAX_STREAMS"]))
    )


def _settings(app: Flask) -> Settings:
    config = app.config
    return Settings(
        poll=float(config["LIVE_POLL_SECONDS"]),
        lifetime=float(config["LIVE_STREAM_SECONDS"]),
        heartbeat=float(config["LIVE_HEARTBEAT_SECONDS"]),
        retry_ms=int(config["LIVE_RETRY_MS"]),
        busy_retry_ms=int(config["LIVE_BUSY_RETRY_MS"]),
    )


def version(
    connection: Connection,
    workflow_id: str | None,
    stale: Staleness,
    now: datetime | None = None,
) -> str | None:
    """What a page shows, in one short string; None when the run does not exist (any more).

    Pages compute it *before* reading their data, so a change that lands in between makes the
    stream report a difference rather than be missed.
    """
    now = now or utcnow()
    if workflow_id is None:
        count, newest = connection.execute(
            select(func.count(Workflow.pk), func.max(Workflow.updated_at))
        ).one()
        silent = (
            connection.scalar(select(func.count(Workflow.pk)).where(queries.stale_runs(stale, now)))
            or 0
        )
        return f"{count}|{_stamp(newest)}|{silent}"
    row = connection.execute(
        select(Workflow.engine, Workflow.updated_at, Workflow.status).where(
            Workflow.id == workflow_id
        )
    ).first()
    if row is None:
        return None
    status = serializers.effective_status(row, stale, now)
    return f"{_stamp(row.updated_at)}|{status}"


def _stamp(moment: datetime | None) -> str:
    return "0" if moment is None else f"{moment.timestamp():.6f}"


def _client_gone(sock: socket.socket | None) -> bool:
    """True when the client closed its connection (a peek reads end-of-file). Without the
    socket (other servers) the stream relies on its lifetime and on failed writes."""
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # no data; TLS sockets refuse flags
        return False
    except OSError:
        return True


def _event(kind: str, data: dict[str, Any], event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {kind}", f"data: {json.dumps(data)}"]
    return "\n".join(lines) + "\n\n"


def _stream(
    probe: Callable[[], str | None],
    since: str,
    workflow_id: str | None,
    settings: Settings,
    slots: threading.BoundedSemaphore | None,
    sock: socket.socket | None,
) -> Iterator[str]:
    # Taken when the body starts streaming, so a response never iterated holds no slot.
    # Without slots (a client that did not ask for a stream): one answer, then the end.
    acquired = slots is not None and slots.acquire(blocking=False)
    try:
        retry = settings.retry_ms if acquired else settings.busy_retry_ms
        yield f"retry: {retry}\n\n"
        started = last_write = time.monotonic()
        while True:
            current = probe()
            if current is None:
                yield _event("deleted", {"workflow_id": workflow_id})
                return
            now = time.monotonic()
            if current != since:
                since = current
                yield _event("change", {"workflow_id": workflow_id, "version": current}, current)
                last_write = now
            elif now - last_write >= settings.heartbeat:
                yield ": keep-alive\n\n"  # a comment: detects dead clients, keeps proxies open
                last_write = now
            if not acquired or now - started >= settings.lifetime or _client_gone(sock):
                return
            if SHUTTING_DOWN.wait(settings.poll):
                return
    finally:
        if acquired and slots is not None:
            slots.release()


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    workflow_id: str | None = Field(default=None, description="one run (default: the runs list)")
    since: str | None = Field(default=None, description="the version the page shows")


SSE_EVENT = {
    "type": "object",
    "description": "one event; `data` is JSON: {workflow_id, version}",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["change", "deleted"]},
        "id": {"type": "string", "description": "the version (absent on `deleted`)"},
        "data": {"type": "string"},
    },
}


@bp.get("/api/stream")
@apidoc.operation(
    apidoc.DASHBOARD,
    query=StreamQuery,
    responses={
        200: apidoc.Answer("an event stream", "text/event-stream", SSE_EVENT),
        404: "unknown workflow_id",
    },
)
def stream(query: StreamQuery) -> Response:
    """Server-sent events: `change` when a run, or the list of runs, changes.

    `change` carries the new version as its id; `deleted` is sent when the run is deleted. Fed
    from the database; each stream ends after a few minutes and the browser reconnects. A
    client whose Accept header does not name text/event-stream gets the current state once."""
    workflow_id = query.workflow_id or None
    since = request.headers.get("Last-Event-ID") or query.since or ""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stale = stale_after(app.config)
    engine = db.engine

    def probe() -> str | None:
        with engine.connect() as connection:  # checked out per poll; rolled back on exit
            return version(connection, workflow_id, stale)

    if workflow_id is not None and probe() is None and store.find_run(workflow_id) is None:
        raise ApiError(404, f"No workflow with id {workflow_id!r}.")
    db.session.remove()  # the stream outlives the request: hold no session while it runs
    # EventSource always asks for text/event-stream; other clients (curl, scripts, API
    # fuzzers) get the current state once instead of a connection held for minutes.
    wants_stream = "text/event-stream" in request.headers.get("Accept", "")
    # A server without threads (gunicorn's sync workers) would give the stream a whole
    # worker: there every page polls instead (the state once, back in LIVE_BUSY_RETRY_MS).
    threaded = bool(request.environ.get("wsgi.multithread"))
    body = _stream(
        probe,
        since,
        workflow_id,
        _settings(app),
        app.extensions[_EXTENSION] if wants_stream and threaded else None,
        request.environ.get("gunicorn.socket"),
    )
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )
