"""The background sender: batches events to the hub, retries, spills to disk, never blocks.

``submit()`` runs on the workflow engine's thread (Snakemake's logging thread, necroflow's
scheduler) and only appends to memory (or, past the buffer limit, to the spool file); all
network I/O happens on one daemon thread. The queue is, oldest first: the batch in flight,
the events spilled to the spool file, the events in memory. ``close()`` gives the thread a
bounded time to deliver the rest, then writes whatever is left to the spool file so that
the next run, or ``panoptes send-spool``, can deliver it. Where the events go is the
channel's business (``channels.py``).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .channels import Channel
from .spool import (
    SPOOL_SUFFIX,
    SpoolBusy,
    SpoolFile,
    SpoolHeader,
    find_spools,
    write_spool,
)
from .transport import (
    Event,
    HubAuthError,
    HubClient,
    HubError,
    HubRejected,
    HubUnavailable,
    RouteMissing,
    same_address,
)

# Retry delays while the run goes on: 0.5 s doubling up to 30 s, so a hub that comes back
# is noticed within half a minute and a dead one costs one connection attempt per 30 s.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# While closing, retries are quick: the whole close is bounded anyway.
CLOSING_BACKOFF = 0.2
# At most this many leftover spool files are picked up per run (each holds a lock and a fd).
MAX_LEFTOVERS = 32


class Notifier:
    """One-line messages for the user on stderr, each kind at most once unless repeated on
    purpose. The engine's logger is not usable here (the Snakemake plugin is one of its
    handlers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: set[str] = set()

    def say(self, text: str) -> None:
        """Print one line."""
        with self._lock:
            # Looked up on each call: the engine or a test may have replaced sys.stderr.
            stream = sys.stderr
            try:
                stream.write(f"[panoptes] {text}\n")
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass  # stderr closed: nothing sensible left to do

    def once(self, key: str, text: str) -> bool:
        """Print ``text`` unless a message with ``key`` was already printed."""
        with self._lock:
            if key in self._told:
                return False
            self._told.add(key)
        self.say(text)
        return True

    def forget(self, key: str) -> None:
        """Allow the message with ``key`` to be printed again."""
        with self._lock:
            self._told.discard(key)


@dataclass
class CloseReport:
    """What became of the run's events when the sender closed."""

    delivered: int = 0
    leftover_delivered: int = 0
    rejected: int = 0
    spooled: int = 0
    lost: int = 0
    spool_paths: list[Path] = field(default_factory=list)
    auth_failed: bool = False


@dataclass
class _Leftover:
    """A spool file of an earlier run, being delivered before this run's events."""

    spool: SpoolFile
    offset: int
    inflight: list[Event] = field(default_factory=list)
    exhausted: bool = False
    abandoned: bool = False  # the hub refused it: kept on disk, not retried in this run

    @property
    def delivered(self) -> bool:
        return self.exhausted and not self.inflight

    @property
    def done(self) -> bool:
        return self.abandoned or self.delivered


class Sender:
    """Deliver events to one hub from a background thread. See the module docstring."""

    def __init__(
        self,
        *,
        channel: Channel,
        address: str,
        run_id: str,
        spool_directory: Callable[[], Path],
        token: str | None = None,
        timeout: float = 10.0,
        requested_workflow_id: str | None = None,
        name: str | None = None,
        batch_size: int = 200,
        assigned_workflow_id: str | None = None,
        flush_interval: float = 0.25,
        buffer_limit: int = 10_000,
        notifier: Notifier | None = None,
        pick_up_leftovers: bool = True,
    ) -> None:
        self.channel = channel
        self.address = address
        self.run_id = run_id
        self.token = token
        self.timeout = timeout
        self.requested_workflow_id = requested_workflow_id
        self.name = name
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.buffer_limit = buffer_limit
        self._spool_directory = spool_directory
        self.notifier = notifier or Notifier()
        self._pick_up_leftovers = pick_up_leftovers

        self._cond = threading.Condition()
        # Queue state, guarded by _cond.
        self._memory: deque[Event] = deque()
        self._spill: SpoolFile | None = None
        self._spill_offset = 0
        self._spill_pending = 0
        self._inflight: list[Event] = []
        self._first_pending_at: float | None = None
        self._leftovers: list[_Leftover] = []
        self._closing = False
        self._deadline = 0.0
        self._finalised = False
        self._blocked = False  # bad token or not a hub: nothing more to try this run
        self._give_up = False  # set while closing when the hub is plainly down
        self._report = CloseReport()
        self._thread: threading.Thread | None = None

        # Delivery state, used by the sender thread only.
        self._connected = False
        # A run id the hub assigned in advance (its launcher): nothing to register.
        self._workflow_id: str | None = assigned_workflow_id
        self._failures = 0
        self._outage = False

    # -- public API (any thread) ------------------------------------------------------------

    @property
    def workflow_id(self) -> str | None:
        """The hub's id for this run, once registered."""
        return self._workflow_id

    def submit(self, event: Event) -> None:
        """Queue one event. Never blocks on the network; starts the thread on first use."""
        with self._cond:
            if self._finalised:
                return
            if self._thread is None:
                self._start()
            was_empty = self._pending() == 0
            self._memory.append(event)
            if len(self._memory) > self.buffer_limit:
                self._spill_memory()
            if was_empty:
                self._first_pending_at = time.monotonic()
                self._cond.notify_all()
            elif self._pending() == self.batch_size:
                self._cond.notify_all()

    def close(self, timeout: float) -> CloseReport:
        """Deliver what can be delivered within ``timeout`` seconds, spool the rest.

        Safe to call more than once; later calls return the first report.
        """
        with self._cond:
            if self._finalised or self._closing:
                return self._report
            self._closing = True
            self._deadline = time.monotonic() + max(0.0, timeout)
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        with self._cond:
            self._finalised = True
            self._persist()
            self._cond.notify_all()
            return self._report

    # -- queue helpers (caller holds _cond) ----------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="panoptes-sender", daemon=True)
        self._thread.start()

    def _pending(self) -> int:
        return len(self._inflight) + self._spill_pending + len(self._memory)

    def _has_work(self) -> bool:
        return self._pending() > 0 or any(not left.done for left in self._leftovers)

    def _spool_path(self) -> Path:
        return self._spool_directory() / f"{self.run_id}{SPOOL_SUFFIX}"

    def _header(self) -> SpoolHeader:
        return SpoolHeader(
            run_id=self.run_id,
            address=self.address,
            workflow_id=self._workflow_id,
            requested_workflow_id=self.requested_workflow_id,
            name=self.name,
            channel=self.channel.name,
            engine=self.channel.engine,
        )

    def _spill_memory(self) -> None:
        """Move the events in memory to the end of the spool file."""
        try:
            if self._spill is None:
                self._spill = SpoolFile.create(self._spool_path(), self._header())
                self._spill_offset = self._spill.events_start
            self._spill_pending += self._spill.append(self._memory)
            self._memory.clear()
        except OSError as exc:
            # No disk to spill to: keep memory bounded by dropping the oldest, and say so.
            excess = len(self._memory) - self.buffer_limit
            for _ in range(excess):
                self._memory.popleft()
            self._report.lost += excess
            self.notifier.once(
                "spill-failed",
                f"cannot write the spool file ({exc}); events beyond {self.buffer_limit} "
                "buffered ones are being dropped while the hub is unreachable",
            )

    def _take_own_batch(self) -> list[Event]:
        if not self._inflight:
            if self._spill is not None and self._spill_pending:
                events, self._spill_offset = self._spill.read(self._spill_offset, self.batch_size)
                self._spill_pending = (
                    self._spill_pending - len(events) if events else 0  # unreadable tail
                )
                self._inflight = events
            if not self._inflight:
                count = min(self.batch_size, len(self._memory))
                self._inflight = [self._memory.popleft() for _ in range(count)]
        return list(self._inflight)

    def _persist(self) -> None:
        """Write what is still undelivered to spool files (called once, at close)."""
        report = self._report
        for left in self._leftovers:
            try:
                kept = 0 if left.delivered else left.spool.rewrite(left.inflight, left.offset)
                if kept == 0:
                    left.spool.delete()
                    continue
                left.spool.release()
                report.spooled += kept
                report.spool_paths.append(left.spool.path)
            except OSError as exc:
                left.spool.release()
                self.notifier.say(f"could not update {left.spool.path}: {exc}")
        self._leftovers = []

        own = self._pending()
        memory = list(self._memory)
        try:
            if own == 0:
                if self._spill is not None:
                    self._spill.delete()
            elif self._spill is not None:
                self._spill.header.workflow_id = self._workflow_id
                kept = self._spill.rewrite(self._inflight, self._spill_offset, memory)
                self._spill.release()
                report.spooled += kept
                report.spool_paths.append(self._spill.path)
            else:
                path = self._spool_path()
                report.spooled += write_spool(path, self._header(), [*self._inflight, *memory])
                report.spool_paths.append(path)
        except OSError as exc:
            if self._spill is not None:
                self._spill.release()
            report.lost += own
            self.notifier.say(f"could not write the spool file ({exc}): {own} events lost")
        self._inflight = []
        self._memory.clear()
        self._spill_pending = 0

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        client: HubClient | None = None
        try:
            client = HubClient(
                self.address,
                token=self.token,
                timeout=self.timeout,
                user_agent=self.channel.user_agent,
            )
            if self._pick_up_leftovers:
                self._load_leftovers()
            while self._wait_for_work():
                try:
                    progressed = self._step(client)
                except HubError as exc:
                    progressed = self._on_failure(exc)
                if not progressed:
                    self._backoff()
        except Exception as exc:  # a bug here must not go unnoticed, nor reach the engine
            self.notifier.say(f"sender stopped by an internal error: {exc!r}")
        finally:
            if client is not None:
                client.close()

    def _load_leftovers(self) -> None:
        directory = self._spool_directory()
        paths = find_spools(
            directory, self.address, exclude=self.run_id, channel=self.channel.name
        )[:MAX_LEFTOVERS]
        files = events = 0
        for path in paths:
            try:
                spool = SpoolFile.open_existing(path)
                count = spool.count_events(spool.events_start)
            except (SpoolBusy, OSError, ValueError):
                continue  # in use by a concurrent run, vanished, or not a spool file
            with self._cond:
                if self._finalised:
                    spool.release()
                    return
                self._leftovers.append(_Leftover(spool, spool.events_start))
            files += 1
            events += count
        if files:
            self.notifier.say(
                f"sending {events} events left over from earlier runs "
                f"({files} spool file(s) in {directory})"
            )

    def _wait_for_work(self) -> bool:
        """Block until a batch is due; False when the thread should stop."""
        with self._cond:
            while True:
                if self._finalised:
                    return False
                if self._closing:
                    return (
                        not self._blocked
                        and not self._give_up
                        and self._has_work()
                        and time.monotonic() < self._deadline
                    )
                if self._blocked:
                    self._cond.wait()
                    continue
                if self._inflight or any(not left.done for left in self._leftovers):
                    return True  # a retry, or leftovers: no reason to wait for more events
                pending = self._pending()
                if pending >= self.batch_size:
                    return True
                if pending and self._first_pending_at is not None:
                    wait = self._first_pending_at + self.flush_interval - time.monotonic()
                    if wait <= 0:
                        return True
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _backoff(self) -> None:
        """Sleep before the next attempt; a close() cuts the sleep short."""
        with self._cond:
            if self._closing:
                delay = CLOSING_BACKOFF
            else:
                exponent = min(max(self._failures - 1, 0), 16)
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**exponent)
                delay *= random.uniform(0.75, 1.0)  # avoid lockstep with other runs
            end = time.monotonic() + delay
            was_closing = self._closing
            while not self._finalised and (was_closing or not self._closing):
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def _deadline_or_none(self) -> float | None:
        with self._cond:
            return self._deadline if self._closing else None

    def _step(self, client: HubClient) -> bool:
        """Make one delivery attempt; True if events reached the hub."""
        deadline = self._deadline_or_none()
        if not self._connected:
            notice = self.channel.connect(client, timeout=_budget(deadline))
            self._connected = True
            if notice:
                self.notifier.once("fallback", notice)
        with self._cond:
            leftover = next((left for left in self._leftovers if not left.done), None)
        if leftover is not None:
            try:
                return self._send_leftover(client, leftover, deadline)
            except HubRejected as exc:
                # An old spool the hub will not take must not hold up this run's events.
                with self._cond:
                    leftover.abandoned = True
                self.notifier.say(f"{exc}; {leftover.spool.path} is left for later")
                return True
        return self._send_own(client, deadline)

    def _send_own(self, client: HubClient, deadline: float | None) -> bool:
        if self._workflow_id is None:
            header = self._header()
            self.channel.open_run(client, header, timeout=_budget(deadline))
            self._workflow_id = header.workflow_id
            assert self._workflow_id is not None
            with self._cond:
                if self._spill is not None and not self._finalised:
                    self._spill.note_workflow_id(self._workflow_id)
        with self._cond:
            if self._finalised:
                return False
            batch = self._take_own_batch()
        if not batch:
            return True
        try:
            progress = self.channel.deliver(client, self._header(), batch, deadline=deadline)
        except HubError as exc:
            with self._cond:
                if not self._finalised:
                    del self._inflight[: exc.progress.handled]
                    self._count(exc.progress.sent, exc.progress.rejected)
            raise
        with self._cond:
            if not self._finalised:
                self._inflight = []
                # Let what is left accumulate into a full batch for one more interval.
                self._first_pending_at = time.monotonic() if self._pending() else None
            self._count(progress.sent, progress.rejected)
        self._on_success()
        return True

    def _send_leftover(self, client: HubClient, left: _Leftover, deadline: float | None) -> bool:
        header = left.spool.header
        if header.workflow_id is None or not same_address(header.address, client.address):
            self.channel.open_run(client, header, timeout=_budget(deadline))
            header.address = client.address
            with self._cond:
                if not self._finalised and header.workflow_id is not None:
                    left.spool.note_workflow_id(header.workflow_id)
        with self._cond:
            if self._finalised:
                return False
            if not left.inflight:
                left.inflight, left.offset = left.spool.read(left.offset, self.batch_size)
                if not left.inflight:
                    left.exhausted = True
                    return True
            batch = list(left.inflight)
        try:
            progress = self.channel.deliver(client, header, batch, deadline=deadline)
        except HubError as exc:
            with self._cond:
                if not self._finalised:
                    del left.inflight[: exc.progress.handled]
            raise
        with self._cond:
            if not self._finalised:
                left.inflight = []
            self._report.leftover_delivered += progress.sent
            self._report.rejected += progress.rejected
        self._on_success()
        return True

    def _count(self, sent: int, rejected: int) -> None:
        self._report.delivered += sent
        self._report.rejected += rejected
        if rejected:
            self.notifier.once(
                "rejected",
                f"the hub refused {rejected} malformed event(s); they were dropped "
                "(see the hub's log for why)",
            )

    def _on_success(self) -> None:
        self._failures = 0
        if self._outage:
            self._outage = False
            self.notifier.say(f"{self.address} is reachable again; delivering buffered events")
            self.notifier.forget("unreachable")

    def _on_failure(self, exc: HubError) -> bool:
        """Act on a failed attempt; True if the next attempt should not wait."""
        self._failures += 1
        if isinstance(exc, HubAuthError):
            with self._cond:
                self._blocked = True
                self._report.auth_failed = True
            self.notifier.once(
                "auth",
                f"{self.address} refused the token (HTTP {exc.status}); events are kept in "
                f"{self._spool_path()}. {self.channel.token_hint}",
            )
            return False
        if isinstance(exc, RouteMissing):
            # An old panoptes behind the address (or the route vanished): speak its protocol.
            notice = self.channel.fall_back(exc)
            if notice is not None:
                self._failures = 0
                self.notifier.once("fallback", notice)
                return True
        if isinstance(exc, HubRejected | RouteMissing):
            with self._cond:
                self._blocked = True
            self.notifier.once(
                "refused",
                f"{exc}. Nothing more is sent in this run; events are kept in "
                f"{self._spool_path()}. {self.channel.settings_hint}",
            )
        elif isinstance(exc, HubUnavailable):
            with self._cond:
                if self._closing and exc.refused:
                    # Nothing listens: waiting out the close timeout would only delay exit.
                    self._give_up = True
                closing = self._closing
            if not self._outage and not closing:
                self._outage = True
                self.notifier.once(
                    "unreachable",
                    f"the hub is not taking events ({exc}); buffering them and retrying "
                    "in the background",
                )
        return False


def _budget(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise HubUnavailable("no time left before the close deadline")
    return left
