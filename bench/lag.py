"""Projection lag: how long after its 2xx an event becomes visible through the read API.

The hub answers once an event is appended to its log; a projector applies the log to runs and
jobs afterwards, in batches. ``GET /api/log`` says how far it got: ``appended`` (the newest
stored event's number) and ``pending`` (stored events not yet applied), so everything up to
``appended - pending`` is applied (SQLite numbers the log without gaps, one writer at a time).

:class:`LagSampler` polls ``/api/log`` on one keep-alive connection every ``interval`` during a
pass. The events that appeared between two polls (numbers in ``(previous appended, appended]``)
were not stored yet when the previous poll was sent, so each was acknowledged after that
moment; they are all visible at the latest when a later poll's answer shows them applied. The
difference of those two clock readings is an upper bound on the lag of every one of those
events, and each event of the group counts once with it: the percentiles over events are upper
bounds on the percentiles of the true lag (too high by at most one interval plus one request).
The sampler costs the hub one cheap request per interval (two indexed ``SELECT``s) and keeps
one number per poll.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import loadgen

INTERVAL_S = 0.02  # 50 polls a second at most; each costs the hub about 0.7 ms of CPU
DRAIN_LIMIT_S = 60.0  # after ``stop``, how long to wait for the last groups to become visible
MAX_GROUPS = 100_000  # bounds the memory of a very long pass (83 minutes of polls)
PROJECTION_WAIT_LIMIT_S = 300.0


@dataclass
class LagResult:
    """Upper bounds on the lag of the events of one pass, as (seconds, events) groups."""

    groups: list[tuple[float, int]] = field(default_factory=list)
    unresolved_events: int = 0  # still not visible ``DRAIN_LIMIT_S`` after the pass
    polls: int = 0
    errors: int = 0

    @property
    def events(self) -> int:
        return sum(count for _, count in self.groups)

    def percentile(self, q: float) -> float:
        """Lag percentile over events, in seconds (nearest rank; ``nan`` without events).
        Events never seen visible count as infinitely late."""
        total = self.events + self.unresolved_events
        if not total:
            return float("nan")
        rank = max(1, min(total, math.ceil(q / 100 * total)))
        seen = 0
        for lag, count in sorted(self.groups):
            seen += count
            if seen >= rank:
                return lag
        return float("inf")


def log_position(connection: loadgen.Connection) -> tuple[int, int]:
    """(appended, applied) as ``GET /api/log`` tells them."""
    status, body = connection.request("GET", b"/api/log")
    if status >= 300:
        raise loadgen.HttpError(f"GET /api/log: {status} {body[:200]!r}")
    answer = json.loads(body)
    appended = int(answer["appended"])
    return appended, appended - int(answer["pending"])


class LagSampler:
    """A thread polling ``/api/log`` during one pass (``start`` before, ``stop`` after)."""

    def __init__(self, host: str, port: int, interval: float = INTERVAL_S) -> None:
        self._connection = loadgen.Connection(host, port)
        self._interval = interval
        self._stopping = threading.Event()
        self._result = LagResult()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        """Start polling; returns once the log's current end is known (it is not counted)."""
        self._thread.start()
        self._ready.wait(timeout=30)

    def stop(self) -> LagResult:
        """Stop once every group seen so far is visible (or ``DRAIN_LIMIT_S`` has passed)."""
        self._stopping.set()
        self._thread.join(timeout=DRAIN_LIMIT_S + 30)
        self._connection.close()
        return self._result

    def _poll(self) -> tuple[float, float, int, int] | None:
        sent = time.perf_counter()
        try:
            appended, applied = log_position(self._connection)
        except (OSError, loadgen.HttpError, ValueError, KeyError):
            self._result.errors += 1
            self._connection.close()
            return None
        self._result.polls += 1
        return sent, time.perf_counter(), appended, applied

    def _run(self) -> None:
        waiting: deque[tuple[int, int, float]] = deque()  # (last number, events, not before)
        first = None
        while first is None and not self._stopping.is_set():
            first = self._poll()
            if first is None:
                time.sleep(self._interval)
        self._ready.set()
        if first is None:
            return
        previous_sent, _, last, _ = first
        drain_deadline: float | None = None
        while True:
            polled = self._poll()
            if polled is not None:
                sent, answered, appended, applied = polled
                if appended > last and len(self._result.groups) < MAX_GROUPS:
                    waiting.append((appended, appended - last, previous_sent))
                last = max(last, appended)
                while waiting and waiting[0][0] <= applied:
                    _, count, since = waiting.popleft()
                    self._result.groups.append((answered - since, count))
                previous_sent = sent
            if self._stopping.is_set():
                if not waiting:
                    return
                drain_deadline = drain_deadline or time.monotonic() + DRAIN_LIMIT_S
                if time.monotonic() > drain_deadline:
                    self._result.unresolved_events = sum(count for _, count, _ in waiting)
                    return
            time.sleep(self._interval)


def wait_until_projected(host: str, port: int) -> float:
    """Seconds until the hub's log has nothing left to apply (``GET /api/log``)."""
    started = time.perf_counter()
    connection = loadgen.Connection(host, port)
    try:
        while True:
            appended, applied = log_position(connection)
            if applied >= appended:
                break
            if time.perf_counter() - started > PROJECTION_WAIT_LIMIT_S:
                break  # the pass's check reports what is missing
            time.sleep(0.002)
    finally:
        connection.close()
    return time.perf_counter() - started
