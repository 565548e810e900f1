"""What people do to runs: rename, cancel, delete, and retention."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import cast

from flask import current_app
from sqlalchemy import Table, delete, func, or_, select

from .. import config, queries, serializers
from ..extensions import db
from ..models import Job, RawEvent, RuleCount, Workflow, utcnow
from ..normalize.schema import WorkflowStatus
from . import projector
from .log import hub_action
from .transactions import write_transaction, writing

_WORKFLOWS = cast(Table, Workflow.__table__)
_JOBS = cast(Table, Job.__table__)
_RAW = cast(Table, RawEvent.__table__)
_RULE_COUNTS = cast(Table, RuleCount.__table__)


# How long a read of an unknown run waits for the projector before it answers 404.
MISS_CATCH_UP_SECONDS = 5.0


class Deleted(enum.Enum):
    DELETED = "deleted"
    MISSING = "missing"
    RUNNING = "running"  # a Running run (not Stale) is never deleted


def find_run(workflow_id: str) -> Workflow | None:
    """The run; on a miss, the events committed so far are projected first, so a client that
    has just created a run can read it at once (read-your-writes that costs only misses)."""
    found = db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()
    if found is None and projector.catch_up(timeout=MISS_CATCH_UP_SECONDS):
        db.session.rollback()  # end the read's snapshot (SQLite's WAL) to see the projection
        found = db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()
    return found


def _projected(workflow_id: str) -> Workflow | None:
    """The run as projected once every event committed so far is applied."""
    projector.catch_up()
    db.session.expire_all()
    return db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()


def _act(workflow_id: str, kind: str, body: dict[str, str]) -> Workflow | None:
    if _projected(workflow_id) is None:
        return None
    hub_action(workflow_id, kind, body)
    return _projected(workflow_id)


def rename(workflow_id: str, name: str) -> Workflow | None:
    """A person renames a run; engines no longer change the name afterwards."""
    return _act(workflow_id, "rename", {"name": name})


def cancel(workflow_id: str) -> Workflow | None:
    """A person marks a run cancelled."""
    return _act(workflow_id, "cancel", {})


def delete_workflow(workflow_id: str) -> Deleted:
    """Delete a run with its jobs and raw events (so a reindex does not bring it back), unless
    it is Running; decided on the locked row, in the transaction that deletes."""
    projector.catch_up()
    stale = config.stale_after(current_app.config)
    with writing() as connection:
        row = connection.execute(
            select(
                _WORKFLOWS.c.pk, _WORKFLOWS.c.engine, _WORKFLOWS.c.status, _WORKFLOWS.c.updated_at
            )
            .where(_WORKFLOWS.c.id == workflow_id)
            .with_for_update()
        ).first()
        if row is None:
            return Deleted.MISSING
        if serializers.effective_status(row, stale) == WorkflowStatus.RUNNING:
            return Deleted.RUNNING
        connection.execute(delete(_RULE_COUNTS).where(_RULE_COUNTS.c.workflow_pk == row.pk))
        connection.execute(delete(_JOBS).where(_JOBS.c.workflow_pk == row.pk))
        connection.execute(delete(_RAW).where(_RAW.c.workflow_id == workflow_id))
        connection.execute(delete(_WORKFLOWS).where(_WORKFLOWS.c.pk == row.pk))
    return Deleted.DELETED


def delete_all() -> int:
    """Delete every run, job and raw event; the number of runs deleted."""
    with write_transaction() as session:
        count = session.scalar(select(func.count()).select_from(Workflow)) or 0
        session.execute(delete(RuleCount))
        session.execute(delete(Job))
        session.execute(delete(Workflow))
        session.execute(delete(RawEvent))
        return count


def prune(older_than: timedelta, batch_size: int = 500) -> int:
    """Delete runs (with their jobs and raw events) silent for longer than ``older_than``.

    A Running run is kept unless it is also Stale. Works in batches, one transaction each, so a
    large clean-up never holds the database for long. Returns the number of runs deleted.
    """
    now = utcnow()
    cutoff = now - older_than
    stale = config.stale_after(current_app.config)
    deleted = 0
    while True:
        with write_transaction() as session:
            query = select(Workflow.pk, Workflow.id).where(
                Workflow.updated_at < cutoff,
                or_(Workflow.status != WorkflowStatus.RUNNING, queries.stale_runs(stale, now)),
            )
            rows = session.execute(query.limit(batch_size)).all()
            if not rows:
                return deleted
            pks = [pk for pk, _ in rows]
            ids = [workflow_id for _, workflow_id in rows]
            session.execute(delete(RuleCount).where(RuleCount.workflow_pk.in_(pks)))
            session.execute(delete(Job).where(Job.workflow_pk.in_(pks)))
            session.execute(delete(RawEvent).where(RawEvent.workflow_id.in_(ids)))
            session.execute(delete(Workflow).where(Workflow.pk.in_(pks)))
            deleted += len(rows)
