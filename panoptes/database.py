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
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


class _WriterQueue:
    """Writers of one SQLite file wait here, in the kernel, instead of in SQLite's busy handler.

    SQLite's handler sleeps and retries (up to 100 ms a sleep), so a waiting writer often
    sleeps past the moment the lock is free: that made the slowest requests hundreds of ms
    under load (bench/PROFILES.md). A thread lock orders this process's threads; an flock on
    ``<database>.write-lock`` orders the processes.
    """

    def __init__(self, database: str) -> None:
        self.path = database + ".write-lock"
        self.threads = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.threads:
            try:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            except OSError:  # a read-only directory: SQLite's own locking still applies
                yield
                return
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)  # which unlocks


_QUEUES: dict[str, _WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


@contextlib.contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Hold the turn to write to a SQLite file (nothing to do for other databases)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with _QUEUES_LOCK:
        queue = _QUEUES.setdefault(database, _WriterQueue(database))
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
