"""Spool files: events that could not be delivered yet, kept on disk.

One JSON Lines file per run, in a directory the integration chooses (the Snakemake plugin:
``.snakemake/panoptes/`` in the workflow's directory). Lines that hold the key
``panoptes_spool`` describe the run (the first one is the header; later ones update it,
e.g. with the hub's id of the run once known); every other line is one event, exactly as
its route takes it, ``event_id`` included, so re-sending a spool never duplicates what
already reached the hub. The header names the channel (route) the events go to, so
:func:`send_spool` sends any integration's spool file.

A run holds an exclusive ``flock`` on its spool file while it writes it; whoever else
picks a spool file up (the next run, or ``panoptes send-spool``) takes the lock first, so a
file is never sent twice at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .transport import Event, HubClient, HubError, RouteMissing, normalise_address, same_address

if TYPE_CHECKING:
    from .channels import Channel

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, a spool may be picked up twice
    fcntl = None  # type: ignore[assignment]

SPOOL_MARKER = "panoptes_spool"
SPOOL_FORMAT = 1
SPOOL_SUFFIX = ".jsonl"
_MARKER_PREFIX = b'{"' + SPOOL_MARKER.encode() + b'"'
# Spool files written before channels were named are the Snakemake plugin's.
LEGACY_CHANNEL = "snakemake"
_HEADER_KEYS = (
    "run_id", "address", "workflow_id", "requested_workflow_id", "name", "channel", "engine",
)  # fmt: skip


class SpoolBusy(RuntimeError):
    """The spool file is locked by another process (a run still writing it)."""


@dataclass
class SpoolHeader:
    """Where a spool's events belong: the hub address, the channel (route) and engine, and
    once known the hub's id of the run (``workflow_id``)."""

    run_id: str
    address: str
    workflow_id: str | None = None
    requested_workflow_id: str | None = None
    name: str | None = None
    channel: str = LEGACY_CHANNEL
    engine: str | None = None
    created: float = field(default_factory=time.time)

    def to_line(self) -> bytes:
        """Return the header as a spool line."""
        return _line({SPOOL_MARKER: SPOOL_FORMAT, **asdict(self)})

    def update(self, values: dict[str, Any]) -> None:
        """Apply the known keys of a header or update line."""
        for key in _HEADER_KEYS:
            if key in values:
                value = values[key]
                if key == "channel":
                    self.channel = LEGACY_CHANNEL if value is None else str(value)
                else:
                    setattr(self, key, None if value is None else str(value))
        if isinstance(values.get("created"), int | float):
            self.created = float(values["created"])


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def _lock(handle: IO[bytes], *, blocking: bool) -> bool:
    if fcntl is None:
        return True
    flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
    try:
        fcntl.flock(handle.fileno(), flags)
    except BlockingIOError:
        return False
    return True


class SpoolFile:
    """An open, locked spool file: appended to by its own run, read back in order.

    Readers work with byte offsets so a long spool is streamed, never loaded whole.
    """

    def __init__(self, path: Path, handle: IO[bytes], header: SpoolHeader, events_start: int):
        self.path = path
        self._handle = handle
        self.header = header
        self.events_start = events_start
        self.end = handle.seek(0, os.SEEK_END)

    @classmethod
    def create(cls, path: Path, header: SpoolHeader) -> SpoolFile:
        """Create a new spool file at ``path`` (its directory too) and lock it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "xb+")  # noqa: SIM115 - the SpoolFile owns the handle
        _lock(handle, blocking=True)
        handle.write(header.to_line())
        handle.flush()
        return cls(path, handle, header, handle.tell())

    @classmethod
    def open_existing(cls, path: Path) -> SpoolFile:
        """Open and lock a spool file written earlier.

        Raises ``SpoolBusy`` if its run still holds it, ``FileNotFoundError`` if it is gone
        and ``ValueError`` if it is not a spool file.
        """
        while True:
            handle = open(path, "rb+")  # noqa: SIM115 - the SpoolFile owns the handle
            if not _lock(handle, blocking=False):
                handle.close()
                raise SpoolBusy(f"{path} is in use by a running workflow")
            # The writer may have replaced the file (atomic rewrite) between our open and
            # our lock: then the lock is on the old, unlinked file. Start again.
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                handle.close()
                raise
            if same:
                break
            handle.close()
        try:
            header, events_start = _read_header(handle, path)
        except BaseException:
            handle.close()
            raise
        return cls(path, handle, header, events_start)

    def append(self, events: Iterable[Event]) -> int:
        """Append events; return how many. Each line is flushed to the OS at once."""
        data = b"".join(_line(event) for event in events)
        if not data:
            return 0
        self._handle.seek(0, os.SEEK_END)
        self._handle.write(data)
        self._handle.flush()
        self.end = self._handle.tell()
        return data.count(b"\n")

    def note_workflow_id(self, workflow_id: str) -> None:
        """Record the hub's workflow id, so the events can be sent later without a new one."""
        self.header.workflow_id = workflow_id
        self._handle.seek(0, os.SEEK_END)
        self._handle.write(_line({SPOOL_MARKER: SPOOL_FORMAT, "workflow_id": workflow_id}))
        self._handle.flush()
        self.end = self._handle.tell()

    def read(self, offset: int, limit: int) -> tuple[list[Event], int]:
        """Return up to ``limit`` events from byte ``offset``, and the offset after them.

        Header lines and undecodable lines (a line cut by a crash) are skipped.
        """
        events: list[Event] = []
        self._handle.seek(offset)
        while len(events) < limit and offset < self.end:
            raw = self._handle.readline()
            if not raw.endswith(b"\n"):
                break
            offset += len(raw)
            event = _decode_event(raw)
            if event is not None:
                events.append(event)
        return events, offset

    def iter_raw_events(self, offset: int) -> Iterator[bytes]:
        """Yield the raw event lines from byte ``offset`` to the end."""
        self._handle.seek(offset)
        position = offset
        while position < self.end:
            raw = self._handle.readline()
            if not raw.endswith(b"\n"):
                return
            position += len(raw)
            if not raw.startswith(_MARKER_PREFIX) and _decode_event(raw) is not None:
                yield raw

    def count_events(self, offset: int) -> int:
        """Count the events from byte ``offset`` to the end."""
        return sum(1 for _ in self.iter_raw_events(offset))

    def rewrite(self, head: Iterable[Event], offset: int, tail: Iterable[Event] = ()) -> int:
        """Atomically replace the file with: header, ``head``, the events of this file from
        ``offset`` on, ``tail``. Return the number of events kept."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        kept = 0
        with open(tmp, "wb") as out:
            out.write(self.header.to_line())
            for event in head:
                out.write(_line(event))
                kept += 1
            for raw in self.iter_raw_events(offset):
                out.write(raw)
                kept += 1
            for event in tail:
                out.write(_line(event))
                kept += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        return kept

    def delete(self) -> None:
        """Remove the file (all its events were delivered) and release it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Close the file, which drops the lock."""
        if not self._handle.closed:
            self._handle.close()


def _decode_event(raw: bytes) -> Event | None:
    if raw.startswith(_MARKER_PREFIX):
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or SPOOL_MARKER in event:
        return None
    return event


def _read_header(handle: IO[bytes], path: Path) -> tuple[SpoolHeader, int]:
    """Read the header and every later update line; return it and where events start."""
    handle.seek(0)
    first = handle.readline()
    try:
        values = json.loads(first)
    except ValueError:
        values = None
    if not isinstance(values, dict) or SPOOL_MARKER not in values:
        raise ValueError(f"{path} is not a panoptes spool file")
    header = SpoolHeader(run_id=str(values.get("run_id", path.stem)), address="")
    header.update(values)
    events_start = handle.tell()
    for raw in handle:
        if raw.startswith(_MARKER_PREFIX) and raw.endswith(b"\n"):
            try:
                header.update(json.loads(raw))
            except ValueError:
                continue
    return header, events_start


def read_header(path: Path) -> SpoolHeader | None:
    """Return the first line of a spool file as a header, or None if it is not one.

    Cheap (one line) and lock-free: for choosing candidates, not for sending.
    """
    try:
        with open(path, "rb") as handle:
            values = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict) or SPOOL_MARKER not in values:
        return None
    header = SpoolHeader(run_id=str(values.get("run_id", path.stem)), address="")
    header.update(values)
    return header


def find_spools(
    directory: Path,
    address: str,
    *,
    exclude: str | None = None,
    channel: str | None = None,
) -> list[Path]:
    """Return the spool files in ``directory`` meant for ``address`` (and ``channel``, if
    given), oldest first."""
    try:
        target = normalise_address(address)
    except ValueError:
        return []
    found: list[tuple[float, Path]] = []
    try:
        candidates = list(directory.glob(f"*{SPOOL_SUFFIX}"))
    except OSError:
        return []
    for path in candidates:
        if exclude is not None and path.stem == exclude:
            continue
        header = read_header(path)
        if header is None or (channel is not None and header.channel != channel):
            continue
        try:
            same = normalise_address(header.address) == target
        except ValueError:
            same = False
        if same:
            found.append((header.created, path))
    return [path for _, path in sorted(found)]


def write_spool(path: Path, header: SpoolHeader, events: Iterable[Event]) -> int:
    """Write a complete spool file atomically; return the number of events written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "wb") as out:
        out.write(header.to_line())
        for event in events:
            out.write(_line(event))
            count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return count


def send_spool(
    path: str | os.PathLike[str],
    address: str,
    token: str | None = None,
    timeout: float = 10.0,
    *,
    batch_size: int = 500,
    channel: Channel | None = None,
) -> int:
    """Send the events of a spool file to the hub at ``address``; return how many it took.

    The route is the one the spool's header names (``channel`` overrides it). The file is
    deleted once everything is delivered. If the hub fails part-way, the events not yet
    delivered stay in the file (with the hub's id of the run, so a later attempt continues
    the same run) and the ``HubError`` is raised. Events the hub refuses one by one are
    dropped and not counted. Raises ``SpoolBusy`` if a running workflow holds the file,
    ``FileNotFoundError`` / ``ValueError`` if it is missing, not a spool file, or of a kind
    no installed integration sends.
    """
    from .channels import channel_for

    spool = SpoolFile.open_existing(Path(path))
    try:
        chosen = channel if channel is not None else channel_for(spool.header)
        with HubClient(
            address, token=token, timeout=timeout, user_agent=chosen.user_agent
        ) as client:
            return _send_open_spool(spool, client, chosen, batch_size=max(1, batch_size))
    finally:
        spool.release()


def _send_open_spool(
    spool: SpoolFile, client: HubClient, channel: Channel, *, batch_size: int
) -> int:
    channel.connect(client)
    header = spool.header
    if header.workflow_id is None or not same_address(header.address, client.address):
        # The id is only meaningful on the hub that issued it.
        channel.open_run(client, header)
    header.address = client.address
    sent = 0
    offset = spool.events_start
    while True:
        events, next_offset = spool.read(offset, batch_size)
        if not events:
            break
        try:
            try:
                progress = channel.deliver(client, header, events)
            except RouteMissing as exc:
                # Announced but absent (an old panoptes answers HTML): use an older route.
                if channel.fall_back(exc) is None:
                    raise
                progress = channel.deliver(client, header, events)
        except HubError as exc:
            sent += exc.progress.sent
            spool.rewrite(events[exc.progress.handled :], next_offset)
            raise
        sent += progress.sent
        offset = next_offset
    spool.delete()
    return sent


__all__ = [
    "LEGACY_CHANNEL",
    "SPOOL_SUFFIX",
    "SpoolBusy",
    "SpoolFile",
    "SpoolHeader",
    "find_spools",
    "read_header",
    "send_spool",
    "write_spool",
]
