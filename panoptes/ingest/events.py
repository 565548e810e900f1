"""The generic event API: any engine reports its runs in the hub's own vocabulary.

``POST /api/events`` takes a batch of one run's events (docs/EVENTS.md). Like the engines'
own protocols it is idempotent (a re-sent ``event_id`` is skipped), tolerant of order and of
fields it does not know, and answers only after the events are stored.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from .. import apidoc, store
from ..errors import ApiError
from ..normalize import generic
from ..store.ids import WORKFLOW_ID_PATTERN

bp = Blueprint("events", __name__)

MAX_EVENTS = 10_000
ENGINE_PATTERN = "^[a-z0-9][a-z0-9_-]{0,31}$"
EventType = Literal[
    "run_started",
    "job_queued",
    "job_started",
    "job_finished",
    "job_failed",
    "job_cached",
    "run_finished",
]


class EventIn(BaseModel):
    """One event. Only ``event_id`` and ``type`` are required; the fields of each type are
    listed in docs/EVENTS.md, and fields the hub does not know are ignored."""

    model_config = ConfigDict(extra="allow")

    event_id: str = Field(min_length=1, max_length=128)
    type: EventType
    time: str | float | None = None
    job_id: str | int | None = None


class EventBatchIn(BaseModel):
    """A batch of events of one run."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "run_id": "nightly-2026-12-07",
                    "engine": "necroflow",
                    "events": [
                        {"event_id": "1", "type": "run_started", "name": "nightly"},
                        {"event_id": "2", "type": "job_started", "job_id": "a", "step": "align"},
                        {"event_id": "3", "type": "job_finished", "job_id": "a", "exit_code": 0},
                        {"event_id": "4", "type": "run_finished", "success": True},
                    ],
                }
            ]
        },
    )

    run_id: str = Field(pattern=f"^{WORKFLOW_ID_PATTERN}$")
    engine: str = Field(pattern=ENGINE_PATTERN)
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventBatchOut(BaseModel):
    run_id: str
    accepted: int
    duplicates: int
    url: str


def _in_time_order(batch: EventBatchIn, raw_events: list[Any]) -> list[dict[str, Any]]:
    """The events as sent, in the order of their times (then of the batch): a client that
    collects events from several threads may send them out of order."""
    from ..models import utcnow

    now = utcnow()
    timed = [
        (generic.event_time(event, now), index, event)
        for index, event in enumerate(raw_events)
        if isinstance(event, dict)
    ]
    return [event for _, _, event in sorted(timed, key=lambda item: (item[0], item[1]))]


@bp.post("/api/events")
@apidoc.operation(
    apidoc.ANY_ENGINE,
    body=EventBatchIn,
    responses={
        200: EventBatchOut,
        400: "malformed batch, or an engine with a protocol of its own",
        409: "the run id belongs to a run of another engine",
    },
)
def post_events(body: EventBatchIn, received: dict[str, Any]) -> Response:
    """A batch of one run's events, from any engine (docs/EVENTS.md).

    Idempotent (an `event_id` already stored is skipped), tolerant of order and of unknown
    fields; answered once the events are stored."""
    if body.engine in ("snakemake", "nextflow", "hub"):
        raise ApiError(
            400,
            f"Engine {body.engine!r} has its own protocol; report other engines here.",
            "invalid",
        )
    events = _in_time_order(body, received["events"])
    try:
        result = store.generic_batch(body.run_id, body.engine, events)
    except store.EngineMismatch as error:
        raise ApiError(409, str(error)) from None
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return jsonify(
        EventBatchOut(
            run_id=result.workflow_id,
            accepted=result.accepted,
            duplicates=result.duplicates,
            url=f"{str(base).rstrip('/')}/workflow/{result.workflow_id}",
        ).model_dump()
    )
