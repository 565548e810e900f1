"""The state transitions of runs and jobs: pure functions over (current state, events).

The projector (``panoptes/store/projector.py``) loads the rows these events touch, folds the
events into them here, and writes back what changed. Live projection and ``panoptes reindex``
are the same code, and every transition is tested without a database
(``tests/normalize/test_reducer.py``). The status rules themselves are in ``rules.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import rules
from .schema import (
    JOB_FIELDS,
    TERMINAL_JOB_STATUSES,
    Event,
    Heartbeat,
    JobPolicy,
    JobStatus,
    JobUpdate,
    MarkedCancelled,
    Reconcile,
    Renamed,
    RunCreated,
    ShellCommand,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)

# The per-status job counters of a run, kept incrementally so no read counts job rows.
COUNTERS: Mapping[JobStatus, str] = {
    JobStatus.PENDING: "n_pending",
    JobStatus.SUBMITTED: "n_submitted",
    JobStatus.RUNNING: "n_running",
    JobStatus.DONE: "n_done",
    JobStatus.ERROR: "n_error",
    JobStatus.CACHED: "n_cached",
    JobStatus.ABORTED: "n_aborted",
    JobStatus.IGNORED: "n_ignored",
}
# A job left unfinished when its run ends: the run succeeded, so it did; otherwise it was
# stopped with the run.
_CLOSED_ON_SUCCESS = JobStatus.DONE
_CLOSED_ON_END = JobStatus.ABORTED
# What an earlier attempt of a retried job keeps (``extra["attempts"]``).
_ATTEMPT_FIELDS = ("started_at", "completed_at", "exit_code", "error_message")
# Set once per attempt: a later duplicate must not move the start of a job.
_SET_ONCE = frozenset({"submitted_at", "started_at"})
# What a run starting afresh under a reused id forgets.
_CLEARED_ON_RESTART = (
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
    "open_jobs",
)
_INFO_FIELDS = (
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
)
# A run's row and a job's row, as the reducer sees them (the tables' columns but keys).
RUN_COLUMNS = (
    "id",
    "engine",
    "name",
    "status",
    "name_locked",
    "created_at",
    "completed_at",
    "updated_at",
    "progress_done",
    "progress_total",
    *COUNTERS.values(),
    "n_unseen",
    "open_jobs",
    *_INFO_FIELDS,
    "error_message",
    "error_report",
    "exit_status",
    "stats",
    "metrics",
    "progress_detail",
    "extra",
    "last_job_key",
)
JOB_COLUMNS = ("job_key", "status", "updated_at", *sorted(JOB_FIELDS))


@dataclass(slots=True)
class RunState:
    """One run as the reducer sees it: its row, the jobs at hand, and what the writer must
    know besides (whether the row existed, whether its stored jobs are to be deleted)."""

    run: dict[str, Any]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether the run exists (stored, or begun by an earlier event): a create then restarts it.
    exists: bool = True
    # Every stored job of the run is to be deleted (it restarted); ``jobs`` are all new.
    jobs_cleared: bool = False


def new_run(workflow_id: str, engine: str, at: datetime) -> RunState:
    """The state of a run no event has touched yet: Running since ``at``."""
    run: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
    run.update(
        id=workflow_id,
        engine=engine,
        name=workflow_id,
        status=WorkflowStatus.RUNNING.value,
        name_locked=False,
        created_at=at,
        started_at=at,
        updated_at=at,
        n_unseen=0,
        **dict.fromkeys(COUNTERS.values(), 0),
    )
    return RunState(run=run, exists=False)


def job_keys_needed(run: Mapping[str, Any], events: Iterable[Event]) -> set[str]:
    """The stored jobs these events may touch (to be loaded before ``apply``)."""
    events = list(events)
    keys = {e.key for e in events if isinstance(e, JobUpdate)}
    if run.get("last_job_key") and any(isinstance(e, ShellCommand) for e in events):
        keys.add(run["last_job_key"])
    if run.get("open_jobs") and any(_ends_run(e) for e in events):
        keys.update(run["open_jobs"])
    return keys


def _ends_run(event: Event) -> bool:
    """Whether the event may end the run (its unfinished jobs are then closed)."""
    if isinstance(event, WorkflowOutcome):
        return event.final and event.status is not WorkflowStatus.RUNNING
    return isinstance(event, (MarkedCancelled, Reconcile))


def apply(state: RunState, events: Sequence[Event], policy: JobPolicy, at: datetime) -> None:
    """Fold the events of one raw event (recorded at ``at``) into the run's state."""
    run = state.run
    for event in events:
        if isinstance(event, JobUpdate):
            _job(state, policy, event, at)
        elif isinstance(event, WorkflowInfo):
            _info(run, event)
        elif isinstance(event, WorkflowProgress):
            _progress(run, event)
        elif isinstance(event, WorkflowOutcome):
            _outcome(state, event)
        elif isinstance(event, Reconcile):
            _reconcile(state, event)
        elif isinstance(event, ShellCommand):
            _shell_command(state, event)
        elif isinstance(event, RunCreated):
            _created(state, event)
        elif isinstance(event, Renamed):
            run["name"] = event.name
            run["name_locked"] = True
        elif isinstance(event, MarkedCancelled):
            run["status"] = WorkflowStatus.CANCELLED.value
            run["completed_at"] = event.at
            _close_open_jobs(state, _CLOSED_ON_END, event.at)
        elif isinstance(event, Heartbeat):
            pass
    run["updated_at"] = at
    state.exists = True


def _created(state: RunState, event: RunCreated) -> None:
    run = state.run
    if state.exists:
        # The same id again: the run starts afresh, keeping its name.
        state.jobs.clear()
        state.jobs_cleared = True
        run.update(dict.fromkeys(COUNTERS.values(), 0))
        run.update(dict.fromkeys(_CLEARED_ON_RESTART))
        run["n_unseen"] = 0
        run["status"] = WorkflowStatus.RUNNING.value
        run["started_at"] = event.at
        return
    run["name"] = event.name or run["id"]
    run["name_locked"] = event.name_locked


def _count(run: dict[str, Any], status: str, delta: int) -> None:
    attribute = COUNTERS[JobStatus(status)]
    run[attribute] = (run[attribute] or 0) + delta


def _job_rows(run: Mapping[str, Any]) -> int:
    return sum(run[attribute] or 0 for attribute in COUNTERS.values())


def _plan(run: dict[str, Any], planned: int) -> None:
    """The engine planned ``planned`` jobs in all: those without a row are not started yet."""
    run["n_unseen"] = max(planned - _job_rows(run), 0)


def _track_open(run: dict[str, Any], key: str, status: JobStatus) -> None:
    """Keep the keys of the run's unfinished jobs (``open_jobs``) up to date."""
    keys: list[str] = run["open_jobs"] or []
    is_open = status not in TERMINAL_JOB_STATUSES
    if is_open and key not in keys:
        run["open_jobs"] = [*keys, key]
    elif not is_open and key in keys:
        run["open_jobs"] = [k for k in keys if k != key] or None


def _close_open_jobs(state: RunState, status: JobStatus, at: datetime) -> None:
    """The run ended: its unfinished jobs take ``status`` (they were loaded by their keys)."""
    run = state.run
    for key in run["open_jobs"] or []:
        job = state.jobs.get(key)
        if job is None or JobStatus(job["status"]) in TERMINAL_JOB_STATUSES:
            continue
        _count(run, job["status"], -1)
        _count(run, status, +1)
        job["status"] = status.value
        if job["completed_at"] is None:
            job["completed_at"] = at
        job["updated_at"] = at
    run["open_jobs"] = None


def _attempt_record(job: Mapping[str, Any]) -> dict[str, Any]:
    """What an attempt that is over keeps: its number, status, times, exit code, error."""
    record: dict[str, Any] = {"attempt": job["attempt"], "status": job["status"]}
    for attribute in _ATTEMPT_FIELDS:
        value = job[attribute]
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            value = value.isoformat(timespec="milliseconds") + "Z"
        record[attribute] = value
    return record


def _job(state: RunState, policy: JobPolicy, update: JobUpdate, at: datetime) -> None:
    run = state.run
    job = state.jobs.get(update.key)
    if job is None:
        status = update.status or JobStatus.PENDING
        job = dict.fromkeys(JOB_COLUMNS)
        job.update(job_key=update.key, status=status.value, attempt=1, updated_at=at)
        _set_fields(job, update.fields, overwrite=True, new_attempt=False)
        state.jobs[update.key] = job
        _count(run, status, +1)
        _track_open(run, update.key, status)
        if run["n_unseen"]:
            run["n_unseen"] -= 1
    else:
        current = JobStatus(job["status"])
        incoming = update.status or current
        status, new_attempt = rules.next_job_status(
            policy, current, incoming, update.starts_attempt
        )
        if new_attempt:
            extra = dict(job["extra"] or {})
            record = _attempt_record(job)
            if extra.get("log_tails"):
                record["log_tails"] = extra.pop("log_tails")
            extra["attempts"] = [*(extra.get("attempts") or []), record]
            job["extra"] = extra
            job["attempt"] += 1
            for attribute in ("started_at", "completed_at", "exit_code", "error_message"):
                job[attribute] = None
        overwrite = rules.accepts_job_update(current, update.status, status)
        _set_fields(job, update.fields, overwrite=overwrite, new_attempt=new_attempt)
        if status is not current:
            job["status"] = status.value
            _count(run, current, -1)
            _count(run, status, +1)
            _track_open(run, update.key, status)
        job["updated_at"] = at
    if update.announces:
        run["last_job_key"] = update.key
    if update.starts_attempt:
        run["status"] = rules.after_job_start(
            WorkflowStatus(run["status"]), run["completed_at"] is not None
        ).value


def _set_fields(
    job: dict[str, Any], fields: Mapping[str, Any], overwrite: bool, new_attempt: bool
) -> None:
    for name, value in fields.items():
        current = job[name]
        if name == "extra" and isinstance(value, dict):
            if overwrite or current is None:
                job["extra"] = {**(current or {}), **value}
            continue
        if current is not None and (not overwrite or (name in _SET_ONCE and not new_attempt)):
            continue
        job[name] = value


def _info(run: dict[str, Any], info: WorkflowInfo) -> None:
    if info.name and not run["name_locked"]:
        run["name"] = info.name
    for attribute in _INFO_FIELDS:
        value = getattr(info, attribute)
        if value is not None:
            run[attribute] = value
    if info.extra:
        run["extra"] = {**(run["extra"] or {}), **info.extra}
        planned = info.extra.get("planned_jobs")
        if isinstance(planned, dict):
            _plan(run, sum(n for n in planned.values() if isinstance(n, int)))


def _progress(run: dict[str, Any], progress: WorkflowProgress) -> None:
    if progress.done is not None:
        run["progress_done"] = progress.done
    if progress.total is not None:
        run["progress_total"] = progress.total
    if progress.detail is not None:
        run["progress_detail"] = progress.detail
    if not progress.decides_status:
        return
    if progress.total is not None:
        _plan(run, progress.total)
    before = WorkflowStatus(run["status"])
    after = rules.after_progress(before, run["progress_done"], run["progress_total"])
    if after is before:
        return
    run["status"] = after.value
    if after is WorkflowStatus.DONE:
        run["completed_at"] = progress.at
        run["error_message"] = run["error_report"] = None
    else:
        run["completed_at"] = None


def _outcome(state: RunState, outcome: WorkflowOutcome) -> None:
    run = state.run
    run["status"] = outcome.status.value
    if outcome.final:
        run["completed_at"] = outcome.completed_at or outcome.at
        if outcome.status is not WorkflowStatus.RUNNING:
            success = outcome.status is WorkflowStatus.DONE
            _close_open_jobs(state, _CLOSED_ON_SUCCESS if success else _CLOSED_ON_END, outcome.at)
    if outcome.status is WorkflowStatus.DONE:
        run["error_message"] = run["error_report"] = None
    if outcome.error_message is not None:
        run["error_message"] = outcome.error_message
    if outcome.error_report is not None:
        run["error_report"] = outcome.error_report
    for attribute in ("exit_status", "stats", "metrics"):
        value = getattr(outcome, attribute)
        if value is not None:
            run[attribute] = value
    if outcome.final_counts is not None:
        # The engine's own account at the end outweighs its last progress report.
        run["progress_total"], run["progress_done"] = outcome.final_counts


def _reconcile(state: RunState, event: Reconcile) -> None:
    run = state.run
    rows = _job_rows(run)
    status = rules.after_success(WorkflowStatus(run["status"]), rows)
    run["status"] = status.value
    run["completed_at"] = event.at
    _close_open_jobs(state, _CLOSED_ON_SUCCESS, event.at)
    if status is WorkflowStatus.DONE:
        run["n_unseen"] = 0
        run["progress_total"] = rows
        run["progress_done"] = (run["n_done"] or 0) + (run["n_cached"] or 0)
        run["error_message"] = run["error_report"] = None


def _shell_command(state: RunState, event: ShellCommand) -> None:
    key = state.run["last_job_key"]
    job = state.jobs.get(key) if key is not None else None
    if job is not None and job["command"] is None:
        job["command"] = event.command
