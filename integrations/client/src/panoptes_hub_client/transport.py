"""HTTP to a panoptes hub: one keep-alive session, timeouts, and failures sorted by kind.

Every request has a timeout. Failures are sorted into the few kinds a sender acts on:
retry later (:class:`HubUnavailable`), stop and tell the user once (:class:`HubAuthError`),
drop or split the payload (:class:`HubRejected`), fall back to an older route
(:class:`RouteMissing`). What is sent, and to which route, is a channel's business
(``channels.py``); this module knows no engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import requests

JSONValue = Any
"""A value made only of dict, list, str, int, float, bool and None."""

Event = dict[str, JSONValue]
"""One event for the hub, as its route takes it; ``event_id`` makes re-sending it harmless."""

# Answers that condemn the payload itself: such a batch is split to isolate the culprit.
PAYLOAD_STATUSES = frozenset({400, 413, 422})

SERVICE_INFO_PATH = "/api/service-info"

try:
    _VERSION = version("panoptes-hub-client")
except PackageNotFoundError:  # running from a source tree without installing
    _VERSION = "0"
USER_AGENT = f"panoptes-hub-client/{_VERSION}"


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

    ``progress`` tells how many leading events of a delivery were handled before the
    failure (a refused batch is split, so some may have gone through).
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


class RouteMissing(HubError):
    """The route is absent: the server is an older panoptes or lost the route."""


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


def same_address(a: str, b: str) -> bool:
    """Whether two addresses name the same hub (after :func:`normalise_address`)."""
    try:
        return normalise_address(a) == normalise_address(b)
    except ValueError:
        return False


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


def reason(response: requests.Response) -> str:
    """The hub's explanation of an error answer, as ``": <message>"``, or nothing."""
    body = json_body(response)
    if isinstance(body, dict):
        message = body.get("message")
        if message is None and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        if isinstance(message, str) and message:
            return f": {message[:300]}"
    return ""


def json_body(response: requests.Response) -> Any:
    """The answer's JSON body, or None when it has none (HTML, empty, ...)."""
    try:
        return response.json()
    except ValueError:
        return None


def budget(deadline: float | None) -> float | None:
    """The timeout left before ``deadline`` (a ``time.monotonic()`` value), or None.

    Raises :class:`HubUnavailable` when the deadline has passed.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise HubUnavailable("no time left before the deadline")
    return left


class HubClient:
    """Talk to one hub over a keep-alive session. Not thread-safe: one thread per client."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.address = normalise_address(address)
        self.timeout = timeout
        # The environment is trusted as by any requests user: proxies (and NO_PROXY), and the
        # CA bundle of a hub served over https (REQUESTS_CA_BUNDLE, SSL_CERT_FILE).
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """Make one request; raise :class:`HubUnavailable` or :class:`HubAuthError` for the
        failures every route shares, return the response otherwise."""
        limit = self.timeout if timeout is None else max(0.05, min(timeout, self.timeout))
        url = self.address + path
        try:
            response = self._session.request(method, url, timeout=(limit, limit), **kwargs)
        except requests.Timeout as exc:
            raise HubUnavailable(f"{method} {url} timed out after {limit:.1f} s") from exc
        except requests.ConnectionError as exc:
            refused = _caused_by_refusal(exc)
            why = "connection refused" if refused else f"connection failed ({exc})"
            raise HubUnavailable(f"{method} {url}: {why}", refused=refused) from exc
        except requests.RequestException as exc:
            raise HubUnavailable(f"{method} {url}: {exc}") from exc
        status = response.status_code
        if status in (401, 403):
            raise HubAuthError(f"{method} {url} answered {status}: token refused", status=status)
        if status >= 500 or status in (408, 429):
            raise HubUnavailable(f"{method} {url} answered {status}", status=status)
        return response

    def post_json(
        self, path: str, payload: Any, *, timeout: float | None = None
    ) -> requests.Response:
        """POST ``payload`` as JSON (see :meth:`request` for the failures raised)."""
        return self.request(
            "POST",
            path,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )

    def service_features(self, *, timeout: float | None = None) -> list[str]:
        """The ``features`` the hub announces in ``GET /api/service-info`` (empty if none)."""
        response = self.request("GET", SERVICE_INFO_PATH, timeout=timeout)
        body = json_body(response) if response.status_code == 200 else None
        features = body.get("features") if isinstance(body, dict) else None
        if isinstance(features, list):
            return [str(feature) for feature in features]
        return []


def deliver_split(
    send: Callable[[list[Event], float | None], None],
    events: Sequence[Event],
    *,
    deadline: float | None = None,
) -> Delivery:
    """Deliver ``events`` in order through ``send(batch, timeout)``; return what happened.

    A batch the hub refuses as bad input (400, 413, 422) is split in halves until the
    culprit is isolated, counted in ``rejected`` and skipped, so one malformed event cannot
    block the rest. Any other failure raises a :class:`HubError` whose ``progress`` tells
    how many leading events were handled. ``deadline`` caps every request's timeout.
    """
    progress = Delivery()

    def attempt(batch: list[Event]) -> None:
        try:
            send(batch, budget(deadline))
        except HubRejected as exc:
            if exc.status not in PAYLOAD_STATUSES:
                raise  # about the run or the route, not one event: splitting would not help
            if len(batch) == 1:
                progress.rejected += 1
                return
            middle = len(batch) // 2
            attempt(batch[:middle])
            attempt(batch[middle:])
        else:
            progress.sent += len(batch)

    try:
        if events:
            attempt(list(events))
    except HubError as exc:
        exc.progress = progress
        raise
    return progress


def as_int(value: Any) -> int:
    """``value`` if it is a real int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
