"""Events of the generic event API (``POST /api/events``) to schema events.

One raw event is one event of a batch, in the hub's own vocabulary (docs/EVENTS.md):
``run_started``, ``job_queued``, ``job_started``, ``job_finished``, ``job_failed``,
``job_cached``, ``run_finished``. Never raises on a dict; unknown types only touch the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import coerce
from .schema import (
    Event,
    Heartbeat,
    JobStatus,
    JobUpdate,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowStatus,
)

_JOB_STATUS = {
    "job_queued": JobStatus.PENDING,
    "job_started": JobStatus.RUNNING,
    "job_finished": JobStatus.DONE,
    "job_failed": JobStatus.ERROR,
    "job_cached": JobStatus.CACHED,
}
# Bounds of what a client may hand over as a log tail (the rest is on its disk).
MAX_LOG_TAIL = 32 * 1024


def event_time(event: dict[str, Any], received_at: datetime) -> datetime:
    """The client's time for the event (ISO 8601 or epoch seconds), else arrival."""
    value = event.get("time")
    if isinstance(value, str):
        return coerce.iso_datetime(value) or received_at
    return coerce.epoch_seconds(value) or received_at


def parse(kind: str, body: Any, received_at: datetime) -> list[Event]:
    """Events for one recorded event of the generic API (``kind``: "event"; the event's own
    ``type`` says what happened)."""
    if not isinstance(body, dict):
        return [Heartbeat(at=received_at)]
    at = event_time(body, received_at)
    kind = str(body.get("type") or "")
    if kind == "run_started":
        return [_run_started(body, at)]
    if kind == "run_finished":
        return [_run_finished(body, at)]
    if kind in _JOB_STATUS:
        update = _job(body, kind, at)
        return [update] if update is not None else [Heartbeat(at=at)]
    return [Heartbeat(at=at)]


def steps_graph(steps: Any) -> dict[str, Any] | None:
    """``[{"name", "depends_on"}]`` as the rule graph the dashboard draws (nodes and links)."""
    if not isinstance(steps, list):
        return None
    names: list[str] = []
    for step in steps:
        name = coerce.text(step.get("name"), limit=255) if isinstance(step, dict) else None
        if name and name not in names:
            names.append(name)
    if not names:
        return None
    index = {name: position for position, name in enumerate(names)}
    links = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        target = index.get(coerce.text(step.get("name"), limit=255) or "")
        for dependency in coerce.str_list(step.get("depends_on")) or []:
            source = index.get(dependency)
            if source is not None and target is not None and source != target:
                links.append({"source": source, "target": target})
    return {"nodes": [{"rule": name} for name in names], "links": links}


def _run_started(event: dict[str, Any], at: datetime) -> WorkflowInfo:
    params = event.get("params")
    return WorkflowInfo(
        at=at,
        name=coerce.text(event.get("name"), limit=255),
        started_at=at,
        user=coerce.text(event.get("user"), limit=255),
        host=coerce.text(event.get("host"), limit=255),
        command_line=coerce.text(event.get("command_line")),
        work_dir=coerce.text(event.get("work_dir")),
        project=coerce.text(event.get("project"), limit=1000),
        revision=coerce.text(event.get("revision"), limit=255),
        engine_version=coerce.text(event.get("engine_version"), limit=64),
        params=coerce.json_safe(params) if params is not None else None,
        dag=steps_graph(event.get("steps")),
    )


def _run_finished(event: dict[str, Any], at: datetime) -> WorkflowOutcome:
    success = event.get("success") is True
    return WorkflowOutcome(
        at=at,
        status=WorkflowStatus.DONE if success else WorkflowStatus.ERROR,
        completed_at=at,
        error_message=None if success else coerce.text(event.get("error")) or "The run failed.",
        exit_status=coerce.integer(event.get("exit_code"), coerce.INT32_MAX),
    )


def _tags(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    tags = coerce.mapping(value)
    if tags is not None:
        text = ", ".join(f"{key}={item}" for key, item in tags.items())
        return coerce.json_safe(tags), coerce.text(text, limit=1000) or None
    return None, coerce.text(value, limit=1000) if isinstance(value, str) else None


def _job(event: dict[str, Any], kind: str, at: datetime) -> JobUpdate | None:
    key = coerce.text(event.get("job_id"), limit=64)
    if key is None and coerce.integer(event.get("job_id")) is not None:
        key = str(coerce.integer(event.get("job_id")))
    if not key or not key.strip():
        return None
    status = _JOB_STATUS[kind]
    wildcards, tag = _tags(event.get("tags"))
    resources = coerce.mapping(event.get("resources")) or {}
    usage = coerce.mapping(event.get("usage")) or {}
    log_tail = coerce.text(event.get("log_tail"))
    if log_tail is not None and len(log_tail) > MAX_LOG_TAIL:
        log_tail = log_tail[-MAX_LOG_TAIL:]
    fields: dict[str, Any] = {
        "name": coerce.text(event.get("step"), limit=255),
        "tag": tag,
        "wildcards": wildcards,
        "command": coerce.text(event.get("command")),
        "log": coerce.str_list(event.get("log")),
        "work_dir": coerce.text(event.get("work_dir")),
        "exit_code": coerce.integer(event.get("exit_code"), coerce.INT32_MAX),
        "error_message": coerce.text(event.get("error")) if status is JobStatus.ERROR else None,
        "cpus": coerce.integer(resources.get("cpus"), coerce.INT32_MAX),
        "memory_bytes": coerce.integer(resources.get("memory_bytes")),
        "time_ms": coerce.integer(resources.get("time_ms")),
        "realtime_ms": coerce.integer(usage.get("realtime_ms")),
        "pcpu": coerce.number(usage.get("pcpu")),
        "peak_rss": coerce.integer(usage.get("peak_rss")),
        "read_bytes": coerce.integer(usage.get("read_bytes")),
        "write_bytes": coerce.integer(usage.get("write_bytes")),
        "resources": coerce.json_safe(resources) if resources else None,
        "extra": {"log_tail": log_tail} if log_tail else None,
    }
    if status is JobStatus.PENDING:
        fields["submitted_at"] = at
    elif status is JobStatus.RUNNING:
        fields["started_at"] = at
    else:
        fields["completed_at"] = at
    return JobUpdate(
        at=at,
        key=key.strip(),
        status=status,
        starts_attempt=status is JobStatus.RUNNING,
        fields={name: value for name, value in fields.items() if value is not None},
    )
