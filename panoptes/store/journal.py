"""The journal: the log's tier for when the database cannot store an event.

While the database is unreachable, read-only, full or restarting, ingestion still answers 2xx
as long as it can keep the event durably here: an append-only, fsync'd file of JSON lines per
hub process (``<journal dir>/journal-<host>-<pid>-<start>.jsonl``). A replayer appends its
entries to ``raw_events`` in order once the database is back, and only then removes the
file. Each entry carries a unique event id (its own, or one given here), so a replay cut short
by a crash and done again stores nothing twice.

The journal is bounded by size and by the age of its oldest entry; past either, ingestion
answers 503 with Retry-After (``Unavailable``). While a process's journal holds entries, that
process journals its new events too, so a run's events keep their order.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from ..models import utcnow
from ..normalize import coerce

log = logging.getLogger(__name__)

_KEY = "panoptes.journal"
REPLAY_BATCH = 500


class Unavailable(Exception):
    """Neither the database nor the journal can store the event now: try again later."""

    retry_after = 5


@dataclass(frozen=True, slots=True)
class JournalState:
    entries: int
    oldest: datetime | None


def directory(app: Flask) -> Path:
    """Where this hub keeps its journal (``PANOPTES_JOURNAL_DIR``; by default beside a SQLite
    database file, else ``.panoptes-journal`` in the working directory)."""
    configured = app.config.get("JOURNAL_DIR")
    if configured:
        return Path(configured).expanduser()
    url = str(app.config.get("SQLALCHEMY_DATABASE_URI") or "")
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".journal")
    return Path.cwd() / ".panoptes-journal"


class Journal:
    """One process's journal file, and the replay of every file of the directory."""

    def __init__(self, path: Path, max_bytes: int, max_age: timedelta) -> None:
        self.directory = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.RLock()
        self._file: Any = None
        self._pid: int | None = None
        self._bytes = 0
        self._entries = 0
        self._oldest: datetime | None = None

    # -- writing --------------------------------------------------------------------------

    def _own_file(self) -> Any:
        """This process's file, opened and locked on first use (again after a fork)."""
        if self._file is not None and self._pid == os.getpid():
            return self._file
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"journal-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        handle = open(self.directory / name, "a+b")  # noqa: SIM115 - kept open for the process
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a replayer leaves a live process's file
        weakref.finalize(self, handle.close)
        self._file, self._pid = handle, os.getpid()
        self._bytes = self._entries = 0
        self._oldest = None
        return handle

    def holds_events(self) -> bool:
        """Whether this process has journaled events not yet replayed."""
        return self._entries > 0 and self._pid == os.getpid()

    def add(self, entries: Sequence[Any]) -> list[Any]:
        """Keep these log entries durably; the entries as kept (each with an event id).
        Raises ``Unavailable`` when the journal is full, too old or cannot be written."""
        now = utcnow()
        kept = [
            entry if entry.dedupe_key else _with_key(entry, f"journal:{uuid.uuid4().hex}")
            for entry in entries
        ]
        lines = b"".join(_line(entry) for entry in kept)
        with self._lock:
            if self._oldest is not None and now - self._oldest > self.max_age:
                raise Unavailable("the journal's oldest event is older than it may grow")
            if self._bytes + len(lines) > self.max_bytes:
                raise Unavailable("the journal is full")
            try:
                handle = self._own_file()
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as error:
                raise Unavailable(f"the journal cannot be written: {error}") from None
            self._bytes += len(lines)
            self._entries += len(kept)
            self._oldest = self._oldest or now
        return kept

    def state(self) -> JournalState:
        """Entries kept by every process of this directory, and the oldest one's time."""
        entries, oldest = 0, None
        for path in sorted(self.directory.glob("journal-*.jsonl")):
            with contextlib.suppress(OSError):
                with path.open("rb") as handle:
                    count = sum(1 for line in handle if line.strip())
                if count:
                    entries += count
                    moment = datetime.fromtimestamp(path.stat().st_ctime).astimezone()
                    oldest = moment if oldest is None else min(oldest, moment)
        return JournalState(entries, oldest)

    # -- replaying ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _claimed(self, path: Path) -> Iterator[Any]:
        """The file to replay, if no live process writes it: ours (under our lock), or one an
        ended process left behind (its flock is free)."""
        if (
            self._file is not None
            and self._pid == os.getpid()
            and path.name == Path(self._file.name).name
        ):
            with self._lock:
                yield self._file
            return
        try:
            handle = path.open("rb+")
        except OSError:
            yield None
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            yield None  # a live process's journal: it replays it itself
            return
        try:
            yield handle
        finally:
            handle.close()

    def replay(self, store_entries: Any) -> int:
        """Append every journaled entry to the log with ``store_entries(entries)`` (which
        commits, skipping event ids already stored), in order; the number replayed. Stops at
        the first failure (the database is still away): what is left is tried next time."""
        if not self.directory.is_dir():
            return 0
        replayed = 0
        for path in sorted(self.directory.glob("journal-*.jsonl"), key=_start_of):
            with self._claimed(path) as handle:
                if handle is None:
                    continue
                handle.seek(0)
                entries = [_entry(line) for line in handle.read().splitlines() if line.strip()]
                for start in range(0, len(entries), REPLAY_BATCH):
                    store_entries(entries[start : start + REPLAY_BATCH])
                replayed += len(entries)
                if handle is self._file:
                    handle.seek(0)
                    handle.truncate()
                    os.fsync(handle.fileno())
                    self._bytes = self._entries = 0
                    self._oldest = None
                else:
                    path.unlink(missing_ok=True)
        return replayed


def _start_of(path: Path) -> tuple[int, str]:
    """Files in the order their processes started journaling (then by name)."""
    try:
        return int(path.stem.rsplit("-", 1)[-1]), path.name
    except ValueError:
        return 0, path.name


def _with_key(entry: Any, key: str) -> Any:
    from .log import Entry

    return Entry(entry.engine, entry.kind, entry.workflow_id, entry.body, entry.received_at, key)


def _line(entry: Any) -> bytes:
    record = {
        "engine": entry.engine,
        "kind": entry.kind,
        "workflow_id": entry.workflow_id,
        "received_at": entry.received_at.isoformat(),
        "dedupe_key": entry.dedupe_key,
        "body": coerce.dumps(entry.body),
    }
    return json.dumps(record, ensure_ascii=True).encode() + b"\n"


def _entry(line: bytes) -> Any:
    from .log import Entry

    record = json.loads(line)
    return Entry(
        record["engine"],
        record["kind"],
        record["workflow_id"],
        coerce.JsonText(record["body"]),
        datetime.fromisoformat(record["received_at"]),
        record["dedupe_key"],
    )


def for_app(app: Flask) -> Journal:
    journal: Journal | None = app.extensions.get(_KEY)
    if journal is None:
        journal = app.extensions.setdefault(
            _KEY,
            Journal(
                directory(app),
                int(app.config["JOURNAL_MAX_BYTES"]),
                timedelta(hours=float(app.config["JOURNAL_MAX_AGE_HOURS"])),
            ),
        )
    return journal
