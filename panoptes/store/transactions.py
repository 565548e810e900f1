"""Write transactions: the only way anything in the hub writes.

On SQLite, writers first queue for their turn (``database.writer_turn``), then start with
BEGIN IMMEDIATE (see ``database.py``): taking the write lock up front is what keeps
concurrent workers from failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from .. import database
from ..extensions import db


def _end_reads() -> None:
    """End a read transaction this request's session may hold: with an in-memory SQLite
    database it holds the very connection a write is about to use."""
    if db.session.registry.has():
        session = db.session()
        if session.in_transaction():
            session.rollback()  # only reads can be pending: every write goes through here


@contextmanager
def writing() -> Iterator[Connection]:
    """A Core write transaction, committed on success and rolled back on any error."""
    _end_reads()
    engine = db.engine
    with (
        database.writer_turn(engine),
        engine.connect().execution_options(panoptes_write=True) as connection,
        connection.begin(),
    ):
        yield connection


@contextmanager
def write_transaction() -> Iterator[Session]:
    """An ORM write transaction (tokens, clean-ups), committed on success and rolled back on
    any error."""
    _end_reads()
    session = db.session()
    with database.writer_turn(db.engine):
        session.connection(execution_options={"panoptes_write": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
