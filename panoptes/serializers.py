"""Models to JSON. The pydantic models here are also the response schemas of the OpenAPI
document, so what the API says it returns and what it returns cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Protocol

import orjson
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ConfigDict

from .config import Staleness
from .models import Job, Workflow, utcnow
from .normalize.schema import WorkflowStatus


class WorkflowSummary(BaseModel):
    """A run in lists: every scalar field. panoptes' keys first."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    status: str
    jobs_done: int
    jobs_total: int
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    engine: str
    jobs_failed: int
    jobs_running: int
    jobs_pending: int
    jobs_cached: int
    jobs_aborted: int
    jobs_ignored: int = 0
    jobs_not_run: int = 0
    created_at: datetime
    duration_seconds: float | None
    user: str | None
    host: str | None
    command_line: str | None
    work_dir: str | None
    project: str | None
    revision: str | None
    engine_version: str | None
    session_id: str | None
    error_message: str | None
    exit_status: int | None


class WorkflowDetail(WorkflowSummary):
    """One run with everything known about it."""

    params: Any = None
    config: Any = None
    error_report: str | None = None
    dag: Any = None
    stats: Any = None
    metrics: Any = None
    progress: Any = None
    extra: dict[str, Any] | None = None


class JobOut(BaseModel):
    """A job (Snakemake) or task (Nextflow); panoptes' keys plus the unified schema."""

    model_config = ConfigDict(extra="forbid")

    jobid: str
    workflow_id: str
    name: str | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    input: list[str] | None
    output: list[str] | None
    log: list[str] | None
    shell_command: str | None
    wildcards: Any
    msg: str | None
    tag: str | None
    attempt: int
    submitted_at: datetime | None
    updated_at: datetime
    duration_seconds: float | None
    exit_code: int | None
    error_message: str | None
    work_dir: str | None
    cpus: int | None
    memory_bytes: int | None
    time_ms: int | None
    realtime_ms: int | None
    pcpu: float | None
    peak_rss: int | None
    read_bytes: int | None
    write_bytes: int | None
    resources: Any
    extra: dict[str, Any] | None


class WorkflowEnvelope(BaseModel):
    workflow: WorkflowDetail


class WorkflowList(BaseModel):
    count: int
    workflows: list[WorkflowSummary]


class JobList(BaseModel):
    count: int
    # The following page (with ``limit``), else null.
    next: str | None = None
    jobs: list[JobOut]


class JobEnvelope(BaseModel):
    job: JobOut
    jobs: JobOut  # panoptes' key for this route: plural, one object


class HasStatus(Protocol):
    """A run as stored, or any row with its engine, status and last update."""

    engine: str
    status: str
    updated_at: datetime


def effective_status(workflow: HasStatus, stale: Staleness, now: datetime | None = None) -> str:
    """The status as read: a Running run silent for longer than its engine allows is Stale
    (nothing is written)."""
    if workflow.status != WorkflowStatus.RUNNING:
        return workflow.status
    after = stale.after(workflow.engine)
    if after is not None and workflow.updated_at < (now or utcnow()) - after:
        return WorkflowStatus.STALE
    return workflow.status


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def summary_fields(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    rows_done = workflow.n_done + workflow.n_cached
    rows = (
        workflow.n_pending
        + workflow.n_submitted
        + workflow.n_running
        + workflow.n_done
        + workflow.n_error
        + workflow.n_cached
        + workflow.n_aborted
        + workflow.n_ignored
    )
    # Planned jobs without a row: pending while the run goes on, never run once it ended.
    ended = workflow.completed_at is not None
    return {
        "id": workflow.id,
        "name": workflow.name,
        "status": effective_status(workflow, stale),
        "jobs_done": max(workflow.progress_done or 0, rows_done),
        "jobs_total": max(workflow.progress_total or 0, rows),
        "started_at": workflow.started_at,
        "completed_at": workflow.completed_at,
        "updated_at": workflow.updated_at,
        "engine": workflow.engine,
        "jobs_failed": workflow.n_error,
        "jobs_running": workflow.n_running,
        "jobs_pending": workflow.n_pending
        + workflow.n_submitted
        + (0 if ended else workflow.n_unseen),
        "jobs_cached": workflow.n_cached,
        "jobs_aborted": workflow.n_aborted,
        "jobs_ignored": workflow.n_ignored,
        "jobs_not_run": workflow.n_unseen if ended else 0,
        "created_at": workflow.created_at,
        "duration_seconds": _duration(workflow.started_at, workflow.completed_at),
        "user": workflow.user,
        "host": workflow.host,
        "command_line": workflow.command_line,
        "work_dir": workflow.work_dir,
        "project": workflow.project,
        "revision": workflow.revision,
        "engine_version": workflow.engine_version,
        "session_id": workflow.session_id,
        "error_message": workflow.error_message,
        "exit_status": workflow.exit_status,
    }


def workflow_summary(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    """A run as listed by ``GET /api/workflows``."""
    return WorkflowSummary(**summary_fields(workflow, stale)).model_dump(mode="json")


def workflow_detail(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    """A run with its large fields (params, config, DAG, stats, metrics)."""
    return WorkflowDetail(
        **summary_fields(workflow, stale),
        params=workflow.params,
        config=workflow.config,
        error_report=workflow.error_report,
        dag=workflow.dag,
        stats=workflow.stats,
        metrics=workflow.metrics,
        progress=workflow.progress_detail,
        extra=workflow.extra,
    ).model_dump(mode="json")


def job(job: Job, workflow_id: str) -> dict[str, Any]:
    """One job."""
    return JobOut(
        jobid=job.job_key,
        workflow_id=workflow_id,
        name=job.name,
        status=job.status,
        started_at=job.started_at,
        completed_at=job.completed_at,
        input=job.inputs,
        output=job.outputs,
        log=job.log,
        shell_command=job.command,
        wildcards=job.wildcards,
        msg=job.message,
        tag=job.tag,
        attempt=job.attempt,
        submitted_at=job.submitted_at,
        updated_at=job.updated_at,
        duration_seconds=_duration(job.started_at, job.completed_at),
        exit_code=job.exit_code,
        error_message=job.error_message,
        work_dir=job.work_dir,
        cpus=job.cpus,
        memory_bytes=job.memory_bytes,
        time_ms=job.time_ms,
        realtime_ms=job.realtime_ms,
        pcpu=job.pcpu,
        peak_rss=job.peak_rss,
        read_bytes=job.read_bytes,
        write_bytes=job.write_bytes,
        resources=job.resources,
        extra=job.extra,
    ).model_dump(mode="json")


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON responses, written by orjson: compact, keys sorted as Flask sorts them,
    non-ASCII as UTF-8. Whatever orjson does not take as plain JSON data (datetimes and other
    types Flask converts itself, keys that are not strings, integers beyond 64 bits) and
    pretty-printed output (debug mode) are left to Flask's own."""

    _COMPACT: ClassVar[dict[str, Any]] = {"separators": (",", ":")}  # Flask's, unless debug

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs or kwargs == self._COMPACT:
            options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
            if self.sort_keys:
                options |= orjson.OPT_SORT_KEYS
            try:
                return orjson.dumps(obj, option=options).decode()
            except TypeError:  # orjson.JSONEncodeError included
                pass
        return super().dumps(obj, **kwargs)
