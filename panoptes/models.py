"""The schema: workflows, their jobs, and every raw event as it arrived.

Derived state (workflows, jobs) can always be rebuilt from ``raw_events`` (``panoptes reindex``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry, relationship

# Stable constraint names, so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQL NULL for Python None (not the JSON text "null"), so "unknown" stays queryable.
JsonValue = JSON(none_as_null=True)

# BigInteger autoincrement needs INTEGER on SQLite to alias the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no zones), always handed out as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime},
    )


class Workflow(Base):
    __tablename__ = "workflows"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    engine: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), default="Running")
    # Set when a person chose the name (create with a name, rename): engines no longer change it.
    name_locked: Mapped[bool] = mapped_column(default=False)

    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(index=True)

    # The engine's own count (Snakemake progress, Nextflow WorkflowProgress).
    progress_done: Mapped[int | None]
    progress_total: Mapped[int | None]
    # Job rows by status, kept incrementally so no read or write counts rows.
    n_pending: Mapped[int] = mapped_column(default=0)
    n_submitted: Mapped[int] = mapped_column(default=0)
    n_running: Mapped[int] = mapped_column(default=0)
    n_done: Mapped[int] = mapped_column(default=0)
    n_error: Mapped[int] = mapped_column(default=0)
    n_cached: Mapped[int] = mapped_column(default=0)
    n_aborted: Mapped[int] = mapped_column(default=0)
    n_ignored: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Jobs the engine planned (Snakemake's run_info, its progress total) that have no row yet:
    # pending while the run goes on, "not run" once it ended.
    n_unseen: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Keys of the jobs not yet in a terminal status, so the end of a run can close them
    # (Aborted) without scanning its jobs.
    open_jobs: Mapped[list[str] | None] = mapped_column(JsonValue, nullable=True)

    user: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    command_line: Mapped[str | None] = mapped_column(Text)
    work_dir: Mapped[str | None] = mapped_column(Text)
    project: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(255))
    engine_version: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    config: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    dag: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_report: Mapped[str | None] = mapped_column(Text)
    exit_status: Mapped[int | None]
    stats: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    metrics: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    progress_detail: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonValue, nullable=True)
    # The job announced last: Snakemake 7/8 ``shellcmd`` lines carry no job id.
    last_job_key: Mapped[str | None] = mapped_column(String(64))

    jobs: Mapped[list[Job]] = relationship(
        back_populates="workflow", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_workflows_created_pk", "created_at", "pk"),
        Index("ix_workflows_started_pk", "started_at", "pk"),
        Index("ix_workflows_status_updated", "status", "updated_at"),
    )


class Job(Base):
    __tablename__ = "jobs"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    workflow_pk: Mapped[int] = mapped_column(BigId, ForeignKey("workflows.pk", ondelete="CASCADE"))
    job_key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(Text)
    wildcards: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(default=1)

    submitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    exit_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(Text)
    inputs: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    outputs: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    log: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    work_dir: Mapped[str | None] = mapped_column(Text)

    cpus: Mapped[int | None]
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    time_ms: Mapped[int | None] = mapped_column(BigInteger)
    realtime_ms: Mapped[int | None] = mapped_column(BigInteger)
    pcpu: Mapped[float | None] = mapped_column(Float)
    peak_rss: Mapped[int | None] = mapped_column(BigInteger)
    read_bytes: Mapped[int | None] = mapped_column(BigInteger)
    write_bytes: Mapped[int | None] = mapped_column(BigInteger)
    resources: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonValue, nullable=True)

    workflow: Mapped[Workflow] = relationship(back_populates="jobs")

    __table_args__ = (
        UniqueConstraint("workflow_pk", "job_key", name="uq_jobs_workflow_key"),
        Index("ix_jobs_workflow_status", "workflow_pk", "status"),
        Index("ix_jobs_workflow_name", "workflow_pk", "name"),
        # The job table's default (arrival) order and the timeline's time range of big runs.
        Index("ix_jobs_workflow_pk", "workflow_pk", "pk"),
        Index("ix_jobs_workflow_started", "workflow_pk", "started_at"),
        # The job table's default order, by job id as a number (shorter keys first): a page
        # of a million-job run without sorting them all.
        Index("ix_jobs_workflow_key_order", "workflow_pk", text("length(job_key)"), "job_key"),
    )


class RuleCount(Base):
    """How many of a run's jobs have a rule (process) and a status, kept by the projector with
    the jobs it writes: a run page reads a handful of rows instead of grouping a million."""

    __tablename__ = "rule_counts"

    workflow_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("workflows.pk", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # "": a job without one
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(default=0)


class RawEvent(Base):
    """The log: every event as it arrived. Runs and jobs are projected from it."""

    __tablename__ = "raw_events"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The adapter that recorded it (panoptes/engines), or "hub" for what people did.
    engine: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    # Set by clients that number their events (our plugin), so a re-sent event is skipped.
    dedupe_key: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    # The log's partition: all events of a run share one, so projectors can split the work.
    shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))

    __table_args__ = (
        Index("ix_raw_events_workflow_id", "workflow_id", "pk"),
        UniqueConstraint("workflow_id", "dedupe_key", name="uq_raw_events_dedupe"),
        # The projector's scan of one shard (PostgreSQL).
        Index("ix_raw_events_shard_pk", "shard", "pk"),
        # Ids only grow, deleted ones included: the projector's position is an id (SQLite
        # would otherwise reuse the ids of deleted newest events).
        {"sqlite_autoincrement": True},
    )


class LogPosition(Base):
    """How far the projector has applied the log (the ``pk`` of the last event applied): per
    shard on PostgreSQL, one row (shard -1) for SQLite's single log. Written in the same
    transaction as the effect."""

    __tablename__ = "log_positions"

    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_pk: Mapped[int] = mapped_column(BigInteger, default=0)


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class ApiToken(Base):
    """An access token. Only a SHA-256 of the secret is kept; the secret is shown once."""

    __tablename__ = "api_tokens"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the secret, so a person can tell tokens apart in lists.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Comma-separated rights (read, ingest, launch, admin); NULL: a token made before scopes,
    # which keeps what tokens could do then (everything but launching).
    scopes: Mapped[str | None] = mapped_column(String(64))
