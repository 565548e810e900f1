"""The projector: applies the log to runs and jobs, in batches.

Each batch is one transaction that reads new raw events, folds them into the rows they touch
(``normalize/reducer.py``), writes back what changed and moves the log position; a projector
killed half-way leaves nothing half-applied, and the next one carries on from the position.
Live projection, read-your-writes catch-ups and ``panoptes reindex`` all run ``project_batch``.

Order and exclusion:

- SQLite has one writer at a time (``database.writer_turn``), so events commit in ``pk``
  order and one position (shard -1) suffices; a batch runs in the writer's turn.
- PostgreSQL assigns ``pk`` before commit, so a transaction can commit after a
  later-numbered one. Every append holds its shard's *append lock* shared until it commits
  (``log.append``); a batch takes that lock exclusively for a moment, which waits for the
  appends in flight, reads the shard's highest ``pk`` (its *horizon*: every event up to it
  is committed) and lets appends go on; it then applies events up to the horizon only, in
  ``pk`` order, so none is ever skipped. (Comparing transaction ids against the oldest one in
  progress would do too, but that is cluster-wide: a long transaction of another database
  on the same server would hold the projection back.) The log is split into ``SHARDS``
  partitions by run; a batch holds its shard's projector lock for its transaction, so
  projectors of several instances share the shards and never work on the same one at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import random
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from flask import Flask, current_app, has_app_context
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from .. import engines
from ..engines import EngineAdapter
from ..extensions import db
from ..models import Job, LogPosition, RawEvent, RuleCount, Workflow
from ..normalize import actions, reducer
from ..normalize.reducer import RunState
from ..normalize.schema import Event, RunCreated
from . import journal
from .ids import SHARDS
from .transactions import writing

log = logging.getLogger(__name__)

ALL_SHARDS = -1  # SQLite's one position
HUB = "hub"
# Arbitrary constants naming panoptes' advisory locks on PostgreSQL (the second key is the
# shard): one projector per shard at a time, and appends in flight (see the module's doc).
_PG_LOCK_CLASS = 0x706E6F70
APPEND_LOCK_CLASS = 0x706E6F61
# How long a batch waits for the appends in flight on its shard before it tries again later.
_HORIZON_WAIT = "250ms"
_RAW = cast(Table, RawEvent.__table__)
_WORKFLOWS = cast(Table, Workflow.__table__)
_JOBS = cast(Table, Job.__table__)
_POSITIONS = cast(Table, LogPosition.__table__)
_RULE_COUNTS = cast(Table, RuleCount.__table__)
_MAX_KEYS_PER_QUERY = 500
# How often an idle projector looks for events appended by other processes.
POLL_SECONDS = 0.025
# How long a woken projector waits for more appends before it projects them together.
COALESCE_SECONDS = 0.02
# How long a projector that is not its database's (SQLite) waits before trying again.
_STANDBY_SECONDS = 1.0

# The batch's statements, built once: building a statement and its cache key on every
# execution was a third of a small batch's time (bench/PROFILES.md).
_READ_POSITION = select(_POSITIONS.c.event_pk).where(_POSITIONS.c.shard == bindparam("shard"))
_MOVE_POSITION = (
    update(_POSITIONS)
    .where(_POSITIONS.c.shard == bindparam("of_shard"))
    .values(event_pk=bindparam("new_position"))
)
_NEXT_EVENTS = (
    select(_RAW)
    .where(_RAW.c.pk > bindparam("position"))
    .order_by(_RAW.c.pk)
    .limit(bindparam("limit"))
)
_NEXT_EVENTS_OF_SHARD = _NEXT_EVENTS.where(
    _RAW.c.shard == bindparam("shard"), _RAW.c.pk <= bindparam("horizon")
)
_RUNS_BY_ID = select(_WORKFLOWS).where(_WORKFLOWS.c.id.in_(bindparam("ids", expanding=True)))
_RUNS_BY_ID_LOCKED = _RUNS_BY_ID.with_for_update()  # PostgreSQL: people's deletes lock them too
_JOBS_BY_KEY = select(_JOBS).where(
    _JOBS.c.workflow_pk == bindparam("workflow_pk"),
    _JOBS.c.job_key.in_(bindparam("keys", expanding=True)),
)
_INSERT_RUN = insert(_WORKFLOWS).returning(_WORKFLOWS.c.pk)
_INSERT_JOBS = insert(_JOBS)
_RULE_COUNTS_OF_RUNS = select(_RULE_COUNTS).where(
    _RULE_COUNTS.c.workflow_pk.in_(bindparam("pks", expanding=True))
)
_UPDATE_RULE_COUNT = (
    update(_RULE_COUNTS)
    .where(
        _RULE_COUNTS.c.workflow_pk == bindparam("of_run"),
        _RULE_COUNTS.c.name == bindparam("of_name"),
        _RULE_COUNTS.c.status == bindparam("of_status"),
    )
    .values(jobs=bindparam("count"))
)
_INSERT_RULE_COUNTS = insert(_RULE_COUNTS)
_LOG_HEAD = select(func.max(_RAW.c.pk))


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    applied: int
    # Events are waiting behind a transaction still in progress (PostgreSQL): look again soon.
    blocked: bool = False
    full: bool = False  # the batch was as large as allowed: more may follow at once


# -- one batch ---------------------------------------------------------------------------------


def _position(connection: Connection, shard: int) -> int:
    """The ``pk`` of the last event applied of this shard (SQLite: of the log)."""
    position = connection.scalar(_READ_POSITION, {"shard": shard})
    if position is None:  # a shard no migration created (cannot happen unless rows were deleted)
        connection.execute(insert(_POSITIONS).values(shard=shard, event_pk=0))
        return 0
    return int(position)


def _append_horizon(connection: Connection, shard: int) -> int | None:
    """PostgreSQL: the highest ``pk`` of the shard below which every event is committed, once
    the appends in flight have committed; None if they take longer than ``_HORIZON_WAIT``."""
    savepoint = connection.begin_nested()  # a lock timeout must not end the batch
    try:
        connection.execute(text(f"SET LOCAL lock_timeout = '{_HORIZON_WAIT}'"))
        connection.execute(select(func.pg_advisory_lock(APPEND_LOCK_CLASS, shard)))
    except DBAPIError:
        savepoint.rollback()
        return None
    try:
        return int(connection.scalar(select(func.max(_RAW.c.pk)).where(_RAW.c.shard == shard)) or 0)
    finally:
        connection.execute(select(func.pg_advisory_unlock(APPEND_LOCK_CLASS, shard)))
        savepoint.commit()


def _try_lock_shard(connection: Connection, shard: int) -> bool:
    return bool(connection.scalar(select(func.pg_try_advisory_xact_lock(_PG_LOCK_CLASS, shard))))


def project_batch(connection: Connection, shard: int, limit: int) -> BatchOutcome:
    """Apply up to ``limit`` new events of one shard (SQLite: of the log) in this transaction.
    On PostgreSQL the caller holds the shard's projector lock."""
    position = _position(connection, shard)
    if connection.dialect.name == "postgresql":
        horizon = _append_horizon(connection, shard)
        if horizon is None:
            return BatchOutcome(0, blocked=True)  # appends still in flight: look again soon
        raws = connection.execute(
            _NEXT_EVENTS_OF_SHARD,
            {"position": position, "limit": limit, "shard": shard, "horizon": horizon},
        ).all()
    else:
        raws = connection.execute(_NEXT_EVENTS, {"position": position, "limit": limit}).all()
    if not raws:
        return BatchOutcome(0)
    apply_events(connection, raws)
    connection.execute(_MOVE_POSITION, {"of_shard": shard, "new_position": raws[-1].pk})
    return BatchOutcome(len(raws), full=len(raws) == limit)


# -- folding a batch into its runs -------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """A run being projected: its state, and what the writer needs to write only changes."""

    state: RunState
    as_read: dict[str, Any] = field(default_factory=dict)
    jobs_as_read: dict[str, dict[str, Any]] = field(default_factory=dict)


def _parse(raw: Any) -> tuple[EngineAdapter | None, list[Event]]:
    if raw.engine == HUB:
        return None, actions.parse(raw.kind, raw.body, raw.received_at)
    adapter = engines.by_name(raw.engine)
    if adapter is None:
        log.warning("raw event %s of an unknown adapter %r: skipped", raw.pk, raw.engine)
        return None, []
    return adapter, adapter.parse(raw.kind, raw.body, raw.received_at)


def apply_events(connection: Connection, raws: Sequence[Any]) -> None:
    """Fold raw events (in log order) into their runs and jobs, and write what changed."""
    parsed = [(raw, *_parse(raw)) for raw in raws]
    runs = _load_runs(connection, {raw.workflow_id for raw in raws if raw.workflow_id})
    _load_jobs(connection, runs, parsed)
    for raw, adapter, events in parsed:
        workflow_id = raw.workflow_id
        if not workflow_id:
            continue
        run = runs.get(workflow_id)
        if raw.engine == HUB:
            if run is None or not run.state.exists:
                continue  # a person's action on a run that is gone
            policy = engines.for_run(run.state.run["engine"]).job_policy
        else:
            if adapter is None:
                continue
            engine = adapter.run_engine(raw.body)
            if run is None:
                run = runs[workflow_id] = _Run(
                    reducer.new_run(workflow_id, engine, raw.received_at)
                )
            elif not adapter.takes_events_of(run.state.run["engine"], engine):
                log.warning(
                    "raw event %s: %s event for a %s run: skipped",
                    raw.pk,
                    engine,
                    run.state.run["engine"],
                )
                continue
            policy = adapter.job_policy
            events = _with_names_resolved(connection, run.state, events)
        reducer.apply(run.state, events, policy, raw.received_at)
    _write(connection, runs)


def _with_names_resolved(
    connection: Connection, state: RunState, events: list[Event]
) -> list[Event]:
    """A create recorded by an older release, whose name was not checked against the live
    runs then: check it now, the way the log's appender does today."""
    if state.exists or not any(isinstance(e, RunCreated) and e.resolve_name_clash for e in events):
        return events
    from .log import name_for_new_run

    resolved: list[Event] = []
    for event in events:
        if isinstance(event, RunCreated) and event.resolve_name_clash and event.name:
            name = name_for_new_run(connection, event.name, state.run["id"], event.at)
            event = replace(event, name=name, resolve_name_clash=False)
        resolved.append(event)
    return resolved


def _load_runs(connection: Connection, ids: set[str]) -> dict[str, _Run]:
    runs: dict[str, _Run] = {}
    wanted = sorted(ids)
    query = _RUNS_BY_ID_LOCKED if connection.dialect.name == "postgresql" else _RUNS_BY_ID
    for start in range(0, len(wanted), _MAX_KEYS_PER_QUERY):
        some = wanted[start : start + _MAX_KEYS_PER_QUERY]
        for row in connection.execute(query, {"ids": some}).mappings():
            values = dict(row)
            runs[values["id"]] = _Run(RunState(run=values), as_read=dict(values))
    return runs


def _load_jobs(
    connection: Connection,
    runs: Mapping[str, _Run],
    parsed: Sequence[tuple[Any, EngineAdapter | None, list[Event]]],
) -> None:
    """The stored jobs the batch's events touch, one indexed query per run."""
    events_by_run: dict[str, list[Event]] = defaultdict(list)
    for raw, _, events in parsed:
        if raw.workflow_id in runs:
            events_by_run[raw.workflow_id].extend(events)
    for workflow_id, events in events_by_run.items():
        run = runs[workflow_id]
        keys = sorted(reducer.job_keys_needed(run.state.run, events))
        for start in range(0, len(keys), _MAX_KEYS_PER_QUERY):
            rows = connection.execute(
                _JOBS_BY_KEY,
                {
                    "workflow_pk": run.state.run["pk"],
                    "keys": keys[start : start + _MAX_KEYS_PER_QUERY],
                },
            ).mappings()
            for row in rows:
                job = dict(row)
                run.state.jobs[job["job_key"]] = job
                run.jobs_as_read[job["job_key"]] = dict(job)


def _changes(row: Mapping[str, Any], as_read: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in as_read or as_read[key] != value}


@functools.lru_cache(maxsize=512)  # the sets of columns that change together are few
def _update_of(table: Table, columns: tuple[str, ...]) -> Any:
    return (
        update(table)
        .where(table.c.pk == bindparam("row_pk"))
        .values({column: bindparam(column) for column in columns})
    )


def _update_grouped(
    connection: Connection, table: Table, changes: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """UPDATE only what changed: one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for pk, changed in changes:
        groups[tuple(sorted(changed))].append({**changed, "row_pk": pk})
    for columns, rows in groups.items():
        connection.execute(_update_of(table, columns), rows)


def _rule_of(job: Mapping[str, Any]) -> tuple[str, str]:
    return job.get("name") or "", job["status"]


def _count_rules(connection: Connection, deltas: Mapping[tuple[int, str, str], int]) -> None:
    """Move the runs' per-(rule, status) job counts by ``deltas``: the runs' counts are read,
    changed rows updated and new ones inserted (the projector is their only writer)."""
    deltas = {key: delta for key, delta in deltas.items() if delta}
    if not deltas:
        return
    pks = sorted({pk for pk, _, _ in deltas})
    stored = {
        (row.workflow_pk, row.name, row.status): row.jobs
        for row in connection.execute(_RULE_COUNTS_OF_RUNS, {"pks": pks})
    }
    updated, added = [], []
    for (pk, name, status), delta in deltas.items():
        if (pk, name, status) in stored:
            jobs = stored[pk, name, status] + delta
            updated.append({"of_run": pk, "of_name": name, "of_status": status, "count": jobs})
        else:
            added.append({"workflow_pk": pk, "name": name, "status": status, "jobs": delta})
    if updated:
        connection.execute(_UPDATE_RULE_COUNT, updated)
    if added:
        connection.execute(_INSERT_RULE_COUNTS, added)


def _write(connection: Connection, runs: Mapping[str, _Run]) -> None:
    run_changes: list[tuple[int, dict[str, Any]]] = []
    job_changes: list[tuple[int, dict[str, Any]]] = []
    new_jobs: list[dict[str, Any]] = []
    rule_deltas: dict[tuple[int, str, str], int] = defaultdict(int)
    for run in runs.values():
        state = run.state
        if not state.exists:
            continue  # loaded for nothing (a person's action on a run that is gone)
        pk = state.run.get("pk")
        if pk is None:
            values = {k: v for k, v in state.run.items() if k != "pk"}
            pk = connection.execute(_INSERT_RUN, values).scalar_one()
            state.run["pk"] = pk
        else:
            changed = _changes(state.run, run.as_read)
            if changed:
                run_changes.append((pk, changed))
        if state.jobs_cleared:
            connection.execute(delete(_JOBS).where(_JOBS.c.workflow_pk == pk))
            connection.execute(delete(_RULE_COUNTS).where(_RULE_COUNTS.c.workflow_pk == pk))
            run.jobs_as_read.clear()
        for key, job in state.jobs.items():
            as_read = run.jobs_as_read.get(key)
            if as_read is None:
                new_jobs.append({**{k: v for k, v in job.items() if k != "pk"}, "workflow_pk": pk})
                rule_deltas[(pk, *_rule_of(job))] += 1
            else:
                changed = _changes(job, as_read)
                if changed:
                    job_changes.append((job["pk"], changed))
                    if "name" in changed or "status" in changed:
                        rule_deltas[(pk, *_rule_of(as_read))] -= 1
                        rule_deltas[(pk, *_rule_of(job))] += 1
    _update_grouped(connection, _WORKFLOWS, run_changes)
    if new_jobs:
        connection.execute(_INSERT_JOBS, new_jobs)
    _update_grouped(connection, _JOBS, job_changes)
    _count_rules(connection, rule_deltas)


# -- running it --------------------------------------------------------------------------------


def _postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def run_pass(app: Flask, limit: int | None = None) -> BatchOutcome:
    """Project everything this process can take now, batch after batch; what it applied and
    whether events wait behind transactions still in progress."""
    limit = limit or int(app.config["PROJECTOR_BATCH_SIZE"])
    applied, blocked = 0, False
    with app.app_context():
        if not _postgresql(db.engine):
            while True:
                with writing() as connection:
                    outcome = project_batch(connection, ALL_SHARDS, limit)
                applied += outcome.applied
                if not outcome.full:
                    return BatchOutcome(applied)
        shards = list(range(SHARDS))
        random.shuffle(shards)  # projectors of several instances start on different shards
        for shard in shards:
            while True:
                with writing() as connection:
                    if not _try_lock_shard(connection, shard):
                        blocked = True  # another projector has it: look again soon
                        break
                    outcome = project_batch(connection, shard, limit)
                applied += outcome.applied
                blocked = blocked or outcome.blocked
                if not outcome.full:
                    break
    return BatchOutcome(applied, blocked)


_LAST_PK = 2**63 - 1
_APPLIED_UP_TO = (
    select(_POSITIONS.c.event_pk).where(_POSITIONS.c.shard == ALL_SHARDS).scalar_subquery()
)
_PENDING = (
    select(func.count())
    .select_from(_RAW)
    .where(_RAW.c.pk > func.coalesce(_APPLIED_UP_TO, 0), _RAW.c.pk <= bindparam("up_to"))
)
# PostgreSQL, by shard; a shard without a position row has projected nothing yet (the
# projector adds it).
_PENDING_BY_SHARD = (
    select(func.count())
    .select_from(_RAW.outerjoin(_POSITIONS, _POSITIONS.c.shard == _RAW.c.shard))
    .where(_RAW.c.pk > func.coalesce(_POSITIONS.c.event_pk, 0), _RAW.c.pk <= bindparam("up_to"))
)


def pending_events(connection: Connection, up_to: int | None = None) -> int:
    """How many stored events (of pk at most ``up_to``) are not yet projected."""
    query = _PENDING_BY_SHARD if connection.dialect.name == "postgresql" else _PENDING
    return int(connection.scalar(query, {"up_to": _LAST_PK if up_to is None else up_to}) or 0)


def log_head(connection: Connection) -> int:
    return int(connection.scalar(_LOG_HEAD) or 0)


class Projector:
    """One app's projector: a background thread, woken at once by this process's appends
    and polling for other processes' (``POLL_SECONDS``)."""

    def __init__(self, app: Flask) -> None:
        self._app = weakref.ref(app)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._owner_file: int | None = None

    def wake(self) -> None:
        self._wake.set()

    def ensure_running(self) -> None:
        """Start the thread in this process (again after a fork: threads do not survive it)."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._owner_file = None
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="panoptes-projector", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        if self._owner_file is not None:
            with contextlib.suppress(OSError):
                os.close(self._owner_file)
            self._owner_file = None

    def _is_owner(self, engine: Engine) -> bool:
        """SQLite: whether this process is the one that projects (an flock on
        ``<database>.projector-lock``, held for the process's life). PostgreSQL: every
        projector takes the shards it can lock."""
        database = engine.url.database
        if _postgresql(engine) or not database or database == ":memory:":
            return True
        if self._owner_file is not None:
            return True
        try:
            descriptor = os.open(
                database + ".projector-lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError:
            return True  # a read-only directory: every process projects (still correct)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            return False
        self._owner_file = descriptor
        return True

    def _run(self) -> None:
        last_head = -1
        blocked = False
        last_pass = 0.0
        last_journal_look = 0.0
        failures = 0
        while not self._stop.is_set():
            woken = self._wake.wait(POLL_SECONDS)
            if woken:
                # Let the appends of the next moments join this batch: a batch's fixed cost
                # (its queries, its commit) then spreads over many events (bench/PROFILES.md).
                self._stop.wait(COALESCE_SECONDS)
            self._wake.clear()
            app = self._app()
            if app is None or self._stop.is_set():
                return
            try:
                now = time.monotonic()
                if journal.for_app(app).holds_events() or now - last_journal_look > 1.0:
                    # Also the files of processes that ended before replaying theirs.
                    last_journal_look = now
                    replay_journal(app)
                with app.app_context():
                    engine = db.engine
                    if not self._is_owner(engine):
                        self._stop.wait(_STANDBY_SECONDS)
                        continue
                    with engine.connect() as connection:
                        head = log_head(connection)
                now = time.monotonic()
                if woken or blocked or head != last_head or now - last_pass > 1.0:
                    outcome = run_pass(app)
                    blocked, last_head, last_pass = outcome.blocked, head, now
                failures = 0
            except Exception:
                failures += 1
                log.exception("projection failed; retrying")
                self._stop.wait(min(0.1 * 2**failures, 5.0))


_PROJECTORS: weakref.WeakKeyDictionary[Flask, Projector] = weakref.WeakKeyDictionary()
_PROJECTORS_LOCK = threading.Lock()


def for_app(app: Flask) -> Projector:
    projector = _PROJECTORS.get(app)
    if projector is None:
        with _PROJECTORS_LOCK:
            projector = _PROJECTORS.setdefault(app, Projector(app))
    return projector


def wake() -> None:
    """Tell this process's projector that an event was committed."""
    if has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app.config["PROJECTOR_THREAD"]:
            projector = for_app(app)
            projector.ensure_running()
            projector.wake()


def replay_journal(app: Flask) -> int:
    """Append what the journal kept while the database was away; the number of events
    (0 while the database still cannot store them)."""
    from .log import store_replayed

    with app.app_context():
        try:
            return journal.for_app(app).replay(store_replayed)
        except DBAPIError as error:
            log.info("the journal waits for the database: %s", error.orig)
            return 0


def catch_up(app: Flask | None = None, timeout: float = 10.0) -> bool:
    """Project, in this thread, every event committed before the call (read-your-writes);
    False if that did not happen within ``timeout`` seconds (another instance's projector
    holds a shard and is slow)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    with app.app_context():
        with db.engine.connect() as connection:
            head = log_head(connection)
        while True:
            run_pass(app)
            with db.engine.connect() as connection:
                if pending_events(connection, up_to=head) == 0:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)


def reindex(app: Flask | None = None) -> int:
    """Rebuild runs and jobs from the log, in one transaction and through the same batches as
    live projection; the number of events replayed."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    limit = int(app.config["PROJECTOR_BATCH_SIZE"])
    replayed = 0
    with app.app_context(), writing() as connection:
        postgresql = connection.dialect.name == "postgresql"
        shards = list(range(SHARDS)) if postgresql else [ALL_SHARDS]
        if postgresql:
            for shard in shards:  # wait for any projector working on them, keep them out
                connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_CLASS, shard)))
        connection.execute(delete(_RULE_COUNTS))
        connection.execute(delete(_JOBS))
        connection.execute(delete(_WORKFLOWS))
        connection.execute(update(_POSITIONS).values(event_pk=0))
        for shard in shards:
            while True:
                outcome = project_batch(connection, shard, limit)
                replayed += outcome.applied
                if not outcome.full:
                    break
    return replayed


@contextlib.contextmanager
def paused(app: Flask) -> Iterator[None]:
    """Stop this app's projector thread for the duration (tests of the log on its own)."""
    projector = for_app(app)
    projector.stop()
    try:
        yield
    finally:
        if app.config["PROJECTOR_THREAD"]:
            projector.ensure_running()
