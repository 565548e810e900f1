"""Which notifications are due, decided from the runs' settled state (never from the ingestion
path, so duplicates, replays, ``panoptes reindex``, workers and hub instances all agree).

A *transition* is something to tell: a run that settled in a status (unchanged for the grace
period, so a run flapping Error -> Running -> Error is told once it settles), or a Running run
silent past its engine's Stale threshold. Its *key* is derived from stored state only:

- a settled status: ``"<status>:<the run's start>"``: one message per status per run, however
  often it flaps or a late event (Snakemake's final error after its transient one) arrives;
  a run started again under the same id (Snakemake reuses a finished run's row) has a new start;
- Stale: ``"Stale:<last event>"``: each silence is its own episode.

Other components (the launcher: ``launch_failed``, ``launch_lost``) add transitions by
appending a source to ``TRANSITION_SOURCES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, not_, select

from .. import queries
from ..config import stale_after
from ..extensions import db
from ..models import Workflow
from ..normalize.schema import WorkflowStatus
from .message import Message
from .rules import RUN_EVENTS

# How far back a settled or stale run is still told: runs that settled while no hub was
# running are caught up when one starts again, and enabling notifications on an old database
# does not announce its history.
LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Transition:
    """Something to tell about a run (``workflow_id``; for a launch, the launch's id)."""

    workflow_id: str
    event: str
    key: str
    engine: str
    name: str
    # A source that knows more than the run's row (a launch that never became a run) gives
    # its own message; otherwise it is rendered from the run.
    message: Message | None = None


def stamp(moment: datetime) -> str:
    """A time as it goes into a key: UTC, microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def settled_key(status: str, started_at: datetime | None, created_at: datetime) -> str:
    return f"{status}:{stamp(started_at or created_at)}"


def stale_key(updated_at: datetime) -> str:
    return f"{WorkflowStatus.STALE.value}:{stamp(updated_at)}"


_COLUMNS = (
    Workflow.id,
    Workflow.engine,
    Workflow.name,
    Workflow.status,
    Workflow.started_at,
    Workflow.created_at,
    Workflow.updated_at,
)


def settled_runs(
    config: Mapping[str, Any], events: frozenset[str], now: datetime
) -> list[Transition]:
    """Runs in a wanted status, unchanged for the grace period (and at most ``LOOKBACK``
    more): an indexed range on ``(status, updated_at)``."""
    statuses = sorted(events & set(RUN_EVENTS) - {WorkflowStatus.STALE.value})
    if not statuses:
        return []
    settled_before = now - timedelta(seconds=float(config["NOTIFY_GRACE_SECONDS"]))
    rows = db.session.execute(
        select(*_COLUMNS).where(
            Workflow.status.in_(statuses),
            Workflow.updated_at < settled_before,
            Workflow.updated_at >= settled_before - LOOKBACK,
        )
    )
    return [
        Transition(row.id, row.status, settled_key(row.status, row.started_at, row.created_at),
                   row.engine, row.name)
        for row in rows
    ]  # fmt: skip


def stale_runs(
    config: Mapping[str, Any], events: frozenset[str], now: datetime
) -> list[Transition]:
    """Running runs that went silent past their engine's threshold (within ``LOOKBACK``)."""
    if WorkflowStatus.STALE.value not in events:
        return []
    staleness = stale_after(config)
    # Stale now, and not yet stale at the start of the look-back: it went silent within it.
    went_silent = and_(
        queries.stale_runs(staleness, now), not_(queries.stale_runs(staleness, now - LOOKBACK))
    )
    rows = db.session.execute(select(*_COLUMNS).where(went_silent))
    return [
        Transition(row.id, WorkflowStatus.STALE.value, stale_key(row.updated_at), row.engine,
                   row.name)
        for row in rows
    ]  # fmt: skip


# A source: (the app's configuration, the events some rule wants, now) -> transitions.
# Runs inside an app context.
TransitionSource = Callable[[Mapping[str, Any], frozenset[str], datetime], Iterable[Transition]]

TRANSITION_SOURCES: list[TransitionSource] = [settled_runs, stale_runs]


def transitions(
    config: Mapping[str, Any], events: frozenset[str], now: datetime
) -> list[Transition]:
    """Everything some rule may want told as of ``now``."""
    found: list[Transition] = []
    for source in TRANSITION_SOURCES:
        found.extend(source(config, events, now))
    return found
