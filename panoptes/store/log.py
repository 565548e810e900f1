"""Appending to the log: what an ingestion request writes before it answers.

A request checks what the client contract needs, appends its raw event(s) and commits; 2xx
then means durably stored. Runs and jobs follow from the log (``projector.py``). The few
answers that need the projected state (a Snakemake run's name, a retried Tower create, the
engine of a known run) read it here, before the append, in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from flask import current_app
from sqlalchemy import Connection, Row, Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .. import engines, metrics
from ..models import RawEvent, Workflow, utcnow
from ..normalize import snakemake
from ..normalize.coerce import JsonText, json_safe, json_text, storable_text
from ..normalize.schema import WorkflowStatus
from . import journal, projector
from .ids import new_workflow_id, shard_of
from .transactions import writing

T = TypeVar("T")
log = logging.getLogger(__name__)
HUB = "hub"  # the "engine" of the raw events that record what people did (rename, cancel)
_RAW = cast(Table, RawEvent.__table__)
_WORKFLOWS = cast(Table, Workflow.__table__)
# A create Nextflow sends again (25.08+ retries on 502-504 and I/O errors, for about 3 min)
# after the hub stored the first: the same session and run name, nothing else received yet.
_CREATE_RETRY_WINDOW = timedelta(minutes=5)


class EngineMismatch(Exception):
    """An event of one engine addressed to a run of another."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    workflow_id: str
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One raw event to append. ``body`` is its JSON value, or its JSON text already made."""

    engine: str
    kind: str
    workflow_id: str
    body: Any
    received_at: datetime
    dedupe_key: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "kind": self.kind,
            "workflow_id": self.workflow_id,
            "received_at": self.received_at,
            "dedupe_key": self.dedupe_key,
            "body": self.body,
            "shard": shard_of(self.workflow_id),
        }


# Events without an event id cannot conflict (NULL keys are distinct), so they take a plain
# INSERT, which SQLAlchemy 2.0 compiles once and caches; the dialects' ON CONFLICT inserts are
# compiled again on every execution (sqlalchemy#10445), a third of a one-event append.
_PLAIN_INSERT = insert(_RAW).returning(_RAW.c.pk)


def _insert_skipping_duplicates(connection: Connection) -> Any:
    """INSERT of raw events that skips an event id the run already has."""
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return (
        dialect_insert(_RAW)
        .on_conflict_do_nothing(index_elements=["workflow_id", "dedupe_key"])
        .returning(_RAW.c.pk)
    )


def append(connection: Connection, entries: Sequence[Entry]) -> int:
    """Append raw events in this transaction; the number stored (re-sent event ids are
    skipped). The caller commits, then calls ``appended``."""
    if not entries:
        return 0
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: the projector reads a shard's horizon only once
        # no append of it is in flight (projector.py), so no event is ever passed over.
        for shard in sorted({shard_of(entry.workflow_id) for entry in entries}):
            connection.execute(
                select(func.pg_advisory_xact_lock_shared(projector.APPEND_LOCK_CLASS, shard))
            )
    keyed = any(entry.dedupe_key is not None for entry in entries)
    statement = _insert_skipping_duplicates(connection) if keyed else _PLAIN_INSERT
    if len(entries) == 1:
        stored = connection.execute(statement, entries[0].row()).first()
        return 0 if stored is None else 1
    return len(connection.execute(statement, [e.row() for e in entries]).all())


APPENDED = "panoptes.appended"  # app.extensions key: events this process appended


def appended(entries: Sequence[Entry]) -> None:
    """After the commit: count the events and wake this process's projector."""
    metrics.count_ingested((entry.engine, entry.kind) for entry in entries)
    extensions = current_app.extensions
    extensions[APPENDED] = extensions.get(APPENDED, 0) + len(entries)
    projector.wake()


# What a decision gives: the entries to append, and the answer once the number stored is
# known (None: they went to the journal, where duplicates are only skipped at replay).
Decision = tuple[list[Entry], Callable[[int | None], T]]
# Transient trouble is retried within the request for this long in all, then the journal
# takes the event.
_RETRY_DELAYS = (0.05, 0.2, 0.5)


def _database_trouble(error: BaseException) -> bool:
    """Whether an error means the database cannot store now (unreachable, restarting,
    read-only, full), not that the statement is wrong."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _store(decide: Callable[[Connection | None], Decision[T]]) -> T:
    """Decide and append in one transaction, retrying transient trouble briefly; when the
    database cannot store, decide without it and keep the entries in the journal. While this
    process's journal holds events, new ones follow them there (a run's order holds)."""
    kept_aside = journal.for_app(current_app)
    if not kept_aside.holds_events():
        for delay in (*_RETRY_DELAYS, None):
            try:
                with writing() as connection:
                    entries, finish = decide(connection)
                    stored = append(connection, entries)
            except DBAPIError as error:
                if not _database_trouble(error):
                    raise
                log.warning("the database cannot store events now: %s", error.orig)
                if delay is None:
                    break
                time.sleep(delay)
                continue
            appended(entries[:stored])  # a request's entries share their engine and kind
            return finish(stored)
    entries, finish = decide(None)
    kept_aside.add(entries)
    metrics.count_ingested((entry.engine, entry.kind) for entry in entries)
    projector.wake()
    return finish(None)


def _commit(entries: Sequence[Entry]) -> int | None:
    return _store(lambda connection: (list(entries), lambda stored: stored))


# Run id -> engine, per app: a run's engine never changes, so a request whose run was seen
# before needs no SELECT (a quarter of an append's store time, bench/PROFILES.md).
_RUN_ENGINES = "panoptes_run_engines"
_RUN_ENGINES_MAX = 100_000


def _stored_engine(connection: Connection, workflow_id: str, fresh: bool) -> str | None:
    known: dict[str, str] = current_app.extensions.setdefault(_RUN_ENGINES, {})
    if not fresh and workflow_id in known:
        return known[workflow_id]
    stored = connection.scalar(select(_WORKFLOWS.c.engine).where(_WORKFLOWS.c.id == workflow_id))
    if stored is None:
        known.pop(workflow_id, None)
    else:
        if len(known) >= _RUN_ENGINES_MAX:
            known.clear()  # bounded; refilled by the runs still sending
        known[workflow_id] = stored
    return stored


def _check_engine(
    connection: Connection | None, workflow_id: str, adapter_name: str, engine: str
) -> None:
    """Refuse an event for a known run of another engine (a run's events are projected by
    the adapter of its engine; the projector skips what slips through, as it does for events
    journaled while the database was away)."""
    if connection is None:
        return
    adapter = engines.by_name(adapter_name)

    def owns(stored: str) -> bool:
        return adapter is not None and adapter.takes_events_of(stored, engine)

    stored = _stored_engine(connection, workflow_id, fresh=False)
    if stored is None or owns(stored):
        return
    # Remembered as another engine's: the run may have been deleted and its id reused since.
    stored = _stored_engine(connection, workflow_id, fresh=True)
    if stored is not None and not owns(stored):
        raise EngineMismatch(f"workflow {workflow_id} is a {stored} run, not a {engine} one")


def _is_live(workflow: Row[Any], at: datetime) -> bool:
    """Running and not yet stale at ``at``."""
    if workflow.status != WorkflowStatus.RUNNING:
        return False
    stale_after = engines.for_run(workflow.engine).stale_after(current_app.config)
    return stale_after is None or bool(workflow.updated_at >= at - stale_after)


def _newest_named(connection: Connection, name: str, engine: str | None = None) -> Any:
    query = select(
        _WORKFLOWS.c.id, _WORKFLOWS.c.engine, _WORKFLOWS.c.status, _WORKFLOWS.c.updated_at
    ).where(_WORKFLOWS.c.name == name)
    if engine is not None:
        query = query.where(_WORKFLOWS.c.engine == engine)
    return connection.execute(query.order_by(_WORKFLOWS.c.pk.desc()).limit(1)).first()


def name_for_new_run(connection: Connection, requested: str, workflow_id: str, at: datetime) -> str:
    """The name of a new run that asks for ``requested``: the name itself, unless a live run
    has it (that run keeps it; the new one gets a suffix derived from its id, so a replay of
    the log chooses the same)."""
    clash = _newest_named(connection, requested)
    if clash is not None and _is_live(clash, at):
        return f"{requested}-{hashlib.sha1(workflow_id.encode()).hexdigest()[:8]}"
    return requested


# -- the panoptes protocol (Snakemake) --------------------------------------------------------


def snakemake_create(
    query: Mapping[str, str], body: Any, received_at: datetime | None = None
) -> tuple[str, str]:
    """``GET /create_workflow`` with panoptes' naming rules: a requested name reuses the id
    of the newest finished Snakemake run of that name (which starts afresh); a name a live run
    has gets a suffix. Returns the run's id and name. Without the database (journaled), the
    run is new and the projector checks its name against the live runs."""
    at = received_at or utcnow()
    requested = snakemake.requested_name(query)
    request_body = {"query": dict(query), "body": json_safe(body)}

    def decide(connection: Connection | None) -> Decision[tuple[str, str]]:
        workflow_id = new_workflow_id()
        name = requested or workflow_id
        stored_body = dict(request_body)
        if requested and connection is not None:
            previous = _newest_named(connection, requested, "snakemake")
            if previous is not None and not _is_live(previous, at):
                workflow_id = previous.id
            else:
                name = name_for_new_run(connection, requested, workflow_id, at)
            stored_body["name"] = name
        entry = Entry("snakemake", "create", workflow_id, stored_body, at)
        return [entry], lambda stored: (workflow_id, name)

    return _store(decide)


def snakemake_update(
    workflow_id: str, envelope: Mapping[str, Any], received_at: datetime | None = None
) -> None:
    """One ``/update_workflow_status`` envelope (its ``msg`` already checked to decode)."""
    text = storable_text(dict(envelope))
    entry = Entry("snakemake", "update", workflow_id, JsonText(text), received_at or utcnow())

    def decide(connection: Connection | None) -> Decision[None]:
        _check_engine(connection, workflow_id, "snakemake", "snakemake")
        return [entry], lambda stored: None

    _store(decide)


def _batch(
    adapter: str,
    engine: str,
    workflow_id: str,
    events: Sequence[Mapping[str, Any]],
    received_at: datetime | None,
) -> BatchResult:
    at = received_at or utcnow()
    entries = []
    for event in events:
        key = event.get("event_id")
        text = storable_text(dict(event))
        entries.append(
            Entry(
                adapter, "event", workflow_id, JsonText(text), at, None if key is None else str(key)
            )
        )

    def decide(connection: Connection | None) -> Decision[BatchResult]:
        _check_engine(connection, workflow_id, adapter, engine)

        def result(stored: int | None) -> BatchResult:
            accepted = len(entries) if stored is None else stored
            return BatchResult(workflow_id, accepted, len(entries) - accepted)

        return entries, result

    return _store(decide)


def snakemake_batch(
    workflow_id: str, events: Sequence[Mapping[str, Any]], received_at: datetime | None = None
) -> BatchResult:
    """Our plugin's batch, in one transaction; re-sent event ids are skipped."""
    return _batch("snakemake", "snakemake", workflow_id, events, received_at)


# -- the generic event API ---------------------------------------------------------------------


def generic_batch(
    workflow_id: str,
    engine: str,
    events: Sequence[Mapping[str, Any]],
    received_at: datetime | None = None,
) -> BatchResult:
    """A batch of the generic event API; every event records its run's engine."""
    return _batch(
        "generic",
        engine,
        workflow_id,
        [{**event, "engine": engine} for event in events],
        received_at,
    )


# -- the Tower protocol (Nextflow) -------------------------------------------------------------


def _created_before(connection: Connection, body: Mapping[str, Any], at: datetime) -> str | None:
    """The run a retried create already made, if this is one."""
    name, session_id = body.get("runName"), body.get("sessionId")
    if not (isinstance(name, str) and name and isinstance(session_id, str) and session_id):
        return None
    others = (
        select(_RAW.c.pk)
        .where(_RAW.c.workflow_id == _WORKFLOWS.c.id, _RAW.c.kind != "create")
        .exists()
    )
    found = connection.scalar(
        select(_WORKFLOWS.c.id)
        .where(
            _WORKFLOWS.c.name == name,
            _WORKFLOWS.c.engine == "nextflow",
            _WORKFLOWS.c.session_id == session_id,
            _WORKFLOWS.c.created_at >= at - _CREATE_RETRY_WINDOW,
            ~others,
        )
        .order_by(_WORKFLOWS.c.pk.desc())
        .limit(1)
    )
    return None if found is None else str(found)


def tower_event(
    kind: str,
    workflow_id: str | None,
    body: Mapping[str, Any],
    received_at: datetime | None = None,
    text: str | None = None,
) -> str:
    """Any trace call; an id the hub does not know creates the run (after a database reset).
    Returns the run's id. ``workflow_id`` None (create only): a retried create's run, else a
    new one. ``text``: the body as received, when it can be stored as it is."""
    at = received_at or utcnow()
    if text is None:  # made storable first: lookups below use its values
        body, text = json_text(dict(body))
    stored_body = JsonText(text)

    def decide(connection: Connection | None) -> Decision[str]:
        chosen = workflow_id
        if chosen is None:
            retried = None if connection is None else _created_before(connection, body, at)
            chosen = retried or new_workflow_id()
        else:
            _check_engine(connection, chosen, "nextflow", "nextflow")
        return [Entry("nextflow", kind, chosen, stored_body, at)], lambda stored: chosen

    return _store(decide)


def tower_create(
    body: Mapping[str, Any], text: str | None = None, received_at: datetime | None = None
) -> str:
    """``POST /trace/create``: a new run, the one Platform launched (``workflowId``), or the
    one a retried create already made; its id."""
    from .ids import is_valid_workflow_id

    requested = body.get("workflowId")
    adopted = requested if isinstance(requested, str) and is_valid_workflow_id(requested) else None
    return tower_event("create", adopted, body, received_at, text)


# -- what people do ----------------------------------------------------------------------------


def hub_action(workflow_id: str, kind: str, body: dict[str, Any]) -> None:
    """Record a person's action on a run (rename, cancel) in the log."""
    _commit([Entry(HUB, kind, workflow_id, body, utcnow())])


def store_replayed(entries: Sequence[Entry]) -> None:
    """Append journaled entries (the replayer): skipped where their event id is stored."""
    with writing() as connection:
        stored = append(connection, entries)
    if stored:
        projector.wake()
