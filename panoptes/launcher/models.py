"""The launcher's tables: launches and their logs, kept in chunks so any hub instance can serve
them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, BigId, JsonValue

QUEUED, STARTING, RUNNING = "queued", "starting", "running"
SUCCEEDED, FAILED, CANCELLED, LOST = "succeeded", "failed", "cancelled", "lost"
ACTIVE = (STARTING, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED, LOST)
STATUSES = (QUEUED, *ACTIVE, *FINISHED)


class Launch(Base):
    """One request to run a pipeline, from queued to its end."""

    __tablename__ = "launches"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    engine: Mapped[str] = mapped_column(String(16))
    pipeline: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(255))
    profile: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    config_text: Mapped[str | None] = mapped_column(Text)
    work_dir: Mapped[str | None] = mapped_column(Text)
    run_name: Mapped[str | None] = mapped_column(String(255))
    queue: Mapped[str] = mapped_column(String(64))
    executor: Mapped[str] = mapped_column(String(16))
    args: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    resume: Mapped[bool] = mapped_column(default=False)
    relaunch_of: Mapped[str | None] = mapped_column(String(32))
    # Shell scripts run in the head job before and after the engine (queues with run_scripts).
    pre_run_script: Mapped[str | None] = mapped_column(Text)
    post_run_script: Mapped[str | None] = mapped_column(Text)

    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    # The monitored run's id, chosen before the engine starts so the run is linked at once.
    workflow_id: Mapped[str] = mapped_column(String(64), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(255))

    submitted_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]

    # Who runs it: the worker (which heartbeats while it does) and the head job's handles.
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(255))
    pgid: Mapped[int | None]
    slurm_job_id: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the launch's own ingest token; cleared when the launch ends.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    log_size: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_launches_queue_status", "queue", "status"),
        Index("ix_launches_status_submitted", "status", "submitted_at"),
    )


class LaunchLogChunk(Base):
    """A piece of a launch's log; ``start`` is its offset in characters."""

    __tablename__ = "launch_log_chunks"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    launch_pk: Mapped[int] = mapped_column(BigId, ForeignKey("launches.pk", ondelete="CASCADE"))
    start: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_launch_log_chunks_launch_start", "launch_pk", "start"),)
