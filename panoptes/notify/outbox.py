"""The notifications table's reads and writes: queue (insert or ignore), claim, record.

Writes take the hub's write turn (``store.write_transaction``: SQLite's BEGIN IMMEDIATE behind
the writer queue; plain transactions on PostgreSQL). Delivery itself happens between a claim and
its record, outside any transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..extensions import db
from ..models import Workflow
from ..store import write_transaction
from .models import DeliveryStatus, Notification

_TABLE = cast(Table, Notification.__table__)
_KEY = ("workflow_id", "transition", "rule", "receiver")
_CHUNK = 500

Key = tuple[str, str, str, str]


def existing_keys(workflow_ids: Iterable[str]) -> set[Key]:
    """The (workflow id, transition, rule, receiver) of every row of these runs."""
    ids = sorted(set(workflow_ids))
    keys: set[Key] = set()
    for start in range(0, len(ids), _CHUNK):
        rows = db.session.execute(
            select(
                Notification.workflow_id,
                Notification.transition,
                Notification.rule,
                Notification.receiver,
            ).where(Notification.workflow_id.in_(ids[start : start + _CHUNK]))
        )
        keys.update((r[0], r[1], r[2], r[3]) for r in rows)
    return keys


def queue(rows: Sequence[dict[str, Any]]) -> int:
    """Insert these notifications; one whose key exists already (another worker or hub
    instance queued it) is skipped. The number of rows the database was given."""
    if not rows:
        return 0
    insert_ = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert_(_TABLE).on_conflict_do_nothing(index_elements=list(_KEY))
    with write_transaction() as session:
        session.execute(statement, list(rows))
    return len(rows)


@dataclass(frozen=True, slots=True)
class Claimed:
    pk: int
    rule: str
    receiver: str
    title: str
    body: str
    kind: str
    attempts: int  # including this one


def any_due(now: datetime) -> bool:
    """Whether some notification waits for delivery (a read, so an idle notifier never takes
    the write turn)."""
    due = db.session.execute(
        select(_TABLE.c.pk)
        .where(
            _TABLE.c.status == DeliveryStatus.PENDING.value,
            _TABLE.c.next_attempt_at <= now,
        )
        .limit(1)
    ).first()
    db.session.rollback()
    return due is not None


def forget_orphans(before: datetime, limit: int = 1000) -> int:
    """Delete settled notifications created before ``before`` whose run is gone (deleted or
    pruned); the number deleted. A run that is gone cannot be told again, so nothing is lost."""
    gone = (
        select(_TABLE.c.pk)
        .where(
            _TABLE.c.created_at < before,
            _TABLE.c.status != DeliveryStatus.PENDING.value,
            ~exists().where(Workflow.id == _TABLE.c.workflow_id),
        )
        .limit(limit)
    )
    with write_transaction() as session:
        result = session.execute(delete(_TABLE).where(_TABLE.c.pk.in_(gone.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)


def claim(now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due notifications for delivery: their next attempt moves to the
    end of the lease, so no other notifier takes them meanwhile (one that dies while delivering
    leaves them to be retried when the lease ends). PostgreSQL skips rows another notifier is
    claiming at this moment; SQLite has one writer at a time."""
    due = (
        select(_TABLE.c.pk)
        .where(
            _TABLE.c.status == DeliveryStatus.PENDING.value,
            _TABLE.c.next_attempt_at <= now,
        )
        .order_by(_TABLE.c.next_attempt_at, _TABLE.c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(_TABLE)
        .where(_TABLE.c.pk.in_(due.scalar_subquery()))
        .values(attempts=_TABLE.c.attempts + 1, next_attempt_at=now + lease)
        .returning(
            _TABLE.c.pk,
            _TABLE.c.rule,
            _TABLE.c.receiver,
            _TABLE.c.title,
            _TABLE.c.body,
            _TABLE.c.kind,
            _TABLE.c.attempts,
        )
    )
    with write_transaction() as session:
        rows = session.execute(statement).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.pk)


def record(
    claimed: Claimed,
    now: datetime,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """The outcome of a delivery: sent (``error`` None), to be retried at ``retry_at``, or
    given up (``retry_at`` None). Only the claim that delivered it writes its outcome."""
    values: dict[str, Any]
    if error is None:
        values = {
            "status": DeliveryStatus.SENT.value,
            "sent_at": now,
            "next_attempt_at": None,
            "last_error": None,
        }
    elif retry_at is None:
        values = {
            "status": DeliveryStatus.FAILED.value,
            "next_attempt_at": None,
            "last_error": error,
        }
    else:
        values = {"next_attempt_at": retry_at, "last_error": error}
    with write_transaction() as session:
        session.execute(
            update(_TABLE)
            .where(
                _TABLE.c.pk == claimed.pk,
                _TABLE.c.attempts == claimed.attempts,
                _TABLE.c.status == DeliveryStatus.PENDING.value,
            )
            .values(**values)
        )


def for_run(workflow_id: str, limit: int = 50) -> list[Notification]:
    """The notifications of one run, oldest first (its page shows them)."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.workflow_id == workflow_id)
            .order_by(Notification.created_at, Notification.pk)
            .limit(limit)
        )
    )
