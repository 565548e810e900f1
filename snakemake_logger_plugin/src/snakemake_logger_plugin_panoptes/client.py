"""HTTP client for a panoptes hub: discovery, registration and delivery of events.

Two protocols are spoken:

- ``batch``: ``POST /api/snakemake/events`` with many events per request, each carrying a
  stable ``event_id`` so the hub ignores re-sent ones (our hub announces it in
  ``GET /api/service-info`` as ``"features": ["batch"]``);
- ``classic``: the panoptes ``POST /update_workflow_status`` form, one event per request,
  with the message keys of the upstream 0.3.0 plugin, for an old panoptes server.

Every request has a timeout. Failures are sorted into the few kinds the sender acts on:
retry later (:class:`HubUnavailable`), stop and tell the user once (:class:`HubAuthError`),
drop or split the payload (:class:`HubRejected`), fall back to the classic protocol
(:class:`BatchRouteMissing`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from .events import Event, JSONValue

PROTOCOL_BATCH = "batch"
PROTOCOL_CLASSIC = "classic"

# Answers that condemn the payload itself: such a batch is split to isolate the culprit.
PAYLOAD_STATUSES = frozenset({400, 413, 422})

SERVICE_INFO_PATH = "/api/service-info"
CREATE_PATH = "/create_workflow"
BATCH_PATH = "/api/snakemake/events"
CLASSIC_PATH = "/update_workflow_status"

try:
    _VERSION = version("snakemake-logger-plugin-panoptes")
except PackageNotFoundError:  # running from a source tree without installing
    _VERSION = "0"
USER_AGENT = f"snakemake-logger-plugin-panoptes/{_VERSION}"


@dataclass
class Delivery:
    """What became of a list of events: ``sent`` stored by the hub, ``rejected`` refused."""

    sent: int = 0
    rejected: int = 0

    @property
    def handled(self) -> int:
        """Leading events the hub has dealt with: they must not be sent again."""
        return self.sent + self.rejected


class HubError(Exception):
    """A request to the hub did not succeed.

    ``progress`` tells how many leading events of a :meth:`HubClient.deliver` call were
    handled before the failure (a refused batch is split, so some may have gone through).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.progress = Delivery()


class HubUnavailable(HubError):
    """The hub could not be reached or failed (connection error, timeout, 5xx, 408, 429).

    Worth retrying. ``refused`` is True when nothing listens at the address, which tells a
    hub that is down from one that is slow.
    """

    def __init__(self, message: str, *, status: int | None = None, refused: bool = False) -> None:
        super().__init__(message, status=status)
        self.refused = refused


class HubAuthError(HubError):
    """The hub refused the credentials (401 or 403): retrying will not help this run."""


class HubRejected(HubError):
    """The hub refused the payload itself (other 4xx, or an answer that is not a hub's)."""


class BatchRouteMissing(HubError):
    """The batch route is absent: the server is an old panoptes or lost the route."""


@dataclass(frozen=True)
class BatchResult:
    """The hub's answer to a batch: events stored and events it already had."""

    accepted: int
    duplicates: int


def normalise_address(address: str) -> str:
    """Return ``address`` with a scheme (``http://`` if none) and no trailing slash.

    Raises ``ValueError`` if it has no host.
    """
    text = address.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) address: {address!r}")
    return text.rstrip("/")


def classic_message(event: Event) -> dict[str, JSONValue] | None:
    """Return the ``msg`` the upstream 0.3.0 plugin would send for ``event``, or None.

    Old panoptes servers understand ``info``, ``progress``, ``job_info``, ``job_finished``,
    ``job_error``, ``error`` and ``workflow_success``; the metadata events of our own
    protocol are translated into those or left out.
    """
    level = event.get("level")
    stamp = {"timestamp": event.get("timestamp")}
    if level == "workflow_started":
        return {"level": "info", "msg": f"Workflow started: {event.get('snakefile')}", **stamp}
    if level == "run_info":
        stats = event.get("stats")
        total = stats.get("total") if isinstance(stats, dict) else None
        return {"level": "progress", "done": 0, "total": total, **stamp}
    if level == "rulegraph":
        return None
    if level == "workflow_finished":
        # panoptes turns workflow_success into Done; a failure was already sent as `error`.
        if event.get("success"):
            return {"level": "workflow_success", **stamp}
        return None
    if level == "job_info":
        keys = (
            "jobid", "name", "msg", "input", "output", "log", "wildcards", "is_checkpoint",
            "shellcmd", "threads", "priority", "reason", "resources",
        )  # fmt: skip
        return {"level": level, **{k: event.get(k) for k in keys}, **stamp}
    return {k: v for k, v in event.items() if k != "event_id"}


def _caused_by_refusal(exc: BaseException) -> bool:
    """Whether a requests/urllib3 connection error comes from ECONNREFUSED."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(current.args)
    return False


def _reason(response: requests.Response) -> str:
    """The hub's explanation of an error answer, as ``": <message>"``, or nothing."""
    body = _json_body(response)
    if isinstance(body, dict):
        message = body.get("message")
        if message is None and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        if isinstance(message, str) and message:
            return f": {message[:300]}"
    return ""


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # HTML, empty body, ...
        return None


class HubClient:
    """Talk to one hub over a keep-alive session. Not thread-safe: one thread per client."""

    def __init__(self, address: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        self.address = normalise_address(address)
        self.timeout = timeout
        # The environment is trusted as by any requests user: proxies (and NO_PROXY), and the
        # CA bundle of a hub served over https (REQUESTS_CA_BUNDLE, SSL_CERT_FILE).
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> requests.Response:
        limit = self.timeout if timeout is None else max(0.05, min(timeout, self.timeout))
        url = self.address + path
        try:
            response = self._session.request(method, url, timeout=(limit, limit), **kwargs)
        except requests.Timeout as exc:
            raise HubUnavailable(f"{method} {url} timed out after {limit:.1f} s") from exc
        except requests.ConnectionError as exc:
            refused = _caused_by_refusal(exc)
            reason = "connection refused" if refused else f"connection failed ({exc})"
            raise HubUnavailable(f"{method} {url}: {reason}", refused=refused) from exc
        except requests.RequestException as exc:
            raise HubUnavailable(f"{method} {url}: {exc}") from exc
        status = response.status_code
        if status in (401, 403):
            raise HubAuthError(f"{method} {url} answered {status}: token refused", status=status)
        if status >= 500 or status in (408, 429):
            raise HubUnavailable(f"{method} {url} answered {status}", status=status)
        return response

    def discover(self, *, timeout: float | None = None) -> str:
        """Return the protocol to use: ``batch`` if the hub announces it, else ``classic``."""
        response = self._request("GET", SERVICE_INFO_PATH, timeout=timeout)
        body = _json_body(response) if response.status_code == 200 else None
        features = body.get("features") if isinstance(body, dict) else None
        if isinstance(features, list) and PROTOCOL_BATCH in features:
            return PROTOCOL_BATCH
        return PROTOCOL_CLASSIC

    def register(
        self,
        *,
        workflow_id: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Create the workflow on the hub and return its id (as a string)."""
        params = {}
        if workflow_id:
            params["workflow_id"] = workflow_id
        if name:
            params["name"] = name
        response = self._request("GET", CREATE_PATH, params=params, timeout=timeout)
        where, status = f"GET {self.address}{CREATE_PATH}", response.status_code
        if status != 200:
            raise HubRejected(f"{where} answered {status}{_reason(response)}", status=status)
        body = _json_body(response)
        hub_id = body.get("id") if isinstance(body, dict) else None
        if hub_id is None or isinstance(hub_id, bool) or str(hub_id) == "":
            raise HubRejected(
                f"{where} answered without a workflow id: is this the address of a panoptes hub?",
                status=status,
            )
        return str(hub_id)

    def send_batch(
        self, workflow_id: str, events: Sequence[Event], *, timeout: float | None = None
    ) -> BatchResult:
        """Send events in one request to the batch route."""
        payload = json.dumps({"workflow_id": workflow_id, "events": list(events)})
        response = self._request(
            "POST",
            BATCH_PATH,
            data=payload.encode("utf-8"),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        status = response.status_code
        where = f"POST {self.address}{BATCH_PATH}"
        if status in (404, 405):
            raise BatchRouteMissing(f"{where} answered {status}", status=status)
        if status >= 400:
            raise HubRejected(f"{where} answered {status}{_reason(response)}", status=status)
        body = _json_body(response)
        if not isinstance(body, dict) or "accepted" not in body:
            # An old panoptes answers 200 with its HTML "not found" page for unknown paths.
            raise BatchRouteMissing(
                f"{where} answered {status} without a batch result",
                status=status,
            )
        return BatchResult(_int(body.get("accepted")), _int(body.get("duplicates")))

    def send_classic(self, workflow_id: str, event: Event, *, timeout: float | None = None) -> None:
        """Send one event as a panoptes ``/update_workflow_status`` form (skipped if it has
        no classic equivalent)."""
        msg = classic_message(event)
        if msg is None:
            return
        when = event.get("timestamp")
        local = time.localtime(when) if isinstance(when, int | float) else time.localtime()
        form = {"msg": json.dumps(msg), "timestamp": time.asctime(local), "id": workflow_id}
        response = self._request("POST", CLASSIC_PATH, data=form, timeout=timeout)
        if response.status_code >= 400:
            raise HubRejected(
                f"POST {self.address}{CLASSIC_PATH} answered {response.status_code}"
                f"{_reason(response)}",
                status=response.status_code,
            )

    def deliver(
        self,
        protocol: str,
        workflow_id: str,
        events: Sequence[Event],
        *,
        deadline: float | None = None,
    ) -> Delivery:
        """Deliver ``events`` in order with ``protocol`` and return what happened to them.

        Events the hub refuses one by one (a 4xx that is not about auth) are counted in
        ``rejected`` and skipped, so one malformed event cannot block the rest: a refused
        batch is split in halves until the culprit is isolated. Any other failure raises a
        :class:`HubError` whose ``progress`` tells how many leading events were handled.
        ``deadline`` (a ``time.monotonic()`` value) caps every request's timeout.
        """
        progress = Delivery()
        try:
            if protocol == PROTOCOL_BATCH:
                self._deliver_batch(workflow_id, list(events), deadline, progress)
            else:
                for event in events:
                    try:
                        self.send_classic(workflow_id, event, timeout=self._budget(deadline))
                    except HubRejected as exc:
                        if exc.status not in PAYLOAD_STATUSES:
                            raise
                        progress.rejected += 1
                    else:
                        progress.sent += 1
        except HubError as exc:
            exc.progress = progress
            raise
        return progress

    def _deliver_batch(
        self, workflow_id: str, events: list[Event], deadline: float | None, progress: Delivery
    ) -> None:
        try:
            self.send_batch(workflow_id, events, timeout=self._budget(deadline))
        except HubRejected as exc:
            if exc.status not in PAYLOAD_STATUSES:
                raise  # about the workflow, not one event: splitting would not help
            if len(events) == 1:
                progress.rejected += 1
                return
            middle = len(events) // 2
            self._deliver_batch(workflow_id, events[:middle], deadline, progress)
            self._deliver_batch(workflow_id, events[middle:], deadline, progress)
        else:
            progress.sent += len(events)

    def _budget(self, deadline: float | None) -> float | None:
        """The timeout for the next request: the configured one, or less near ``deadline``."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise HubUnavailable("no time left before the deadline")
        return left


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
