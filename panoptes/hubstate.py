"""Small values the whole hub shares through its database: the generated cookie-signing key,
and the row ``/readyz`` writes to prove the database takes writes.

Every worker, every instance and every restart read the same row, so a key generated on the
first start signs the cookies of all of them.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime

from flask import Flask
from sqlalchemy import Engine, String, Text, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import database
from .extensions import db
from .models import Base, utcnow

SECRET_KEY = "secret_key"
READINESS = "readiness"


class HubState(Base):
    """One named value."""

    __tablename__ = "hub_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


def stored_secret_key(engine: Engine) -> str:
    """The hub's cookie-signing key, generated (256 random bits) and stored on first use.

    Processes starting together may both generate one: the first insert wins, the others read
    it back.
    """
    query = select(HubState.value).where(HubState.name == SECRET_KEY)
    with engine.connect() as connection:
        key = connection.scalar(query)
    if key:
        return key
    candidate = secrets.token_hex(32)
    try:
        with (
            database.writer_turn(engine),
            engine.connect().execution_options(panoptes_write=True) as connection,
            connection.begin(),
        ):
            connection.execute(
                insert(HubState).values(name=SECRET_KEY, value=candidate, updated_at=utcnow())
            )
    except IntegrityError:
        pass  # another process stored its key first
    with engine.connect() as connection:
        stored = connection.scalar(query)
    if not stored:
        raise RuntimeError("the generated secret key could not be stored")
    return stored


def prove_writable(engine: Engine) -> None:
    """Commit one tiny write (replace the readiness row); raises what the database raises
    when it cannot take it (read-only, full disk, unreachable)."""
    with (
        database.writer_turn(engine),
        engine.connect().execution_options(panoptes_write=True) as connection,
        connection.begin(),
    ):
        connection.execute(delete(HubState).where(HubState.name == READINESS))
        now = utcnow()
        connection.execute(
            insert(HubState).values(name=READINESS, value=now.isoformat(), updated_at=now)
        )


_KEY_LOCK = threading.Lock()


def ensure_secret_key(app: Flask) -> None:
    """Give ``app`` the stored key when none is configured (once per process)."""
    if app.secret_key:
        return
    with _KEY_LOCK:
        if not app.secret_key:
            with app.app_context():
                app.secret_key = stored_secret_key(db.engine)
