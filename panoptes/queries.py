"""Read-only queries shared by the API, the dashboard and the metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from .extensions import db
from .models import Workflow, utcnow
from .normalize.schema import WorkflowStatus

# Columns a list of runs never shows; loading them for 1,000 runs would cost megabytes.
HEAVY_WORKFLOW_COLUMNS = (
    Workflow.params,
    Workflow.config,
    Workflow.dag,
    Workflow.stats,
    Workflow.metrics,
    Workflow.progress_detail,
    Workflow.error_report,
    Workflow.extra,
)


def status_filter(statuses: Iterable[WorkflowStatus], stale: timedelta | None) -> Any:
    """SQL for runs whose status *as read* is one of ``statuses`` (Stale: Running, silent)."""
    cutoff = utcnow() - stale if stale is not None else None
    clauses = []
    for status in statuses:
        if status is WorkflowStatus.STALE:
            if cutoff is not None:
                clauses.append(
                    and_(Workflow.status == WorkflowStatus.RUNNING, Workflow.updated_at < cutoff)
                )
        elif status is WorkflowStatus.RUNNING and cutoff is not None:
            clauses.append(
                and_(Workflow.status == WorkflowStatus.RUNNING, Workflow.updated_at >= cutoff)
            )
        else:
            clauses.append(Workflow.status == status.value)
    return or_(*clauses) if clauses else Workflow.pk.is_(None)


def like_pattern(text: str) -> str:
    """A LIKE pattern for a case-insensitive substring search (escape with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def runs_by_status(stale: timedelta | None, *conditions: Any) -> dict[tuple[str, str], int]:
    """Number of runs by (engine, status as read) under ``conditions``: one GROUP BY, Stale
    split off from Running by time."""
    status: Any = Workflow.status
    if stale is not None:
        cutoff = utcnow() - stale
        status = case(
            (
                and_(Workflow.status == WorkflowStatus.RUNNING, Workflow.updated_at < cutoff),
                WorkflowStatus.STALE.value,
            ),
            else_=Workflow.status,
        )
    rows = db.session.execute(
        select(Workflow.engine, status.label("status"), func.count())
        .where(*conditions)
        .group_by(Workflow.engine, status)
    )
    return {(engine, state): count for engine, state, count in rows}
