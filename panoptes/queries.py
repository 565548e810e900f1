"""Read-only queries shared by the API, the dashboard and the metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, case, func, select

from .config import stale_after
from .extensions import db
from .models import Workflow, utcnow
from .normalize.schema import WorkflowStatus


def runs_by_status(config: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """Number of runs by (engine, status as read): one GROUP BY, Stale split off by time."""
    stale = stale_after(config)
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
        select(Workflow.engine, status.label("status"), func.count()).group_by(
            Workflow.engine, status
        )
    )
    return {(engine, state): count for engine, state, count in rows}
