"""Requested versus used resources, per rule/process: what the jobs asked for (cpus, memory,
time), what they used (CPU, peak memory, run time), how well the request fitted, and a
suggested request (the 95th percentile of use plus a margin). Also a run's CPU-hours and an
estimate of when it ends (from its planned jobs and its rules' run times so far).

Usage comes from the engine: Nextflow reports it per task; Snakemake through the
``benchmark:`` files our plugin reads. Reads are bounded: a sample of at most
``SAMPLE`` finished jobs per run, and at most ``HISTORY_RUNS`` earlier runs of a pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Float, cast, func, select

from .extensions import db
from .models import Job, Workflow
from .normalize.schema import JobStatus, WorkflowStatus

if TYPE_CHECKING:
    from .dashboard import RuleProgress

T = TypeVar("T")

SAMPLE = 2000
HISTORY_RUNS = 10
HISTORY_REFRESH_SECONDS = 60
# A suggestion leaves this much room above the 95th percentile of what the jobs used.
MARGIN = 1.2
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Usage:
    name: str
    cpus: int | None
    memory_bytes: int | None
    time_ms: int | None
    realtime_ms: int | None
    pcpu: float | None
    peak_rss: int | None


@dataclass(frozen=True, slots=True)
class RuleEfficiency:
    """One rule/process: requests (the most common value), use, fit in percent, suggestion."""

    name: str
    jobs: int
    cpus: int | None
    cpu_used: float | None  # mean CPUs busy (pcpu / 100)
    cpu_efficiency: float | None  # percent of the requested CPUs used on average
    memory_bytes: int | None
    memory_p95: float | None
    memory_efficiency: float | None  # 95th percentile of peak memory, percent of the request
    memory_suggested: float | None
    time_ms: int | None
    time_p95_ms: float | None
    time_efficiency: float | None
    time_suggested_ms: float | None
    cpus_suggested: int | None


@dataclass(frozen=True, slots=True)
class Efficiency:
    rules: list[RuleEfficiency]
    runs: int  # how many runs the figures cover


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (not empty)."""
    rank = max(1, math.ceil(q * len(values)))
    return values[rank - 1]


def _most_common(values: Sequence[int | None]) -> int | None:
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    return max(set(seen), key=lambda v: (seen.count(v), v))


def _rule(name: str, jobs: Sequence[_Usage]) -> RuleEfficiency:
    cpus = _most_common([j.cpus for j in jobs])
    memory = _most_common([j.memory_bytes for j in jobs])
    time_ms = _most_common([j.time_ms for j in jobs])
    cpu_used = [j.pcpu / 100 for j in jobs if j.pcpu is not None]
    rss = sorted(float(j.peak_rss) for j in jobs if j.peak_rss is not None)
    real = sorted(float(j.realtime_ms) for j in jobs if j.realtime_ms is not None)
    mean_cpu = sum(cpu_used) / len(cpu_used) if cpu_used else None
    memory_p95 = _percentile(rss, 0.95) if rss else None
    time_p95 = _percentile(real, 0.95) if real else None
    peak_cpu = _percentile(sorted(cpu_used), 0.95) if cpu_used else None
    return RuleEfficiency(
        name=name,
        jobs=len(jobs),
        cpus=cpus,
        cpu_used=mean_cpu,
        cpu_efficiency=100 * mean_cpu / cpus if mean_cpu is not None and cpus else None,
        memory_bytes=memory,
        memory_p95=memory_p95,
        memory_efficiency=100 * memory_p95 / memory if memory_p95 is not None and memory else None,
        memory_suggested=_round_memory(memory_p95 * MARGIN) if memory_p95 is not None else None,
        time_ms=time_ms,
        time_p95_ms=time_p95,
        time_efficiency=100 * time_p95 / time_ms if time_p95 is not None and time_ms else None,
        time_suggested_ms=_round_minutes(time_p95 * MARGIN) if time_p95 is not None else None,
        cpus_suggested=max(1, math.ceil(peak_cpu)) if peak_cpu is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    label: str
    text: str


def settings(engine: str, fit: Efficiency) -> Settings | None:
    """The suggestions of ``fit`` written as the engine reads them (a Snakemake profile, a
    Nextflow configuration); None when the engine has no such format or nothing to say."""
    from . import engines

    format_ = engines.for_run(engine).settings
    if format_ is None:
        return None
    text = format_.render(
        [
            engines.Suggestion(r.name, r.cpus_suggested, r.memory_suggested, r.time_suggested_ms)
            for r in fit.rules
        ]
    )
    return Settings(format_.label, text) if text else None


def _round_memory(value: float) -> float:
    """Up to a whole number of MiB (at least 1)."""
    return max(1, math.ceil(value / _MIB)) * _MIB


def _round_minutes(value_ms: float) -> float:
    """Up to a whole number of minutes (at least 1)."""
    return max(1, math.ceil(value_ms / 60_000)) * 60_000


def _usage(workflow_pks: Sequence[int]) -> list[_Usage]:
    """Usage of the last finished jobs of each run: a bounded read of its (workflow_pk, pk)
    index whatever the run's size (a run of a million jobs without usage reads ``SAMPLE``
    rows, not all of them)."""
    finished = [JobStatus.DONE.value, JobStatus.CACHED.value]
    per_run = max(SAMPLE // max(len(workflow_pks), 1), 200)
    found: list[_Usage] = []
    for workflow_pk in workflow_pks:
        recent = (
            select(Job.pk)
            .where(Job.workflow_pk == workflow_pk, Job.status.in_(finished))
            .order_by(Job.pk.desc())
            .limit(per_run)
        )
        rows = db.session.execute(
            select(
                Job.name,
                Job.cpus,
                Job.memory_bytes,
                Job.time_ms,
                Job.realtime_ms,
                Job.pcpu,
                Job.peak_rss,
            ).where(
                Job.pk.in_(recent.scalar_subquery()),
                (Job.realtime_ms.is_not(None) | Job.peak_rss.is_not(None) | Job.pcpu.is_not(None)),
            )
        )
        found += [_Usage(str(r[0] or "(unnamed)"), *r[1:]) for r in rows]
    return found


def _summarise(workflow_pks: Sequence[int]) -> list[RuleEfficiency]:
    by_rule: dict[str, list[_Usage]] = {}
    for usage in _usage(workflow_pks):
        by_rule.setdefault(usage.name, []).append(usage)
    return [_rule(name, jobs) for name, jobs in by_rule.items()]


def for_run(workflow: Workflow) -> Efficiency:
    """Requests against use per rule/process in this run."""
    return Efficiency(_summarise([workflow.pk]), 1)


def _for_a_while(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """Kept per app for up to ``HISTORY_REFRESH_SECONDS``: what reads a pipeline's runs."""
    from .dashboard import _aggregates

    return _aggregates().get((*key, int(time.time() // HISTORY_REFRESH_SECONDS)), compute)


def _pipeline_runs(workflow: Workflow, runs: int) -> list[int]:
    """The last ``runs`` successful runs of the workflow's pipeline (engine and
    Snakefile/project). This reads the runs table (no index can hold a project, which may be
    any length), about 100 ms at 100,000 runs, hence kept a while."""
    if not workflow.project:
        return []
    return _for_a_while(
        ("pipeline-runs", workflow.id, workflow.pk, runs),
        lambda: list(
            db.session.scalars(
                select(Workflow.pk)
                .where(
                    Workflow.engine == workflow.engine,
                    Workflow.project == workflow.project,
                    Workflow.status == WorkflowStatus.DONE.value,
                )
                .order_by(Workflow.started_at.desc(), Workflow.pk.desc())
                .limit(runs)
            )
        ),
    )


def across_runs(workflow: Workflow, runs: int = HISTORY_RUNS) -> Efficiency:
    """The same over the last ``runs`` successful runs of the same pipeline, this one
    included if it finished."""
    pks = _pipeline_runs(workflow, runs)
    if not pks:
        return Efficiency([], 0)
    return _for_a_while(("history", tuple(pks)), lambda: Efficiency(_summarise(pks), len(pks)))


@dataclass(frozen=True, slots=True)
class CpuHours:
    hours: float
    # A run of more than SAMPLE finished jobs: its last SAMPLE jobs' mean, times them all.
    estimated: bool


def cpu_hours(workflow: Workflow) -> CpuHours | None:
    """CPU time the run's finished jobs used, in hours, summed by the database: the engine's
    %CPU over its run time where reported, else the requested CPUs over the job's duration.
    Exact up to ``SAMPLE`` finished jobs; beyond, estimated from the last ``SAMPLE`` of them
    (a sum over a million jobs took seconds a page load)."""
    from .dashboard import _duration_seconds

    seconds = func.coalesce(cast(Job.realtime_ms, Float) / 1000.0, _duration_seconds())
    busy = func.coalesce(cast(Job.pcpu, Float) / 100.0, cast(Job.cpus, Float), 1.0)
    sample = (
        select((seconds * busy).label("cpu_seconds"))
        .where(Job.workflow_pk == workflow.pk, Job.completed_at.is_not(None))
        .order_by(Job.pk.desc())
        .limit(SAMPLE)
        .subquery()
    )
    total, rows = db.session.execute(select(func.sum(sample.c.cpu_seconds), func.count())).one()
    if total is None:
        return None
    finished = sum(
        count or 0
        for count in (
            workflow.n_done,
            workflow.n_error,
            workflow.n_cached,
            workflow.n_aborted,
            workflow.n_ignored,
        )
    )
    if rows < SAMPLE or finished <= rows:
        return CpuHours(float(total) / 3600, estimated=False)
    return CpuHours(float(total) / rows * finished / 3600, estimated=True)


def eta_seconds(workflow: Workflow, done: int, total: int, now: datetime) -> float | None:
    """Seconds until a Running run ends, at the pace it has kept: (elapsed / done) times the
    jobs left. None when it cannot be told (nothing done yet, no plan, not running)."""
    if workflow.status != WorkflowStatus.RUNNING.value or workflow.started_at is None:
        return None
    if done <= 0 or total <= done:
        return None
    elapsed = (now - workflow.started_at).total_seconds()
    if elapsed <= 0:
        return None
    return elapsed / done * (total - done)


@dataclass(frozen=True, slots=True)
class RulePace:
    """One rule/process of a running run: the jobs it has left and how long its jobs took."""

    name: str
    waiting: int  # planned or pending, not started
    running: int
    finished: int  # finished jobs of this run with a run time
    seconds: float  # their run times, summed
    running_seconds: float  # how long the running ones have run so far, summed


@dataclass(frozen=True, slots=True)
class Eta:
    seconds: float
    # "plan": each rule's jobs left times its jobs' run time, over the run's parallelism;
    # "pace": the run's elapsed time per finished job, times the jobs left.
    basis: str


def estimate_left(
    rules: Sequence[RulePace], elapsed: float, history: Mapping[str, float]
) -> float | None:
    """Seconds until the jobs left are done: per rule, the jobs not started times a job's run
    time (this run's mean for the rule, else the pipeline's earlier runs' in ``history``,
    else this run's mean over every rule), plus what that leaves of its running jobs; all
    over the parallelism the run has kept (busy seconds per elapsed second). None without a
    single finished job to go by."""
    finished = sum(rule.finished for rule in rules)
    if finished == 0 or elapsed <= 0:
        return None
    overall = sum(rule.seconds for rule in rules) / finished
    busy = sum(rule.seconds + rule.running_seconds for rule in rules)
    work = 0.0
    for rule in rules:
        own = rule.seconds / rule.finished if rule.finished else None
        mean = own if own is not None else history.get(rule.name, overall)
        work += rule.waiting * mean + max(rule.running * mean - rule.running_seconds, 0.0)
    parallelism = busy / elapsed
    return work / parallelism if parallelism > 0 else None


def _paces(
    workflow: Workflow, progress: Sequence[RuleProgress], now: datetime
) -> tuple[list[RulePace], float | None]:
    """Each rule's pace from the run's last ``SAMPLE`` finished jobs and its running ones (a
    bounded read whatever the run's size: this runs on every load of a live run's page), and
    the window they cover (from the earliest start among them to ``now``)."""
    from .dashboard import UNNAMED, _duration_seconds, _epoch

    now_epoch = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    finished = db.session.execute(
        select(Job.name, _duration_seconds(), _epoch(Job.started_at))
        .where(Job.workflow_pk == workflow.pk, Job.status == JobStatus.DONE.value)
        .order_by(Job.pk.desc())
        .limit(SAMPLE)
    ).all()
    running = db.session.execute(
        select(Job.name, _epoch(Job.started_at))
        .where(Job.workflow_pk == workflow.pk, Job.status == JobStatus.RUNNING.value)
        .limit(SAMPLE)
    ).all()
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    busy: dict[str, float] = {}
    starts: list[float] = []
    for name, duration, start in finished:
        if duration is None:
            continue
        key = str(name or UNNAMED)
        counts[key] = counts.get(key, 0) + 1
        seconds[key] = seconds.get(key, 0.0) + max(float(duration), 0.0)
        if start is not None:
            starts.append(float(start))
    for name, start in running:
        if start is not None:
            key = str(name or UNNAMED)
            busy[key] = busy.get(key, 0.0) + max(now_epoch - float(start), 0.0)
            starts.append(float(start))
    paces = [
        RulePace(
            name=rule.name,
            waiting=rule.pending,
            running=rule.running,
            finished=counts.get(rule.name, 0),
            seconds=seconds.get(rule.name, 0.0),
            running_seconds=busy.get(rule.name, 0.0),
        )
        for rule in progress
    ]
    return paces, (now_epoch - min(starts) if starts else None)


def _history_means(workflow: Workflow, names: Sequence[str]) -> dict[str, float]:
    """Mean run time per rule in the pipeline's last successful runs: a bounded read of each
    run's jobs of those rules."""
    pks = [pk for pk in _pipeline_runs(workflow, HISTORY_RUNS) if pk != workflow.pk]
    if not names or not pks:
        return {}
    return _for_a_while(
        ("history-means", tuple(pks), tuple(names)), lambda: _mean_run_times(pks, names)
    )


def _mean_run_times(workflow_pks: Sequence[int], names: Sequence[str]) -> dict[str, float]:
    from .dashboard import _duration_seconds

    per_run = max(SAMPLE // len(workflow_pks), 200)
    totals: dict[str, tuple[float, int]] = {}
    for workflow_pk in workflow_pks:
        rows = db.session.execute(
            select(Job.name, _duration_seconds())
            .where(
                Job.workflow_pk == workflow_pk,
                Job.name.in_(list(names)),
                Job.status == JobStatus.DONE.value,
            )
            .limit(per_run)
        )
        for name, seconds in rows:
            if seconds is not None:
                total, count = totals.get(str(name), (0.0, 0))
                totals[str(name)] = (total + float(seconds), count + 1)
    return {name: total / count for name, (total, count) in totals.items()}


def eta(workflow: Workflow, progress: Sequence[RuleProgress], now: datetime) -> Eta | None:
    """When a Running run should end: from its planned jobs and its rules' run times so far
    (``estimate_left``), else at the pace it has kept (``eta_seconds``)."""
    if workflow.status != WorkflowStatus.RUNNING.value or workflow.started_at is None:
        return None
    left = sum(rule.pending + rule.running for rule in progress)
    if left == 0:
        return None
    paces, window = _paces(workflow, progress, now)
    unmeasured = [p.name for p in paces if (p.waiting or p.running) and not p.finished]
    elapsed = window if window is not None else (now - workflow.started_at).total_seconds()
    planned = estimate_left(paces, elapsed, _history_means(workflow, unmeasured))
    if planned is not None:
        return Eta(planned, "plan")
    done = sum(rule.done for rule in progress)
    paced = eta_seconds(workflow, done, done + left, now)
    return None if paced is None else Eta(paced, "pace")
