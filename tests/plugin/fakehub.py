"""A small, real HTTP server on 127.0.0.1 standing in for a panoptes hub in plugin tests.

It speaks both protocols the plugin knows: our hub's (service-info with the ``batch``
feature, the batch route, idempotent by ``event_id``) and an old panoptes' (service-info
without features, ``/update_workflow_status``, and its 200 HTML page for unknown paths);
and the engine-neutral ``POST /api/events`` of the other integrations, validated against
its contract (:func:`events_payload_errors`).
Faults are switched on per test: answer 5xx to the first N event requests, require a
token, answer slowly, refuse events of some levels, announce a batch route it does not
have, or stop and restart on the same port.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OLD_PANOPTES_404 = "<!doctype html><html><body><h1>Page not found</h1></body></html>"

# The contract of POST /api/events.
EVENTS_PATH = "/api/events"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENGINE = re.compile(r"[a-z0-9_-]{1,32}")
EVENT_TYPES = frozenset(
    {"run_started", "job_queued", "job_started", "job_finished", "job_failed", "job_cached",
     "run_finished"}
)  # fmt: skip
MAX_EVENTS = 10_000


def events_payload_errors(payload: Any) -> list[str]:
    """What is wrong with a ``POST /api/events`` body (empty: nothing)."""
    if not isinstance(payload, dict):
        return ["the body is not a JSON object"]
    errors = []
    if not isinstance(payload.get("run_id"), str) or not RUN_ID.fullmatch(payload["run_id"]):
        errors.append("run_id")
    if not isinstance(payload.get("engine"), str) or not ENGINE.fullmatch(payload["engine"]):
        errors.append("engine")
    events = payload.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        return [*errors, "events"]
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            errors.append(f"events[{index}]")
            continue
        if not isinstance(event.get("event_id"), str) or not event["event_id"]:
            errors.append(f"events[{index}].event_id")
        if event.get("type") not in EVENT_TYPES:
            errors.append(f"events[{index}].type")
        when = event.get("time")
        if when is not None and not isinstance(when, int | float | str):
            errors.append(f"events[{index}].time")
        if str(event.get("type", "")).startswith("job_") and not isinstance(
            event.get("job_id"), str
        ):
            errors.append(f"events[{index}].job_id")
    return errors


@dataclass
class Request:
    """One request as the fake hub received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    received: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body decoded as a form."""
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class FakeHub:
    """Record requests and answer like a hub; see the module docstring for the knobs."""

    def __init__(
        self,
        *,
        batch: bool = True,
        advertise_batch: bool | None = None,
        token: str | None = None,
        fail_first: int = 0,
        fail_status: int = 500,
        delay: float = 0.0,
        reject_levels: tuple[str, ...] = (),
    ) -> None:
        self.batch = batch
        self.advertise_batch = batch if advertise_batch is None else advertise_batch
        self.token = token
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.reject_levels = reject_levels
        self.refuse_workflow_ids: tuple[str, ...] = ()
        self.events_api = True  # False: an older hub without POST /api/events
        self.reject_types: tuple[str, ...] = ()  # event types POST /api/events refuses (422)
        self.engines: dict[str, str] = {}  # run id -> engine, from POST /api/events
        self.not_a_hub = False  # answer every request with a web page, like a wrong address
        self.requests: list[Request] = []
        self.stored: dict[str, list[dict[str, Any]]] = {}
        self._event_ids: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._next_workflow = 0
        self.port = 0

    # -- life cycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the hub."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        """Listen (on the previous port after a stop(), else on a free one)."""
        hub = self

        class Handler(_Handler):
            fake = hub

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start() again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # -- what was received ----------------------------------------------------------------

    def events(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """Events stored so far (de-duplicated), in arrival order."""
        with self._lock:
            if workflow_id is not None:
                return list(self.stored.get(workflow_id, []))
            return [event for events in self.stored.values() for event in events]

    def levels(self, workflow_id: str | None = None) -> list[str]:
        """The ``level`` of every stored event, in order."""
        return [str(event.get("level")) for event in self.events(workflow_id)]

    def requests_to(self, path: str) -> list[Request]:
        """Requests received for ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Poll ``predicate()`` until it is true or ``timeout`` passes."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # -- answering ------------------------------------------------------------------------

    def answer(self, request: Request) -> tuple[int, str, bytes]:
        """Return (status, content type, body) for a request."""
        with self._lock:
            self.requests.append(request)
            authorization = request.headers.get("authorization")
            if self.token is not None and authorization != f"Bearer {self.token}":
                return _json(401, {"error": {"message": "bad token"}})
            path = request.path
            if self.not_a_hub:
                return 200, "text/html; charset=utf-8", b"<html>Welcome to nginx!</html>"
            if path == "/api/service-info":
                info: dict[str, Any] = {"status": "running"}
                if self.advertise_batch:
                    info.update(server="panoptes-hub", version="test", features=["batch"])
                return _json(200, info)
            if path == "/create_workflow":
                self._next_workflow += 1
                wanted = request.query.get("workflow_id") or request.query.get("name")
                if wanted in self.refuse_workflow_ids:
                    return _json(400, {"error": "invalid", "message": "not a workflow id"})
                workflow_id = wanted or f"wf{self._next_workflow}"
                self.stored.setdefault(workflow_id, [])
                return _json(200, {"id": workflow_id, "name": workflow_id, "status": "Running"})
            if path == EVENTS_PATH and self.events_api:
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return _json(self.fail_status, {"error": {"message": "injected failure"}})
                return self._events(request)
            if path in ("/api/snakemake/events", "/update_workflow_status"):
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return _json(self.fail_status, {"error": {"message": "injected failure"}})
                if path == "/update_workflow_status":
                    return self._classic(request)
                if self.batch:
                    return self._batch(request)
            if self.batch:
                return _json(404, {"error": {"message": "not found"}})
            return 200, "text/html; charset=utf-8", OLD_PANOPTES_404.encode()

    def _batch(self, request: Request) -> tuple[int, str, bytes]:
        payload = request.json()
        workflow_id = str(payload["workflow_id"])
        events = payload["events"]
        if any(event.get("level") in self.reject_levels for event in events):
            return _json(400, {"error": {"message": "invalid event"}})
        accepted = duplicates = 0
        for event in events:
            key = (workflow_id, str(event["event_id"]))
            if key in self._event_ids:
                duplicates += 1
                continue
            self._event_ids.add(key)
            self.stored.setdefault(workflow_id, []).append(event)
            accepted += 1
        body = {"workflow_id": workflow_id, "accepted": accepted, "duplicates": duplicates}
        return _json(200, body)

    def _events(self, request: Request) -> tuple[int, str, bytes]:
        if request.headers.get("content-type") != "application/json":
            return _json(415, {"error": "unsupported_media_type", "message": "JSON only"})
        try:
            payload = request.json()
        except ValueError:
            return _json(400, {"error": "bad_request", "message": "not JSON", "status": 400})
        errors = events_payload_errors(payload)
        if errors:
            return _json(
                422,
                {"error": "invalid", "message": "invalid", "status": 422, "details": errors},
            )
        events = payload["events"]
        if any(event["type"] in self.reject_types for event in events):
            return _json(422, {"error": "invalid", "message": "refused type", "status": 422})
        run_id = payload["run_id"]
        self.engines[run_id] = payload["engine"]
        accepted = duplicates = 0
        for event in events:
            key = (run_id, event["event_id"])
            if key in self._event_ids:
                duplicates += 1
                continue
            self._event_ids.add(key)
            self.stored.setdefault(run_id, []).append(event)
            accepted += 1
        body = {
            "run_id": run_id,
            "accepted": accepted,
            "duplicates": duplicates,
            "url": f"{self.url}/workflow/{run_id}",
        }
        return _json(200, body)

    def types(self, run_id: str | None = None) -> list[str]:
        """The ``type`` of every event stored by ``POST /api/events``, in order."""
        return [str(event.get("type")) for event in self.events(run_id)]

    def _classic(self, request: Request) -> tuple[int, str, bytes]:
        form = request.form()
        msg = json.loads(form["msg"])
        if msg.get("level") in self.reject_levels:
            return _json(400, {"errors": {"msg": ["invalid"]}})
        self.stored.setdefault(form["id"], []).append(msg)
        return 200, "text/html; charset=utf-8", b"ok"


def _json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    # HTTP/1.0: one request per connection, so stop() really cuts the client off.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if self.fake.delay:
            time.sleep(self.fake.delay)
        status, content_type, payload = self.fake.answer(request)
        request.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
