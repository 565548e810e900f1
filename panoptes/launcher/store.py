"""Every change to launches and their logs, one function per kind of change.

Claims are serialised per queue so that ``max_active`` holds across all workers: on PostgreSQL
by a transaction-scoped advisory lock on the queue (then ``FOR UPDATE SKIP LOCKED`` on the
launch), on SQLite by its single writer.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update

from .. import auth
from ..extensions import db
from ..models import ApiToken, Workflow, utcnow
from ..store import new_workflow_id, write_transaction
from .models import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINISHED,
    LOST,
    QUEUED,
    RUNNING,
    STARTING,
    STATUSES,
    SUCCEEDED,
    Launch,
    LaunchLogChunk,
)

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "ENGINES",
    "FAILED",
    "FINISHED",
    "LOST",
    "QUEUED",
    "RUNNING",
    "STARTING",
    "STATUSES",
    "SUCCEEDED",
]

ENGINES = ("snakemake", "nextflow")

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_launch_id() -> str:
    """A fresh public launch id: ``L`` and 13 base62 characters."""
    return "L" + "".join(secrets.choice(_BASE62) for _ in range(13))


@dataclass(frozen=True, slots=True)
class NewLaunch:
    """What a launch request asks for, checked already."""

    engine: str
    pipeline: str
    queue: str
    executor: str
    revision: str | None = None
    profile: str | None = None
    params: Mapping[str, Any] | None = None
    config_text: str | None = None
    work_dir: str | None = None
    run_name: str | None = None
    args: Sequence[str] = ()
    resume: bool = False
    relaunch_of: str | None = None
    requested_by: str | None = None
    pre_run_script: str | None = None
    post_run_script: str | None = None


def create(request: NewLaunch) -> Launch:
    """Queue a launch; its run id is chosen now, so the run is linked from its first event."""
    with write_transaction() as session:
        launch = Launch(
            id=new_launch_id(),
            engine=request.engine,
            pipeline=request.pipeline,
            revision=request.revision,
            profile=request.profile,
            params=dict(request.params) if request.params is not None else None,
            config_text=request.config_text,
            work_dir=request.work_dir,
            run_name=request.run_name,
            queue=request.queue,
            executor=request.executor,
            args=list(request.args),
            resume=request.resume,
            relaunch_of=request.relaunch_of,
            pre_run_script=request.pre_run_script,
            post_run_script=request.post_run_script,
            status=QUEUED,
            workflow_id=new_workflow_id(),
            requested_by=request.requested_by,
            submitted_at=utcnow(),
            log_size=0,
        )
        session.add(launch)
        session.flush()
        session.expunge(launch)
        return launch


def get(launch_id: str) -> Launch | None:
    """A launch by its public id."""
    return db.session.scalars(select(Launch).where(Launch.id == launch_id)).first()


def run_exists(workflow_id: str) -> bool:
    """Whether the launch's run has reported to the hub yet."""
    found = db.session.scalar(select(Workflow.pk).where(Workflow.id == workflow_id))
    return found is not None


def by_workflow_id(workflow_id: str) -> Launch | None:
    """The launch that started a run, if one did."""
    return db.session.scalars(select(Launch).where(Launch.workflow_id == workflow_id)).first()


def listing(
    *,
    status: Sequence[str] = (),
    engine: str | None = None,
    queue: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Launch], int]:
    """Launches, newest first, with the total matching the filters."""
    query = select(Launch)
    if status:
        query = query.where(Launch.status.in_(status))
    if engine:
        query = query.where(Launch.engine == engine)
    if queue:
        query = query.where(Launch.queue == queue)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Launch.submitted_at.desc(), Launch.pk.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def request_cancel(launch_id: str) -> Launch | None:
    """Drop a queued launch at once; ask the worker of a running one to stop it."""
    with write_transaction() as session:
        launch = session.scalars(select(Launch).where(Launch.id == launch_id)).first()
        if launch is None:
            return None
        now = utcnow()
        if launch.status == QUEUED:
            launch.status = CANCELLED
            launch.finished_at = now
            launch.cancel_requested_at = now
        elif launch.status in ACTIVE and launch.cancel_requested_at is None:
            launch.cancel_requested_at = now
        session.flush()
        session.expunge(launch)
        return launch


def _queue_lock(session: Any, queue: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"panoptes-queue:{queue}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def claim(queue: str, max_active: int, worker_id: str, host: str) -> tuple[Launch, str] | None:
    """Take the oldest queued launch of ``queue`` if fewer than ``max_active`` run there; the
    launch with the secret of its own ingest token."""
    with write_transaction() as session:
        _queue_lock(session, queue)
        active = session.scalar(
            select(func.count())
            .select_from(Launch)
            .where(Launch.queue == queue, Launch.status.in_(ACTIVE))
        )
        if (active or 0) >= max_active:
            return None
        query = (
            select(Launch)
            .where(Launch.queue == queue, Launch.status == QUEUED)
            .order_by(Launch.submitted_at, Launch.pk)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        launch = session.scalars(query).first()
        if launch is None:
            return None
        secret = auth.LAUNCH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        launch.status = STARTING
        launch.worker_id = worker_id
        launch.host = host
        launch.heartbeat_at = now
        launch.token_hash = auth.hash_secret(secret)
        session.flush()
        session.expunge(launch)
    return launch, secret


def started(launch_id: str, *, pgid: int | None = None, slurm_job_id: str | None = None) -> None:
    """The head job runs."""
    with write_transaction() as session:
        session.execute(
            update(Launch)
            .where(Launch.id == launch_id, Launch.status == STARTING)
            .values(
                status=RUNNING,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                pgid=pgid,
                slurm_job_id=slurm_job_id,
            )
        )


def finished(launch_id: str, status: str, exit_code: int | None, error: str | None = None) -> bool:
    """The launch ended; its token stops working. False if it had ended already (lost)."""
    with write_transaction() as session:
        result = session.execute(
            update(Launch)
            .where(Launch.id == launch_id, Launch.status.in_((QUEUED, *ACTIVE)))
            .values(
                status=status,
                exit_code=exit_code,
                error=error,
                finished_at=utcnow(),
                token_hash=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def heartbeat(worker_id: str) -> list[tuple[str, bool]]:
    """Prove this worker alive for all its active launches; each with whether its cancel was
    asked for."""
    with write_transaction() as session:
        session.execute(
            update(Launch)
            .where(Launch.worker_id == worker_id, Launch.status.in_(ACTIVE))
            .values(heartbeat_at=utcnow())
        )
        rows = session.execute(
            select(Launch.id, Launch.cancel_requested_at).where(
                Launch.worker_id == worker_id, Launch.status.in_(ACTIVE)
            )
        ).all()
    return [(launch_id, requested is not None) for launch_id, requested in rows]


def mark_lost(silent_for: timedelta) -> list[Launch]:
    """Active launches whose worker has not heartbeated for ``silent_for``: now ``lost``."""
    cutoff = utcnow() - silent_for
    with write_transaction() as session:
        query = select(Launch).where(Launch.status.in_(ACTIVE), Launch.heartbeat_at < cutoff)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        launches = list(session.scalars(query).all())
        now = utcnow()
        for launch in launches:
            launch.status = LOST
            launch.finished_at = now
            launch.token_hash = None
            launch.error = f"its worker {launch.worker_id} stopped heartbeating"
        session.flush()
        for launch in launches:
            session.expunge(launch)
        return launches


def append_log(launch_id: str, chunk: str) -> None:
    """Add text to the end of a launch's log."""
    if not chunk:
        return
    with write_transaction() as session:
        launch = session.scalars(
            select(Launch).where(Launch.id == launch_id).with_for_update()
        ).one()
        session.add(LaunchLogChunk(launch_pk=launch.pk, start=launch.log_size, text=chunk))
        launch.log_size = launch.log_size + len(chunk)


def read_log(launch: Launch, offset: int = 0) -> tuple[str, int]:
    """The log from character ``offset`` on, and the offset after it."""
    chunks = db.session.execute(
        select(LaunchLogChunk.start, LaunchLogChunk.text)
        .where(
            LaunchLogChunk.launch_pk == launch.pk,
            LaunchLogChunk.start + func.length(LaunchLogChunk.text) > offset,
        )
        .order_by(LaunchLogChunk.start)
    ).all()
    parts: list[str] = []
    end = offset
    for start, chunk in chunks:
        parts.append(chunk[max(0, offset - start) :])
        end = start + len(chunk)
    return "".join(parts), max(end, offset)


def set_token_scopes(name: str, scopes: frozenset[str]) -> None:
    """Give a token its rights (``panoptes token create --scope``)."""
    with write_transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == name)
            .values(scopes=",".join(s for s in auth.SCOPES if s in scopes))
        )


def when(value: datetime | None) -> str | None:
    """A time as ISO 8601 (None stays None)."""
    return None if value is None else value.isoformat()
