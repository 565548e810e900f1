"""Engine set-up per database kind.

SQLite: WAL (readers never block the writer), a busy timeout, and BEGIN IMMEDIATE for write
transactions, so that several gunicorn workers queue for the write lock instead of failing with
"database is locked" when a deferred transaction tries to upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


class WriterQueue:
    """Writers of one SQLite file wait here, in the kernel, instead of in SQLite's busy handler.

    SQLite's handler sleeps and retries (up to 100 ms a sleep), so a waiting writer often
    sleeps past the moment the lock is free: that made the slowest requests hundreds of ms
    under load (bench/PROFILES.md). A thread lock orders this process's threads; an flock on
    ``<database>.write-lock`` orders the processes.

    One queue per engine and process. Its lock file stays open (opening it per write cost two
    system calls per event) until the engine is gone; an flock belongs to the open file, so
    two engines on one database still exclude each other.
    """

    def __init__(self, database: str) -> None:
        self.path = database + ".write-lock"
        self.threads = threading.Lock()
        self._descriptor: int | None = None
        self._opened = False

    def _lock_file(self) -> int | None:
        """The open lock file (None: it cannot be created); called holding ``threads``."""
        if not self._opened:
            self._opened = True
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
                self._descriptor = os.open(self.path, flags, 0o644)
            except OSError:  # a read-only directory: SQLite's own locking still applies
                return None
            weakref.finalize(self, os.close, self._descriptor)
        return self._descriptor

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.threads:
            descriptor = self._lock_file()
            if descriptor is None:
                yield
                return
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)


_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()
_QUEUES_LOCK = threading.Lock()


def _forget_queues() -> None:
    """A forked child (a gunicorn worker) starts with queues of its own: the parent's thread
    locks may be held at the fork, and its open lock files would be shared with the child."""
    global _QUEUES_LOCK
    _QUEUES_LOCK = threading.Lock()
    _QUEUES.clear()


os.register_at_fork(after_in_child=_forget_queues)


@contextlib.contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Hold the turn to write to a SQLite file (nothing to do for other databases)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    queue = _QUEUES.get(engine)
    if queue is None:
        with _QUEUES_LOCK:
            queue = _QUEUES.setdefault(engine, WriterQueue(database))
    with queue.held():
        yield


def configure(engine: Engine) -> None:
    """Attach the per-dialect hooks to a freshly created engine."""
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    if connection.get_execution_options().get("panoptes_write"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
