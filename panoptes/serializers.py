"""Models to JSON. The pydantic models here read the ORM rows themselves (``from_attributes``)
and are also the response schemas of the OpenAPI document, so what the API says it returns and
what it returns cannot drift apart.

A column served under another name is a field with a ``validation_alias``; a value derived
from several columns (job counts, durations) is a computed field; the status as read (a
Running run silent for too long is Stale) needs the staleness thresholds, passed as the
validation context.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol, Self

import orjson
from flask.json.provider import DefaultJSONProvider
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from .config import Staleness
from .models import Job, Workflow, utcnow
from .normalize.schema import WorkflowStatus

# A column read from the row to derive a served value, never served itself.
Hidden = Annotated[int, SkipJsonSchema()]


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


class WorkflowSummary(BaseModel):
    """A run in lists: every scalar field."""

    model_config = ConfigDict(
        extra="forbid", from_attributes=True, json_schema_serialization_defaults_required=True
    )

    id: str
    name: str
    status: str = Field(description="as read: a Running run silent for too long reads Stale")
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    engine: str
    jobs_failed: int = Field(validation_alias="n_error")
    jobs_running: int = Field(validation_alias="n_running")
    jobs_cached: int = Field(validation_alias="n_cached")
    jobs_aborted: int = Field(validation_alias="n_aborted")
    jobs_ignored: int = Field(validation_alias="n_ignored", description="Nextflow IGNORE tasks")
    created_at: datetime
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

    # What the engine reported, and the job rows by status, from which the counts are derived.
    progress_done: SkipJsonSchema[int | None] = Field(exclude=True, repr=False)
    progress_total: SkipJsonSchema[int | None] = Field(exclude=True, repr=False)
    n_pending: Hidden = Field(exclude=True, repr=False)
    n_submitted: Hidden = Field(exclude=True, repr=False)
    n_done: Hidden = Field(exclude=True, repr=False)
    # Planned jobs without a row: pending while the run goes on, never run once it ended.
    n_unseen: Hidden = Field(exclude=True, repr=False)

    @model_validator(mode="after")
    def _status_as_read(self, info: ValidationInfo) -> Self:
        stale = info.context.get("stale") if isinstance(info.context, dict) else None
        if isinstance(stale, Staleness):
            self.status = effective_status(self, stale)
        return self

    @computed_field(  # type: ignore[prop-decorator]
        description="the engine's reported done, or the Done+Cached jobs if more"
    )
    @property
    def jobs_done(self) -> int:
        return max(self.progress_done or 0, self.n_done + self.jobs_cached)

    @computed_field(  # type: ignore[prop-decorator]
        description="the engine's reported total, or the number of jobs if more"
    )
    @property
    def jobs_total(self) -> int:
        rows = (
            self.n_pending
            + self.n_submitted
            + self.jobs_running
            + self.n_done
            + self.jobs_failed
            + self.jobs_cached
            + self.jobs_aborted
            + self.jobs_ignored
        )
        return max(self.progress_total or 0, rows)

    @computed_field(  # type: ignore[prop-decorator]
        description="Pending and Submitted jobs, and planned ones not seen yet while running"
    )
    @property
    def jobs_pending(self) -> int:
        planned = 0 if self.completed_at is not None else self.n_unseen
        return self.n_pending + self.n_submitted + planned

    @computed_field(  # type: ignore[prop-decorator]
        description="planned jobs that never ran, once the run has ended"
    )
    @property
    def jobs_not_run(self) -> int:
        return self.n_unseen if self.completed_at is not None else 0

    @computed_field(  # type: ignore[prop-decorator]
        description="from start to completion, while both are known"
    )
    @property
    def duration_seconds(self) -> float | None:
        return _duration(self.started_at, self.completed_at)

    @classmethod
    def of(cls, workflow: Workflow, stale: Staleness) -> Self:
        """The run as read now."""
        return cls.model_validate(workflow, context={"stale": stale})


class WorkflowDetail(WorkflowSummary):
    """One run with everything known about it."""

    params: Any = None
    config: Any = None
    error_report: str | None = None
    dag: Any = None
    stats: Any = None
    metrics: Any = None
    progress: Any = Field(default=None, validation_alias="progress_detail")
    extra: dict[str, Any] | None = None


class JobOut(BaseModel):
    """A job (Snakemake) or task (Nextflow); panoptes' keys plus the unified schema."""

    model_config = ConfigDict(
        extra="forbid", from_attributes=True, json_schema_serialization_defaults_required=True
    )

    jobid: str = Field(validation_alias="job_key")
    # Not a column of the job: the run's public id, given as the validation context.
    workflow_id: str = Field(default="", validate_default=True)
    name: str | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    input: list[str] | None = Field(validation_alias="inputs")
    output: list[str] | None = Field(validation_alias="outputs")
    log: list[str] | None
    shell_command: str | None = Field(validation_alias="command")
    wildcards: Any
    msg: str | None = Field(validation_alias="message")
    tag: str | None
    attempt: int
    submitted_at: datetime | None
    updated_at: datetime
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

    @field_validator("workflow_id")
    @classmethod
    def _run_id(cls, value: str, info: ValidationInfo) -> str:
        given = info.context.get("workflow_id") if isinstance(info.context, dict) else None
        return given if isinstance(given, str) else value

    @computed_field(  # type: ignore[prop-decorator]
        description="from start to completion, while both are known"
    )
    @property
    def duration_seconds(self) -> float | None:
        return _duration(self.started_at, self.completed_at)

    @classmethod
    def of(cls, job: Job, workflow_id: str) -> Self:
        """A job of the run ``workflow_id``."""
        return cls.model_validate(job, context={"workflow_id": workflow_id})


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


def summary_fields(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    """A run's summary as a dict of Python values (datetimes, not text)."""
    return WorkflowSummary.of(workflow, stale).model_dump()


def workflow_summary(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    """A run as listed by ``GET /api/workflows``."""
    return WorkflowSummary.of(workflow, stale).model_dump(mode="json")


def workflow_detail(workflow: Workflow, stale: Staleness) -> dict[str, Any]:
    """A run with its large fields (params, config, DAG, stats, metrics)."""
    return WorkflowDetail.of(workflow, stale).model_dump(mode="json")


def job(job: Job, workflow_id: str) -> dict[str, Any]:
    """One job."""
    return JobOut.of(job, workflow_id).model_dump(mode="json")


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
