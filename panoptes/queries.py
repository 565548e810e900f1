"""Read-only queries shared by the API, the dashboard and the metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, not_, or_, select

from .config import Staleness
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


def stale_runs(stale: Staleness, now: datetime | None = None) -> Any:
    """SQL for Running runs silent for longer than their engine allows."""
    now = now or utcnow()
    silent = []
    thresholds: list[tuple[Any, timedelta | None]] = [
        (Workflow.engine == engine, after) for engine, after in stale.by_engine.items()
    ]
    thresholds.append((Workflow.engine.not_in(list(stale.by_engine)), stale.default))
    for engine_is, after in thresholds:
        if after is not None:
            silent.append(and_(engine_is, Workflow.updated_at < now - after))
    if not silent:
        return false()
    return and_(Workflow.status == WorkflowStatus.RUNNING, or_(*silent))


def status_filter(statuses: Iterable[WorkflowStatus], stale: Staleness) -> Any:
    """SQL for runs whose status *as read* is one of ``statuses`` (Stale: Running, silent)."""
    silent = stale_runs(stale)
    clauses = []
    for status in statuses:
        if status is WorkflowStatus.STALE:
            clauses.append(silent)
        elif status is WorkflowStatus.RUNNING:
            clauses.append(and_(Workflow.status == WorkflowStatus.RUNNING, not_(silent)))
        else:
            clauses.append(Workflow.status == status.value)
    return or_(*clauses) if clauses else false()


def like_pattern(text: str) -> str:
    """A LIKE pattern for a case-insensitive substring search (escape with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def runs_by_status(stale: Staleness, *conditions: Any) -> dict[tuple[str, str], int]:
    """Number of runs by (engine, status as read) under ``conditions``: one GROUP BY, Stale
    split off from Running by time."""
    status: Any = case((stale_runs(stale), WorkflowStatus.STALE.value), else_=Workflow.status)
    rows = db.session.execute(
        select(Workflow.engine, status.label("status"), func.count())
        .where(*conditions)
        .group_by(Workflow.engine, status)
    )
    return {(engine, state): count for engine, state, count in rows}
