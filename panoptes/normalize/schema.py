"""The engine-neutral events that every protocol payload is turned into.

A normaliser returns a list of these; the store applies them in order. Fields left at ``None``
mean "this payload did not say", never "clear this value".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Engine(StrEnum):
    """The engines with adapters of their own (``panoptes/engines``); any other engine name
    comes through the generic event API."""

    SNAKEMAKE = "snakemake"
    NEXTFLOW = "nextflow"


class JobPolicy(StrEnum):
    """How an engine numbers the attempts of a job, which decides how a job's status moves."""

    # Snakemake (and the generic API): a retry reuses the job id, so an Error job may start
    # again as a new attempt.
    RETRY_REUSES_ID = "retry-reuses-id"
    # Nextflow: every retry is a new task id, so terminal states are final.
    RETRY_NEW_ID = "retry-new-id"


class WorkflowStatus(StrEnum):
    RUNNING = "Running"
    DONE = "Done"
    ERROR = "Error"
    CANCELLED = "Cancelled"
    STALE = "Stale"  # derived on read, never stored
    NO_EXECUTION = "No Execution"


class JobStatus(StrEnum):
    PENDING = "Pending"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    DONE = "Done"
    ERROR = "Error"
    CACHED = "Cached"
    ABORTED = "Aborted"
    # Failed, and the engine was told to carry on regardless (Nextflow ``errorStrategy
    # 'ignore'``): neither a success nor a failure of the run.
    IGNORED = "Ignored"


TERMINAL_JOB_STATUSES = frozenset(
    {JobStatus.DONE, JobStatus.ERROR, JobStatus.CACHED, JobStatus.ABORTED, JobStatus.IGNORED}
)


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """Metadata about a run. Only the non-``None`` fields are applied."""

    at: datetime
    name: str | None = None
    started_at: datetime | None = None
    user: str | None = None
    host: str | None = None
    command_line: str | None = None
    work_dir: str | None = None
    project: str | None = None
    revision: str | None = None
    engine_version: str | None = None
    session_id: str | None = None
    params: Any = None
    config: Any = None
    dag: Any = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WorkflowProgress:
    """The engine's own count of finished and total jobs."""

    at: datetime
    done: int | None
    total: int | None
    # Snakemake's done == total ends the run; Nextflow's counts never do (complete decides).
    decides_status: bool = False
    detail: Any = None


@dataclass(frozen=True, slots=True)
class WorkflowOutcome:
    """A change of the run's status decided by the engine.

    ``final`` outcomes set ``completed_at``; a non-final Error (a job failed, the run goes on)
    can turn back into Running when the next job starts.
    """

    at: datetime
    status: WorkflowStatus
    final: bool = True
    completed_at: datetime | None = None
    error_message: str | None = None
    error_report: str | None = None
    exit_status: int | None = None
    stats: Any = None
    metrics: Any = None
    # (total, done) as the engine counts them at the end (Nextflow's ``workflow.stats``).
    final_counts: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Proof of life with nothing else to record."""

    at: datetime


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """The newest known state of one job, keyed by the engine's job id."""

    at: datetime
    key: str
    status: JobStatus | None = None
    # True for the start of a Snakemake attempt (job_started/job_info): an Error row goes back
    # to Running as a retry. Tower retries are new task ids, so Tower never sets it.
    starts_attempt: bool = False
    # The job's full announcement (job_info): a following key-less shellcmd belongs to it.
    announces: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """A Snakemake 7/8 ``shellcmd`` line: it has no job id and belongs to the job announced last."""

    at: datetime
    command: str


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Snakemake's end of run: recount progress from the job rows (``workflow_success``)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class RunCreated:
    """A run starts under this id. A stored run of that id starts afresh (panoptes reuses a
    finished run's id when a new run asks for its name): its jobs and outcome are cleared.

    ``name``: the run's name when it is new (None: its id); ``name_locked``: a person chose it,
    so engines no longer change it. ``resolve_name_clash``: the name was asked for but not
    checked against live runs when the event was recorded (events of older releases); the
    projector decides it.
    """

    at: datetime
    name: str | None = None
    name_locked: bool = False
    resolve_name_clash: bool = False


@dataclass(frozen=True, slots=True)
class Renamed:
    """A person renamed the run; engines no longer change the name."""

    at: datetime
    name: str


@dataclass(frozen=True, slots=True)
class MarkedCancelled:
    """A person marked the run cancelled."""

    at: datetime


Event = (
    RunCreated
    | Renamed
    | MarkedCancelled
    | WorkflowInfo
    | WorkflowProgress
    | WorkflowOutcome
    | Heartbeat
    | JobUpdate
    | ShellCommand
    | Reconcile
)

# Keys a JobUpdate.fields may carry; they are the job table's columns.
JOB_FIELDS = frozenset(
    {
        "name",
        "tag",
        "wildcards",
        "message",
        "submitted_at",
        "started_at",
        "completed_at",
        "exit_code",
        "command",
        "inputs",
        "outputs",
        "log",
        "work_dir",
        "attempt",
        "cpus",
        "memory_bytes",
        "time_ms",
        "realtime_ms",
        "pcpu",
        "peak_rss",
        "read_bytes",
        "write_bytes",
        "resources",
        "error_message",
        "extra",
    }
)
