"""Any other engine: the hub's own event API (``POST /api/events``, docs/EVENTS.md)."""

from __future__ import annotations

from collections.abc import Sequence

from ..normalize import generic
from ..normalize.schema import JobPolicy
from .base import EngineAdapter, Route, Words, hours_setting


def _routes() -> Sequence[Route]:
    from ..ingest import events as ingest

    return [Route(ingest.bp)]


ADAPTER = EngineAdapter(
    name="generic",
    label="Other engines",
    engines=frozenset(),  # runs of any engine no other adapter owns
    routes=_routes,
    parse=generic.parse,
    # Tolerant of both ways: a job id that starts again after failing is a new attempt.
    job_policy=JobPolicy.RETRY_REUSES_ID,
    stale_after=hours_setting("STALE_HOURS"),
    words=Words("step", "steps", "job", "jobs", "Tags", "Command"),
)
