"""The only module that writes to the database.

Every change is one transaction: the raw event is recorded and its normalised effect applied
together, and callers answer the client only after ``commit``. ``reindex`` replays the raw
events through the same ``_apply`` to rebuild workflows and jobs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from flask import current_app
from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from . import auth, config, database, driver, metrics, queries
from .driver import JsonText, Row, Statement, Writer
from .extensions import db
from .models import ApiToken, Job, RawEvent, Workflow, utcnow
from .normalize import rules, snakemake, tower
from .normalize.coerce import json_safe, json_text
from .normalize.schema import (
    Engine,
    Event,
    Heartbeat,
    JobStatus,
    JobUpdate,
    Reconcile,
    ShellCommand,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)

HUB = "hub"  # engine name of the raw events that record what people did (rename, cancel)
_BASE62 = string.digits + string.ascii_letters
GENERATED_ID_LENGTH = 14
# Ids adopted from clients: safe in URLs and paths (no slash, no leading dot or dash).
WORKFLOW_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_WORKFLOW_ID = re.compile(WORKFLOW_ID_PATTERN)
_COUNTER = {
    JobStatus.PENDING: "n_pending",
    JobStatus.SUBMITTED: "n_submitted",
    JobStatus.RUNNING: "n_running",
    JobStatus.DONE: "n_done",
    JobStatus.ERROR: "n_error",
    JobStatus.CACHED: "n_cached",
    JobStatus.ABORTED: "n_aborted",
}
# Set once per attempt: a later duplicate must not move the start of a job.
_SET_ONCE = frozenset({"submitted_at", "started_at"})
# Ingestion works on rows with Core statements run on the driver's connection (driver.py), not
# on ORM objects: one event is a handful of statements, and the ORM's unit of work, then
# SQLAlchemy's Connection, cost several times the SQL itself (bench/PROFILES.md).
_WORKFLOWS = cast(Table, Workflow.__table__)
_JOBS = cast(Table, Job.__table__)
_RAW_EVENTS = cast(Table, RawEvent.__table__)
_NEW_JOB = {column.key: None for column in _JOBS.columns if column.key != "pk"}
_RAW_EVENT_COLUMNS = [column.key for column in _RAW_EVENTS.columns if column.key != "pk"]
_WORKFLOW_COLUMNS = [column.key for column in _WORKFLOWS.columns if column.key != "pk"]
# Columns that events only ever write (documents that can be large: parameters, DAGs,
# statistics) are not read back with the run's state; a change writes them all the same.
_WRITE_ONLY_COLUMNS = frozenset(
    {"params", "config", "dag", "stats", "metrics", "progress_detail", "error_report"}
)
# Statements of the hot path, built and compiled once: building a statement per event (and
# its cache key) cost more than executing it.
_SELECT_LOCKED = Statement(
    select(*(c for c in _WORKFLOWS.columns if c.key not in _WRITE_ONLY_COLUMNS))
    .where(_WORKFLOWS.c.id == bindparam("workflow_id"))
    .with_for_update()
)
_SELECT_WORKFLOW = Statement(select(_WORKFLOWS).where(_WORKFLOWS.c.pk == bindparam("pk")))
# ``inline``: no RETURNING of the new key, which nothing reads.
_INSERT_RAW = Statement(insert(_RAW_EVENTS).inline(), _RAW_EVENT_COLUMNS)
_INSERT_JOB = Statement(insert(_JOBS).inline(), list(_NEW_JOB))
_INSERT_WORKFLOW = {
    dialect: Statement(
        insert_(_WORKFLOWS).inline().on_conflict_do_nothing(index_elements=["id"]),
        _WORKFLOW_COLUMNS,
    )
    for dialect, insert_ in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}
_NEWEST_NAMED = {
    engine: Statement(
        select(_WORKFLOWS.c.id, _WORKFLOWS.c.engine, _WORKFLOWS.c.status, _WORKFLOWS.c.updated_at)
        .where(
            _WORKFLOWS.c.name == bindparam("name"),
            *([] if engine is None else [_WORKFLOWS.c.engine == engine.value]),
        )
        .order_by(_WORKFLOWS.c.pk.desc())
        .limit(1)
    )
    for engine in (None, *Engine)
}
# A create Nextflow sends again (25.08+ retries on 502-504 and I/O errors, for about 3 min)
# after the hub stored the first: the same session and run name, nothing else received yet.
_CREATE_RETRY_WINDOW = timedelta(minutes=5)
_RETRIED_CREATE = Statement(
    select(_WORKFLOWS.c.id)
    .where(
        _WORKFLOWS.c.name == bindparam("name"),
        _WORKFLOWS.c.engine == Engine.NEXTFLOW.value,
        _WORKFLOWS.c.session_id == bindparam("session_id"),
        _WORKFLOWS.c.created_at >= bindparam("since"),
        ~select(_RAW_EVENTS.c.pk)
        .where(
            _RAW_EVENTS.c.workflow_id == _WORKFLOWS.c.id,
            _RAW_EVENTS.c.kind != "create",
        )
        .exists(),
    )
    .order_by(_WORKFLOWS.c.pk.desc())
    .limit(1)
)
_MAX_KEYS_PER_QUERY = 512


@lru_cache(maxsize=16)
def _jobs_by_keys(count: int) -> Statement:
    return Statement(
        select(_JOBS).where(
            _JOBS.c.workflow_pk == bindparam("workflow_pk"),
            _JOBS.c.job_key.in_([bindparam(f"key{i}") for i in range(count)]),
        )
    )


@lru_cache(maxsize=16)
def _recorded_event_ids(count: int) -> Statement:
    return Statement(
        select(_RAW_EVENTS.c.dedupe_key).where(
            _RAW_EVENTS.c.workflow_id == bindparam("workflow_id"),
            _RAW_EVENTS.c.dedupe_key.in_([bindparam(f"key{i}") for i in range(count)]),
        )
    )


def _by_keys(
    keys: Sequence[str], statement: Callable[[int], Statement]
) -> Iterator[tuple[Statement, dict[str, str]]]:
    """Statements and their key parameters for looking ``keys`` up at most
    ``_MAX_KEYS_PER_QUERY`` at a time; padded to a power of two with the last key, so that
    only a few statement shapes are ever compiled."""
    for start in range(0, len(keys), _MAX_KEYS_PER_QUERY):
        chunk = keys[start : start + _MAX_KEYS_PER_QUERY]
        size = 1 << (len(chunk) - 1).bit_length()
        yield statement(size), {f"key{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}


@lru_cache(maxsize=1024)
def _update_of(table: Table, columns: tuple[str, ...]) -> Statement:
    """``UPDATE table SET <columns> WHERE pk = :row_pk``: only what changed is written."""
    return Statement(update(table).where(table.c.pk == bindparam("row_pk")), columns)


@dataclass(slots=True)
class _Unit:
    """One run's changes within a transaction: its locked row, the jobs read or created, and
    their values as read, so that only what changed is written back."""

    writer: Writer
    workflow: Row
    workflow_as_read: dict[str, Any]
    jobs: dict[str, Row]
    jobs_as_read: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, writer: Writer, workflow: Row) -> _Unit:
        return cls(writer, workflow, dict(workflow), {}, {})

    def flush(self) -> None:
        """Write back what changed: the run's changed columns, new jobs, changed jobs."""
        _write_changes(self.writer, _WORKFLOWS, self.workflow, self.workflow_as_read)
        new_jobs = [job for key, job in self.jobs.items() if key not in self.jobs_as_read]
        self.writer.execute_many(_INSERT_JOB, new_jobs)
        for key, as_read in self.jobs_as_read.items():
            _write_changes(self.writer, _JOBS, self.jobs[key], as_read)
        self.workflow_as_read = dict(self.workflow)
        self.jobs.clear()  # new rows have no pk yet: read them again if needed
        self.jobs_as_read.clear()


def _write_changes(writer: Writer, table: Table, row: Row, as_read: Mapping[str, Any]) -> None:
    changed = {k: v for k, v in row.items() if as_read.get(k, _UNSET) != v}
    if changed:
        writer.execute(_update_of(table, tuple(changed)), {**changed, "row_pk": row["pk"]})


_UNSET = object()


class EngineMismatch(Exception):
    """An event of one engine addressed to a workflow of the other."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    workflow_id: str
    accepted: int
    duplicates: int


def new_workflow_id() -> str:
    """A fresh public id: 14 base62 characters (Tower requires at most 16)."""
    return "".join(secrets.choice(_BASE62) for _ in range(GENERATED_ID_LENGTH))


def is_valid_workflow_id(value: str) -> bool:
    """Whether a client's id can be adopted: 1-64 characters of base62, ``_``, ``.``, ``-``,
    starting alphanumeric."""
    return _WORKFLOW_ID.fullmatch(value) is not None


def _end_reads() -> None:
    """End a read transaction this request's session may hold: with an in-memory SQLite
    database it holds the very connection a write is about to use."""
    if db.session.registry.has():
        session = db.session()
        if session.in_transaction():
            session.rollback()  # only reads can be pending: every write goes through here


@contextmanager
def write_transaction() -> Iterator[Session]:
    """An ORM write transaction (tokens, clean-ups) that commits on success and rolls back on
    any error.

    On SQLite, writers first queue for their turn (``database.writer_turn``), then start with
    BEGIN IMMEDIATE (see ``database.py``): taking the write lock up front is what keeps
    concurrent workers from failing with "database is locked".
    """
    _end_reads()
    session = db.session()
    with database.writer_turn(db.engine):
        session.connection(execution_options={"panoptes_write": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def _writing() -> Iterator[Writer]:
    """The write transaction of ingestion and of everything that replays raw events: the same
    turn-taking as ``write_transaction``, on the driver's connection (driver.py)."""
    _end_reads()
    engine = db.engine
    with database.writer_turn(engine), driver.transaction(engine, immediate=True) as writer:
        yield writer
    metrics.count_ingested(writer.recorded)


# -- ingestion entry points -------------------------------------------------------------------


def snakemake_create(
    query: Mapping[str, str], body: Any, received_at: datetime | None = None
) -> Workflow:
    """``GET /create_workflow`` with panoptes' naming rules for a requested name."""
    received_at = received_at or utcnow()
    requested = (query.get("workflow_id") or query.get("name") or "").strip()[:255]
    body = {"query": dict(query), "body": json_safe(body)}
    with _writing() as writer:
        workflow_id = new_workflow_id()
        if requested:
            previous = _newest_named(writer, requested, Engine.SNAKEMAKE)
            if previous is not None and not _is_live(previous, received_at):
                workflow_id = previous.id  # panoptes resets and reuses a finished run's row
        raw = _record(writer, Engine.SNAKEMAKE, "create", workflow_id, body, received_at)
        return _as_model(writer, _applied(writer, raw))


def snakemake_update(
    workflow_id: str,
    envelope: Mapping[str, Any],
    received_at: datetime | None = None,
    message: dict[str, Any] | None = None,
) -> None:
    """One ``/update_workflow_status`` envelope (``msg`` already checked to decode; ``message``:
    what it decoded to, if at hand)."""
    received_at = received_at or utcnow()
    given = dict(envelope)
    body, serialised = json_text(given)
    if message is None or body is not given:  # decode what is stored, as a reindex will
        message = snakemake.decode_msg(body.get("msg"))
    # Parsed before taking the write turn: other writers wait only for the database work.
    events = snakemake.parse_message(message, received_at)
    with _writing() as writer:
        raw = _record(
            writer, Engine.SNAKEMAKE, "update", workflow_id, body, received_at, serialised
        )
        _applied(writer, raw, events)


def snakemake_batch(
    workflow_id: str,
    events: Sequence[Mapping[str, Any]],
    received_at: datetime | None = None,
    checked: bool = False,
) -> BatchResult:
    """Our plugin's batch: all events in one transaction, re-sent event ids skipped.
    ``checked``: the request body was found storable as it is (``coerce.parse_received``)."""
    received_at = received_at or utcnow()
    # Everything that does not depend on the database happens before taking the write turn.
    candidates: list[tuple[str | None, str, list[Event]]] = []
    for event in events:
        key = None if event.get("event_id") is None else str(event["event_id"])
        body, serialised = json_text(dict(event), checked)
        # json_text's value is storable as it is: its documents need no second look.
        parsed = snakemake.parse_message(body, received_at, checked=True)
        candidates.append((key, serialised, parsed))
    keys = sorted({key for key, _, _ in candidates if key is not None})
    with _writing() as writer:
        unit = _Unit.of(writer, _lock_workflow(writer, workflow_id, Engine.SNAKEMAKE, received_at))
        seen = _seen_event_ids(writer, workflow_id, keys)
        fresh = []
        for key, serialised, parsed in candidates:
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            fresh.append((key, serialised, parsed))
        if fresh:
            # One multi-row INSERT for the raw events and one pass over the parsed events with
            # one job query: the same effect as applying them one by one (what reindex does).
            writer.execute_many(
                _INSERT_RAW,
                [
                    {
                        "engine": Engine.SNAKEMAKE.value,
                        "kind": "event",
                        "workflow_id": workflow_id,
                        "received_at": received_at,
                        "body": JsonText(serialised),
                        "dedupe_key": key,
                    }
                    for key, serialised, _ in fresh
                ],
            )
            writer.recorded.extend([(Engine.SNAKEMAKE.value, "event")] * len(fresh))
            parsed = [e for _, _, events_of_one in fresh for e in events_of_one]
            _apply_events(unit, Engine.SNAKEMAKE, parsed, received_at)
        unit.flush()
        return BatchResult(workflow_id, len(fresh), len(events) - len(fresh))


def _seen_event_ids(writer: Writer, workflow_id: str, keys: Sequence[str]) -> set[str]:
    """Which of these event ids this run has already recorded."""
    seen: set[str] = set()
    for query, values in _by_keys(keys, _recorded_event_ids):
        rows = writer.rows(query, {**values, "workflow_id": workflow_id})
        seen.update(row["dedupe_key"] for row in rows)
    return seen


def tower_create(
    body: Mapping[str, Any], text: str | None = None, received_at: datetime | None = None
) -> str:
    """``POST /trace/create``: a new run, the one Platform launched (``workflowId``), or the
    one a retried create already made; its id."""
    requested = body.get("workflowId")
    adopted = requested if isinstance(requested, str) and is_valid_workflow_id(requested) else None
    return tower_event("create", adopted, body, received_at, text)


def _created_before(writer: Writer, body: Mapping[str, Any], at: datetime) -> str | None:
    """The run a retried create already made, if this is one."""
    name, session_id = body.get("runName"), body.get("sessionId")
    if not (isinstance(name, str) and name and isinstance(session_id, str) and session_id):
        return None
    found = writer.first(
        _RETRIED_CREATE,
        {"name": name, "session_id": session_id, "since": at - _CREATE_RETRY_WINDOW},
    )
    return None if found is None else str(found.id)


def tower_event(
    kind: str,
    workflow_id: str | None,
    body: Mapping[str, Any],
    received_at: datetime | None = None,
    text: str | None = None,
) -> str:
    """Any trace call; an id the hub does not know creates the run (after a database reset).
    Returns the run's id. ``workflow_id`` None (create only): a retried create's run, else a
    new one. ``text``: the body as received, when it can be stored as it is
    (``coerce.parse_received``)."""
    received_at = received_at or utcnow()
    if text is None:
        stored, text = json_text(dict(body))
    else:
        stored = body
    events = tower.parse(kind, stored, received_at, checked=True)  # before the write turn
    with _writing() as writer:
        if workflow_id is None:
            workflow_id = _created_before(writer, stored, received_at) or new_workflow_id()
        raw = _record(writer, Engine.NEXTFLOW, kind, workflow_id, stored, received_at, text)
        return str(_applied(writer, raw, events).id)


def rename(workflow_id: str, name: str) -> Workflow | None:
    """A person renames a run; engines no longer change the name afterwards."""
    return _hub_action("rename", workflow_id, {"name": name})


def cancel(workflow_id: str) -> Workflow | None:
    """A person marks a run cancelled."""
    return _hub_action("cancel", workflow_id, {})


def delete_workflow(workflow_id: str) -> bool:
    """Delete a run with its jobs and raw events (so a reindex does not bring it back)."""
    with _writing() as writer:
        workflow = _find_locked(writer, workflow_id)
        if workflow is None:
            return False
        writer.execute(delete(_JOBS).where(_JOBS.c.workflow_pk == workflow.pk))
        writer.execute(delete(_RAW_EVENTS).where(_RAW_EVENTS.c.workflow_id == workflow_id))
        writer.execute(delete(_WORKFLOWS).where(_WORKFLOWS.c.pk == workflow.pk))
        return True


def delete_all() -> int:
    """Delete every run, job and raw event; the number of runs deleted."""
    with write_transaction() as session:
        count = session.scalar(select(func.count()).select_from(Workflow)) or 0
        session.execute(delete(Job))
        session.execute(delete(Workflow))
        session.execute(delete(RawEvent))
        return count


def prune(older_than: timedelta, batch_size: int = 500) -> int:
    """Delete runs (with their jobs and raw events) silent for longer than ``older_than``.

    A Running run is kept unless it is also Stale. Works in batches, one transaction each, so a
    large clean-up never holds the database for long. Returns the number of runs deleted.
    """
    now = utcnow()
    cutoff = now - older_than
    stale = config.stale_after(current_app.config)
    deleted = 0
    while True:
        with write_transaction() as session:
            query = select(Workflow.pk, Workflow.id).where(
                Workflow.updated_at < cutoff,
                or_(Workflow.status != WorkflowStatus.RUNNING, queries.stale_runs(stale, now)),
            )
            rows = session.execute(query.limit(batch_size)).all()
            if not rows:
                return deleted
            pks = [pk for pk, _ in rows]
            ids = [workflow_id for _, workflow_id in rows]
            session.execute(delete(Job).where(Job.workflow_pk.in_(pks)))
            session.execute(delete(RawEvent).where(RawEvent.workflow_id.in_(ids)))
            session.execute(delete(Workflow).where(Workflow.pk.in_(pks)))
            deleted += len(rows)


def create_token(name: str) -> tuple[str, ApiToken]:
    """A new access token; the secret is returned once and only its hash is stored."""
    secret = auth.new_secret()
    with write_transaction() as session:
        token = ApiToken(
            name=name,
            token_hash=auth.hash_secret(secret),
            prefix=secret[: len(auth.TOKEN_PREFIX) + 4],
            created_at=utcnow(),
        )
        session.add(token)
    auth.invalidate_cache(current_app._get_current_object())  # type: ignore[attr-defined]
    return secret, token


def revoke_token(name: str) -> bool:
    """Revoke a token by name; False if there is no such active token."""
    with write_transaction() as session:
        token = session.scalars(
            select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        ).first()
        if token is None:
            return False
        token.revoked_at = utcnow()
    auth.invalidate_cache(current_app._get_current_object())  # type: ignore[attr-defined]
    return True


def reindex(page_size: int = 1000) -> int:
    """Rebuild workflows and jobs from the raw events; the number of events replayed."""
    replayed = 0
    page_query = Statement(
        select(_RAW_EVENTS)
        .where(_RAW_EVENTS.c.pk > bindparam("after"))
        .order_by(_RAW_EVENTS.c.pk)
        .limit(page_size)
    )
    with _writing() as writer:
        writer.execute(delete(_JOBS))
        writer.execute(delete(_WORKFLOWS))
        last_pk = 0
        while page := writer.rows(page_query, {"after": last_pk}):
            for raw in page:
                _apply(writer, raw)
            last_pk = page[-1]["pk"]
            replayed += len(page)
    return replayed


# -- internals --------------------------------------------------------------------------------


def _is_live(workflow: Row, at: datetime) -> bool:
    """Running and not yet stale at ``at`` (a decision taken at event time, so replays agree)."""
    if workflow.status != WorkflowStatus.RUNNING:
        return False
    stale_after = config.stale_after(current_app.config).after(workflow.engine)
    return stale_after is None or bool(workflow.updated_at >= at - stale_after)


def _newest_named(writer: Writer, name: str, engine: Engine | None = None) -> Row | None:
    """The most recent run with this name (of this engine)."""
    return writer.first(_NEWEST_NAMED[engine], {"name": name})


def _as_model(writer: Writer, workflow: Row) -> Workflow:
    """A detached model of a run as it now stands, for the serializers."""
    row = writer.first(_SELECT_WORKFLOW, {"pk": workflow.pk})
    assert row is not None
    return Workflow(**row)


def _record(
    writer: Writer,
    engine: str,
    kind: str,
    workflow_id: str,
    body: Any,
    received_at: datetime,
    serialised: str | None = None,
) -> Row:
    """Record a raw event (``serialised``: its body's JSON text, if already made)."""
    raw = Row(
        engine=str(engine),
        kind=kind,
        workflow_id=workflow_id,
        received_at=received_at,
        body=body,
        dedupe_key=None,
    )
    stored = raw if serialised is None else {**raw, "body": JsonText(serialised)}
    writer.execute(_INSERT_RAW, stored)
    writer.recorded.append((raw.engine, kind))
    return raw


def _hub_action(kind: str, workflow_id: str, body: dict[str, Any]) -> Workflow | None:
    with _writing() as writer:
        if _find_locked(writer, workflow_id) is None:
            return None
        applied = _apply(writer, _record(writer, HUB, kind, workflow_id, body, utcnow()))
        return None if applied is None else _as_model(writer, applied)


def _find_locked(writer: Writer, workflow_id: str) -> Row | None:
    """The workflow row, locked until the end of this transaction (PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers)."""
    return writer.first(_SELECT_LOCKED, {"workflow_id": workflow_id})


def _lock_workflow(
    writer: Writer, workflow_id: str, engine: Engine, at: datetime, name: str | None = None
) -> Row:
    """The workflow row, locked for this transaction; created if unknown.

    Several clients may announce the same unknown run at once (a hub restarted on an empty
    database): the insert skips a row another transaction just created, then locks it.
    """
    workflow = _find_locked(writer, workflow_id)
    if workflow is None:
        values = {
            **dict.fromkeys(_WORKFLOW_COLUMNS),
            "id": workflow_id,
            "engine": str(engine),
            "name": name or workflow_id,
            "status": WorkflowStatus.RUNNING.value,
            "name_locked": False,
            "created_at": at,
            "started_at": at,
            "updated_at": at,
            **dict.fromkeys(_COUNTER.values(), 0),
        }
        writer.execute(_INSERT_WORKFLOW[writer.dialect.name], values)
        workflow = _find_locked(writer, workflow_id)
        assert workflow is not None
    if workflow.engine != engine:
        raise EngineMismatch(
            f"workflow {workflow_id} is a {workflow.engine} run, not a {engine} one"
        )
    return workflow


def _apply(writer: Writer, raw: Row, parsed: Sequence[Event] | None = None) -> Row | None:
    """Apply one raw event and write its effect; the single code path of ingestion and reindex.

    ``parsed``: the events of an engine's raw event, if already parsed (what parsing it gives).
    None only for a person's action on a run that is gone (never during ingestion).
    """
    at = raw.received_at
    workflow_id = raw.workflow_id
    body = raw.body if isinstance(raw.body, dict) else {}
    if raw.engine == HUB:
        found = _find_locked(writer, workflow_id)
        if found is None:
            return None
        unit = _Unit.of(writer, found)
        _apply_hub_action(unit.workflow, raw.kind, body, at)
    else:
        engine = Engine(raw.engine)
        if engine is Engine.SNAKEMAKE and raw.kind == "create":
            unit = _apply_snakemake_create(writer, workflow_id, body, at)
        else:
            unit = _Unit.of(writer, _lock_workflow(writer, workflow_id, engine, at))
            if parsed is not None:
                events = parsed
            elif engine is Engine.SNAKEMAKE and raw.kind == "event":
                events = snakemake.parse_message(body, at, checked=True)  # stored: safe
            elif engine is Engine.SNAKEMAKE:
                events = snakemake.parse_message(snakemake.decode_msg(body.get("msg")), at)
            else:
                events = tower.parse(raw.kind, body, at, checked=True)  # stored: safe
            _apply_events(unit, engine, events, at)
    unit.flush()
    return unit.workflow


def _applied(writer: Writer, raw: Row, parsed: Sequence[Event] | None = None) -> Row:
    """``_apply`` for engine events, which always leave a workflow behind."""
    workflow = _apply(writer, raw, parsed)
    assert workflow is not None
    return workflow


def _apply_snakemake_create(
    writer: Writer, workflow_id: str, body: dict[str, Any], at: datetime
) -> _Unit:
    query: dict[str, Any] = body["query"] if isinstance(body.get("query"), dict) else {}
    request_body: dict[str, Any] = body["body"] if isinstance(body.get("body"), dict) else {}
    requested = str(query.get("workflow_id") or query.get("name") or "").strip()[:255]
    workflow = _find_locked(writer, workflow_id)
    if workflow is not None:
        unit = _Unit.of(writer, workflow)
        _reset(unit, at)
    else:
        name = requested or workflow_id
        if requested:
            clash = _newest_named(writer, requested)
            if clash is not None and _is_live(clash, at):
                # The live run keeps its name; the deterministic suffix makes replays agree.
                digest = hashlib.sha1(workflow_id.encode()).hexdigest()[:8]
                name = f"{requested}-{digest}"
        unit = _Unit.of(
            writer, _lock_workflow(writer, workflow_id, Engine.SNAKEMAKE, at, name=name)
        )
        unit.workflow.name_locked = bool(requested)
    _apply_events(unit, Engine.SNAKEMAKE, [snakemake.create_info(request_body, at)], at)
    return unit


def _reset(unit: _Unit, at: datetime) -> None:
    workflow = unit.workflow
    unit.writer.execute(delete(_JOBS).where(_JOBS.c.workflow_pk == workflow.pk))
    unit.jobs.clear()
    unit.jobs_as_read.clear()
    workflow.update(dict.fromkeys(_COUNTER.values(), 0))
    workflow.status = WorkflowStatus.RUNNING.value
    workflow.started_at = at
    for attribute in (
        "completed_at",
        "progress_done",
        "progress_total",
        "error_message",
        "error_report",
        "exit_status",
        "dag",
        "stats",
        "metrics",
        "progress_detail",
        "last_job_key",
    ):
        workflow[attribute] = None


def _apply_hub_action(workflow: Row, kind: str, body: dict[str, Any], at: datetime) -> None:
    if kind == "rename" and isinstance(body.get("name"), str):
        workflow.name = body["name"]
        workflow.name_locked = True
    elif kind == "cancel":
        workflow.status = WorkflowStatus.CANCELLED.value
        workflow.completed_at = at
    workflow.updated_at = at


def _apply_events(unit: _Unit, engine: Engine, events: Sequence[Event], at: datetime) -> None:
    workflow = unit.workflow
    _load_jobs(unit, events)
    for event in events:
        if isinstance(event, JobUpdate):
            _apply_job(unit, engine, event, at)
        elif isinstance(event, WorkflowInfo):
            _apply_info(workflow, event)
        elif isinstance(event, WorkflowProgress):
            _apply_progress(workflow, event)
        elif isinstance(event, WorkflowOutcome):
            _apply_outcome(workflow, event)
        elif isinstance(event, Reconcile):
            _apply_reconcile(workflow, event)
        elif isinstance(event, ShellCommand):
            _apply_shell_command(unit, event)
        elif isinstance(event, Heartbeat):
            pass
    workflow.updated_at = at


def _read_jobs(unit: _Unit, keys: set[str]) -> None:
    """Read these jobs of the run (those not yet in hand) in one indexed query."""
    wanted = sorted(keys - unit.jobs.keys())
    for query, values in _by_keys(wanted, _jobs_by_keys):
        for row in unit.writer.rows(query, {**values, "workflow_pk": unit.workflow.pk}):
            unit.jobs[row["job_key"]] = row
            unit.jobs_as_read[row["job_key"]] = dict(row)


def _load_jobs(unit: _Unit, events: Sequence[Event]) -> None:
    """The jobs these events touch."""
    keys = {e.key for e in events if isinstance(e, JobUpdate)}
    if unit.workflow.last_job_key and any(isinstance(e, ShellCommand) for e in events):
        keys.add(unit.workflow.last_job_key)
    _read_jobs(unit, keys)


def _count(workflow: Row, status: str, delta: int) -> None:
    attribute = _COUNTER[JobStatus(status)]
    workflow[attribute] = (workflow[attribute] or 0) + delta


def _apply_job(unit: _Unit, engine: Engine, update: JobUpdate, at: datetime) -> None:
    workflow = unit.workflow
    job = unit.jobs.get(update.key)
    if job is None:
        status = update.status or JobStatus.PENDING
        job = Row(
            _NEW_JOB,
            workflow_pk=workflow.pk,
            job_key=update.key,
            status=status.value,
            attempt=1,
            updated_at=at,
        )
        _set_fields(job, update.fields, overwrite=True, new_attempt=False)
        unit.jobs[update.key] = job
        _count(workflow, status, +1)
    else:
        current = JobStatus(job.status)
        incoming = update.status or current
        status, new_attempt = rules.next_job_status(
            engine, current, incoming, update.starts_attempt
        )
        if new_attempt:
            job.attempt += 1
            for attribute in ("started_at", "completed_at", "exit_code", "error_message"):
                job[attribute] = None
        overwrite = rules.accepts_job_update(current, update.status, status)
        _set_fields(job, update.fields, overwrite=overwrite, new_attempt=new_attempt)
        if status is not current:
            job.status = status.value
            _count(workflow, current, -1)
            _count(workflow, status, +1)
        job.updated_at = at
    if update.announces:
        workflow.last_job_key = update.key
    if update.starts_attempt:
        workflow.status = rules.after_job_start(
            WorkflowStatus(workflow.status), workflow.completed_at is not None
        ).value


def _set_fields(job: Row, fields: Mapping[str, Any], overwrite: bool, new_attempt: bool) -> None:
    for name, value in fields.items():
        current = job[name]
        if name == "extra" and isinstance(value, dict):
            if overwrite or current is None:
                job.extra = {**(current or {}), **value}
            continue
        if current is not None and (not overwrite or (name in _SET_ONCE and not new_attempt)):
            continue
        job[name] = value


def _apply_info(workflow: Row, info: WorkflowInfo) -> None:
    if info.name and not workflow.name_locked:
        workflow.name = info.name
    for attribute in (
        "started_at",
        "user",
        "host",
        "command_line",
        "work_dir",
        "project",
        "revision",
        "engine_version",
        "session_id",
        "params",
        "config",
        "dag",
    ):
        value = getattr(info, attribute)
        if value is not None:
            workflow[attribute] = value
    if info.extra:
        workflow.extra = {**(workflow.extra or {}), **info.extra}


def _apply_progress(workflow: Row, progress: WorkflowProgress) -> None:
    if progress.done is not None:
        workflow.progress_done = progress.done
    if progress.total is not None:
        workflow.progress_total = progress.total
    if progress.detail is not None:
        workflow.progress_detail = progress.detail
    if not progress.decides_status:
        return
    before = WorkflowStatus(workflow.status)
    after = rules.after_progress(before, workflow.progress_done, workflow.progress_total)
    if after is before:
        return
    workflow.status = after.value
    if after is WorkflowStatus.DONE:
        workflow.completed_at = progress.at
        workflow.error_message = workflow.error_report = None
    else:
        workflow.completed_at = None


def _apply_outcome(workflow: Row, outcome: WorkflowOutcome) -> None:
    workflow.status = outcome.status.value
    if outcome.final:
        workflow.completed_at = outcome.completed_at or outcome.at
    if outcome.status is WorkflowStatus.DONE:
        workflow.error_message = workflow.error_report = None
    if outcome.error_message is not None:
        workflow.error_message = outcome.error_message
    if outcome.error_report is not None:
        workflow.error_report = outcome.error_report
    for attribute in ("exit_status", "stats", "metrics"):
        value = getattr(outcome, attribute)
        if value is not None:
            workflow[attribute] = value


def _apply_reconcile(workflow: Row, event: Reconcile) -> None:
    rows = sum(workflow[attribute] or 0 for attribute in _COUNTER.values())
    status = rules.after_success(WorkflowStatus(workflow.status), rows)
    workflow.status = status.value
    workflow.completed_at = event.at
    if status is WorkflowStatus.DONE:
        workflow.progress_total = rows
        workflow.progress_done = (workflow.n_done or 0) + (workflow.n_cached or 0)
        workflow.error_message = workflow.error_report = None


def _apply_shell_command(unit: _Unit, event: ShellCommand) -> None:
    key = unit.workflow.last_job_key
    if key is None:
        return
    _read_jobs(unit, {key})
    job = unit.jobs.get(key)
    if job is not None and job.command is None:
        job.command = event.command
