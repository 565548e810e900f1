"""Read-only queries behind the dashboard pages.

Aggregates (counts by status, per-rule progress, resource quantiles, the timeline of a large run)
are computed by the database with GROUP BY and window functions, so a page never loads more of a
run's job rows into Python than one page of its job table (or a bounded timeline). Every query
filters on an indexed prefix: ``ix_workflows_started_pk`` / ``ix_workflows_status_updated`` for
runs, ``ix_jobs_workflow_status`` / ``ix_jobs_workflow_name`` for one run's jobs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import Float, Integer, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.orm import defer, load_only
from sqlalchemy.sql import ColumnElement

from . import charts, engines, queries, serializers
from .config import Staleness
from .extensions import db
from .models import Job, RuleCount, Workflow, utcnow
from .normalize.schema import JobStatus, WorkflowStatus

RUNS_PER_PAGE = 50
JOBS_PER_PAGE = 50
FAILED_JOBS_SHOWN = 10
# Runs with more job rows than this get a density timeline (jobs started per time bin) drawn
# from a GROUP BY instead of one bar per job.
TIMELINE_JOB_LIMIT = 1000
TIMELINE_BINS = 120
# Larger runs are summarised from an even sample (every k-th job) of about this many jobs:
# resource quantiles, and the density timeline.
RESOURCE_SAMPLE = 2000
TIMELINE_SAMPLE = 2000
UNNAMED = "(unnamed)"
# A live run's density timeline reaches "now": recomputed at most this often while unchanged.
LIVE_TIMELINE_SECONDS = 5

T = TypeVar("T")


class _AggregateCache:
    """The heavy aggregates of large runs (density timeline, resource quantiles), per app.

    Keyed by the run's id, key and ``updated_at``: every event moves ``updated_at``, so an entry
    is never stale, and a reload of an unchanged run (the common case: finished runs, several
    people on one page) costs no scan of its jobs.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]  # type: ignore[no-any-return]
        value = compute()  # outside the lock: two first loads may both compute, harmlessly
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value


def _aggregates() -> _AggregateCache:
    cache: _AggregateCache | None = current_app.extensions.get("panoptes_aggregates")
    if cache is None:  # first use in this app; a race only builds one more, unused
        cache = current_app.extensions.setdefault("panoptes_aggregates", _AggregateCache())
    return cache


def _run_version(workflow: Workflow) -> tuple[str, int, datetime]:
    return (workflow.id, workflow.pk, workflow.updated_at)


# -- runs ------------------------------------------------------------------------------------

RUN_SORTS: dict[str, tuple[Any, ...]] = {
    # When the run started (the engine's time), not when the hub heard of it: a spool sent
    # late or a replay lands where it belongs.
    "started": (Workflow.started_at, Workflow.pk),
    "updated": (Workflow.updated_at, Workflow.pk),
    "name": (Workflow.name, Workflow.pk),
    "status": (Workflow.status, Workflow.updated_at),
}
RUN_SORT_DESCENDING = {"started": True, "updated": True, "name": False, "status": False}


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the runs list shows: a search, one engine, one status, a sort, a page."""

    q: str = ""
    engine: str = ""
    status: str = ""
    sort: str = "started"
    descending: bool = True
    page: int = 1


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[serializers.WorkflowSummary]
    total: int
    page: int
    pages: int


def _run_conditions(run_filter: RunFilter, stale: Staleness, with_status: bool) -> list[Any]:
    conditions: list[Any] = []
    if run_filter.engine:
        conditions.append(Workflow.engine == run_filter.engine)
    if run_filter.q:
        conditions.append(
            func.lower(Workflow.name).like(queries.like_pattern(run_filter.q), escape="\\")
        )
    if with_status and run_filter.status:
        conditions.append(queries.status_filter([WorkflowStatus(run_filter.status)], stale))
    return conditions


def list_runs(run_filter: RunFilter, stale: Staleness) -> RunPage:
    """One page of runs, newest first by default (offset pagination on an indexed order)."""
    conditions = _run_conditions(run_filter, stale, with_status=True)
    total = db.session.scalar(select(func.count()).select_from(Workflow).where(*conditions)) or 0
    pages = max(1, math.ceil(total / RUNS_PER_PAGE))
    page = min(max(run_filter.page, 1), pages)
    columns = RUN_SORTS.get(run_filter.sort, RUN_SORTS["started"])
    order = [c.desc() if run_filter.descending else c.asc() for c in columns]
    rows = db.session.scalars(
        select(Workflow)
        .where(*conditions)
        .options(*(defer(column) for column in queries.HEAVY_WORKFLOW_COLUMNS))
        .order_by(*order)
        .limit(RUNS_PER_PAGE)
        .offset((page - 1) * RUNS_PER_PAGE)
    ).all()
    return RunPage([summary(w, stale) for w in rows], total, page, pages)


_ENGINE_NAMES_SECONDS = 10.0
_ENGINE_NAMES_KEY = "panoptes.engine_names"


def engine_names() -> dict[str, str]:
    """Every engine runs were reported by, with the label people read: the engines with an
    adapter of their own first, then those of the generic API. Looked up at most every 10 s
    per process (it scans the runs)."""
    cached: tuple[float, dict[str, str]] | None = current_app.extensions.get(_ENGINE_NAMES_KEY)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    names = {name: engines.label(name) for name in sorted(engines.known_engines())}
    for engine in sorted(db.session.scalars(select(Workflow.engine).distinct())):
        names.setdefault(engine, engines.label(engine))
    current_app.extensions[_ENGINE_NAMES_KEY] = (time.monotonic() + _ENGINE_NAMES_SECONDS, names)
    return names


def summary(workflow: Workflow, stale: Staleness) -> serializers.WorkflowSummary:
    """The API's summary of a run (status as read, job counts), as a typed object."""
    return serializers.WorkflowSummary.of(workflow, stale)


def status_counts(run_filter: RunFilter, stale: Staleness) -> dict[str, int]:
    """Runs by status as read (Stale split from Running), under the search and engine filters."""
    counts: dict[str, int] = {status.value: 0 for status in WorkflowStatus}
    conditions = _run_conditions(run_filter, stale, with_status=False)
    for (_engine, status), count in queries.runs_by_status(stale, *conditions).items():
        counts[status] = counts.get(status, 0) + count
    return counts


def find_job(workflow: Workflow, job_id: str) -> Job | None:
    """One job of a run, by the engine's job key."""
    return db.session.scalars(
        select(Job).where(Job.workflow_pk == workflow.pk, Job.job_key == job_id)
    ).first()


# -- one run: progress per rule / process ----------------------------------------------------

_CATEGORY = {
    JobStatus.DONE: "done",
    JobStatus.CACHED: "done",
    JobStatus.ERROR: "failed",
    JobStatus.RUNNING: "running",
    JobStatus.PENDING: "pending",
    JobStatus.SUBMITTED: "pending",
    JobStatus.ABORTED: "aborted",
    JobStatus.IGNORED: "ignored",
}
# Nextflow's per-process counters (progress_detail["processes"]) in the same categories.
_NEXTFLOW_CATEGORY = {
    "succeeded": "done",
    "cached": "done",
    "failed": "failed",
    "running": "running",
    "pending": "pending",
    "submitted": "pending",
    "aborted": "aborted",
    "ignored": "ignored",
}


@dataclass
class RuleProgress:
    """Jobs of one rule (Snakemake) or process (Nextflow) by category."""

    name: str
    done: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    aborted: int = 0
    ignored: int = 0
    # Planned by the engine, never started, and the run has ended.
    not_run: int = 0

    @property
    def total(self) -> int:
        return (
            self.done
            + self.failed
            + self.running
            + self.pending
            + self.aborted
            + self.ignored
            + self.not_run
        )

    @property
    def counts(self) -> dict[str, int]:
        return {
            "done": self.done,
            "failed": self.failed,
            "ignored": self.ignored,
            "running": self.running,
            "pending": self.pending,
            "aborted": self.aborted,
            "not_run": self.not_run,
        }

    @property
    def state(self) -> str:
        """One word for the rule as a whole: failed, running, done, pending, not-run (the run
        ended before some of its jobs started) or idle (no job yet)."""
        if self.failed:
            return "failed"
        if self.running:
            return "running"
        if self.total and self.done + self.ignored == self.total:
            return "done"
        if self.not_run and not self.pending:
            return "not-run"
        return "pending" if self.total else "idle"


def rule_progress(workflow: Workflow) -> list[RuleProgress]:
    """Per rule/process counts, merged with Nextflow's own per-process counters (which also
    know processes whose tasks have not been sent yet). Kept per run version like the other
    aggregates: a reload of an unchanged run of a million jobs reads none of them."""
    cached = _aggregates().get(("rules", *_run_version(workflow)), lambda: _rule_progress(workflow))
    return [replace(rule) for rule in cached]  # the callers' own copies


def _rule_progress(workflow: Workflow) -> list[RuleProgress]:
    """Per rule/process counts, from the counts the projector keeps (``rule_counts``): a
    handful of rows, whatever the run's size."""
    rules: dict[str, RuleProgress] = {}
    for name, status, count in db.session.execute(
        select(RuleCount.name, RuleCount.status, RuleCount.jobs).where(
            RuleCount.workflow_pk == workflow.pk, RuleCount.jobs > 0
        )
    ):
        rule = rules.setdefault(name or UNNAMED, RuleProgress(name or UNNAMED))
        category = _CATEGORY[JobStatus(status)]
        setattr(rule, category, getattr(rule, category) + count)
    detail = workflow.progress_detail if isinstance(workflow.progress_detail, dict) else {}
    processes = detail.get("processes")
    if isinstance(processes, list):  # Nextflow's own counters
        for process in processes:
            if not isinstance(process, dict) or not isinstance(process.get("name"), str):
                continue
            reported = RuleProgress(process["name"])
            for key, category in _NEXTFLOW_CATEGORY.items():
                value = process.get(key)
                if isinstance(value, int) and value > 0:
                    setattr(reported, category, getattr(reported, category) + value)
            known = rules.setdefault(reported.name, RuleProgress(reported.name))
            if reported.total > known.total:
                rules[reported.name] = reported
    _add_planned(workflow, rules)
    rank = charts.rank_by(rule_order(workflow))
    return sorted(rules.values(), key=lambda r: rank(r.name))


def rule_order(workflow: Workflow) -> list[str]:
    """Rules/processes in the order the pipeline runs them: Snakemake's rule graph, or
    Nextflow's own list of processes. Others follow by name."""
    order = charts.dag_order(workflow.dag)
    if order:
        return order
    detail = workflow.progress_detail if isinstance(workflow.progress_detail, dict) else {}
    processes = detail.get("processes")
    if not isinstance(processes, list):
        return []
    listed = [
        (p.get("index") if isinstance(p.get("index"), int) else i, p["name"])
        for i, p in enumerate(processes)
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    ]
    return [name for _, name in sorted(listed)]


def planned_jobs(workflow: Workflow) -> dict[str, int]:
    """Jobs planned per rule, as the engine said before running them (Snakemake's run_info)."""
    planned = (workflow.extra or {}).get("planned_jobs")
    if not isinstance(planned, dict):
        return {}
    return {str(k): v for k, v in planned.items() if isinstance(v, int) and v > 0}


def _add_planned(workflow: Workflow, rules: dict[str, RuleProgress]) -> None:
    """Planned jobs that have no row: pending while the run goes on, not run once it ended."""
    ended = workflow.completed_at is not None
    for name, planned in planned_jobs(workflow).items():
        rule = rules.setdefault(name, RuleProgress(name))
        missing = planned - rule.total
        if missing <= 0:
            continue
        if ended:
            rule.not_run += missing
        else:
            rule.pending += missing


# -- one run: jobs ---------------------------------------------------------------------------


def _epoch(column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a stored (naive UTC) timestamp, on SQLite and PostgreSQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _duration_seconds() -> ColumnElement[float]:
    """A finished job's run time: the engine's realtime when sent, else end minus start."""
    return func.coalesce(
        cast(Job.realtime_ms, Float) / 1000.0,
        _epoch(Job.completed_at) - _epoch(Job.started_at),
    )


JOB_SORTS = ("id", "name", "status", "started", "duration")


def _job_sort_column(sort: str) -> Any:
    return {
        # Job ids are numbers written as text: shorter first, then as text, is numeric order.
        "id": func.length(Job.job_key),
        "name": Job.name,
        "status": Job.status,
        "started": Job.started_at,
        "duration": _duration_seconds(),
    }.get(sort)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    total: int
    page: int
    pages: int


_JOB_TABLE_COLUMNS = (
    Job.job_key,
    Job.name,
    Job.tag,
    Job.status,
    Job.attempt,
    Job.started_at,
    Job.completed_at,
    Job.exit_code,
    Job.realtime_ms,
    Job.pcpu,
    Job.peak_rss,
    Job.cpus,
    Job.extra,
)


def jobs_page(
    workflow: Workflow,
    status: str,
    name: str,
    sort: str,
    descending: bool,
    page: int,
) -> JobPage:
    """One page of a run's job table. The page's primary keys are found first (on SQLite the
    (workflow_pk, status|name) indexes cover that query, rowid included), then only those
    rows are loaded."""
    conditions: list[Any] = [Job.workflow_pk == workflow.pk]
    if status:
        conditions.append(Job.status == status)
    if name:
        conditions.append(Job.name == name)
    if len(conditions) == 1:
        total = job_rows(workflow)  # the counters the store keeps: no COUNT over the rows
    else:
        total = db.session.scalar(select(func.count(Job.pk)).where(*conditions)) or 0
    pages = max(1, math.ceil(total / JOBS_PER_PAGE))
    page = min(max(page, 1), pages)
    column = _job_sort_column(sort)
    order: list[Any] = []
    if column is not None:
        order.append(column.desc().nulls_last() if descending else column.asc().nulls_last())
    if sort == "id":
        order.append(Job.job_key.desc() if descending else Job.job_key.asc())
    order.append(Job.pk.desc() if descending else Job.pk.asc())
    keys = (
        select(Job.pk)
        .where(*conditions)
        .order_by(*order)
        .limit(JOBS_PER_PAGE)
        .offset((page - 1) * JOBS_PER_PAGE)
    )
    rows = db.session.scalars(
        select(Job)
        .where(Job.pk.in_(keys.scalar_subquery()))
        .options(load_only(*_JOB_TABLE_COLUMNS))
    ).all()
    position = {pk: i for i, pk in enumerate(db.session.scalars(keys))} if rows else {}
    rows = sorted(rows, key=lambda job: position.get(job.pk, 0))
    return JobPage(list(rows), total, page, pages)


def not_run(rules: Sequence[RuleProgress]) -> list[tuple[str, int]]:
    """(rule, jobs) planned that never started, for a run that has ended."""
    return [(rule.name, rule.not_run) for rule in rules if rule.not_run]


def failed_jobs(workflow: Workflow) -> list[Job]:
    """The latest failed jobs, with everything needed to see why."""
    return list(
        db.session.scalars(
            select(Job)
            .where(Job.workflow_pk == workflow.pk, Job.status == JobStatus.ERROR)
            .order_by(Job.completed_at.desc().nulls_last(), Job.pk.desc())
            .limit(FAILED_JOBS_SHOWN)
        )
    )


def job_rows(workflow: Workflow) -> int:
    """How many job rows a run has (from the counters the store keeps)."""
    return sum(getattr(workflow, f"n_{s.value.lower()}") or 0 for s in JobStatus)


# -- one run: timeline -----------------------------------------------------------------------


def _sample(rows: int, limit: int) -> tuple[Any, int]:
    """A condition keeping about ``limit`` of ``rows`` jobs (every k-th primary key; on SQLite
    it is checked on the index entry, before the row is read), and k."""
    step = max(1, math.ceil(rows / limit))
    return (Job.pk % step == 0 if step > 1 else true()), step


def timeline(
    workflow: Workflow, rules: Sequence[RuleProgress], now: datetime | None = None
) -> charts.Timeline | None:
    """The Gantt chart: one bar per job up to ``TIMELINE_JOB_LIMIT`` rows, else a density
    chart of jobs started per rule and time bin, grouped in SQL over a sample."""
    now = now or utcnow()
    if job_rows(workflow) <= TIMELINE_JOB_LIMIT:
        rows = db.session.execute(
            select(Job.name, Job.job_key, Job.status, Job.started_at, Job.completed_at, Job.tag)
            .where(Job.workflow_pk == workflow.pk, Job.started_at.is_not(None))
            .limit(TIMELINE_JOB_LIMIT)
        )
        jobs = [
            charts.TimelineJob(
                group=name or UNNAMED,
                key=key,
                status=status,
                start=started,
                # A job that ended without a recorded end (aborted, lost) is drawn as a point.
                end=completed or (None if status == JobStatus.RUNNING else started),
                label=f"{name} ({tag})" if tag else (name or ""),
            )
            for name, key, status, started, completed, tag in rows
            if started is not None
        ]
        return charts.timeline(jobs, now, order=[rule.name for rule in rules])
    # A live run's chart reaches "now", which moves: its entry expires within a few seconds.
    moment = int(now.timestamp() // LIVE_TIMELINE_SECONDS) if workflow.n_running else None
    return _aggregates().get(
        ("timeline", *_run_version(workflow), moment),
        lambda: _density_timeline(workflow, rules, now),
    )


def _density_timeline(
    workflow: Workflow, rules: Sequence[RuleProgress], now: datetime
) -> charts.Timeline | None:
    started = Job.started_at
    sample, step = _sample(job_rows(workflow), TIMELINE_SAMPLE)
    first, last_start, last_end = db.session.execute(
        select(func.min(started), func.max(started), func.max(Job.completed_at)).where(
            Job.workflow_pk == workflow.pk, started.is_not(None), sample
        )
    ).one()
    if first is None:
        return None
    last = max(d for d in (last_start, last_end) if d is not None)
    if workflow.n_running:
        last = max(last, now)
    span = max((last - first).total_seconds(), 1.0)
    bin_seconds = span / TIMELINE_BINS
    first_epoch = first.timestamp()
    offsets = (
        select(
            Job.name.label("name"),
            ((_epoch(started) - literal(first_epoch)) / literal(bin_seconds)).label("offset"),
        )
        .where(Job.workflow_pk == workflow.pk, started.is_not(None), sample)
        .subquery()
    )
    binned = select(offsets.c.name, cast(func.floor(offsets.c.offset), Integer).label("bin"))
    if db.session.get_bind().dialect.name == "sqlite":
        # SQLite may lack floor(); the offsets are never negative, so a cast truncates alike.
        binned = select(offsets.c.name, cast(offsets.c.offset, Integer).label("bin"))
    cells_query = binned.subquery()
    cells = [
        charts.TimelineCell(name or UNNAMED, min(int(b), TIMELINE_BINS - 1), count * step)
        for name, b, count in db.session.execute(
            select(cells_query.c.name, cells_query.c.bin, func.count()).group_by(
                cells_query.c.name, cells_query.c.bin
            )
        )
    ]
    totals = {rule.name: rule.total for rule in rules}
    return charts.density_timeline(cells, totals, first, bin_seconds, TIMELINE_BINS)


# -- one run: resources ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    title: str
    fmt: Callable[[float], str]
    nextflow_key: str  # its name in Nextflow's workflow.metrics
    nextflow_scale: float = 1.0


METRICS = (
    Metric("duration", "Run time", charts.fmt_duration, "time", 1 / 1000),
    Metric("cpu", "CPU (100% = one core)", charts.fmt_percent, "cpu"),
    Metric("memory", "Peak memory (RSS)", charts.fmt_bytes, "mem"),
    Metric("read", "Read (rchar)", charts.fmt_bytes, "reads"),
    Metric("write", "Written (wchar)", charts.fmt_bytes, "writes"),
)


@dataclass(frozen=True, slots=True)
class ResourcePlots:
    plots: list[charts.BoxPlot]
    source: str  # "jobs" or "nextflow"
    sample_step: int = 1  # quantiles from every k-th finished job


def resource_plots(workflow: Workflow) -> ResourcePlots:
    """Box plots per rule/process of each metric the engine reported: Nextflow's own
    quantiles when it sent them at completion, otherwise quantiles computed in SQL."""
    stats = _nextflow_metrics(workflow.metrics)
    source = "nextflow" if stats else "jobs"
    step = 1
    if not stats:
        stats, step = _aggregates().get(
            ("quantiles", *_run_version(workflow)), lambda: _job_quantiles(workflow)
        )
    rank = charts.rank_by(rule_order(workflow))
    plots = []
    for metric in METRICS:
        ordered = sorted(stats.get(metric.key, []), key=lambda box: rank(box.group))
        plot = charts.box_plot(metric.title, ordered, metric.fmt)
        if plot is not None:
            plots.append(plot)
    return ResourcePlots(plots, source, step)


def _nextflow_metrics(metrics: Any) -> dict[str, list[charts.BoxStats]]:
    stats: dict[str, list[charts.BoxStats]] = {}
    if not isinstance(metrics, list):
        return stats
    for entry in metrics:
        if not isinstance(entry, dict) or not isinstance(entry.get("process"), str):
            continue
        for metric in METRICS:
            values = entry.get(metric.nextflow_key)
            if not isinstance(values, dict):
                continue
            numbers = [values.get(k) for k in ("min", "q1", "q2", "q3", "max")]
            if not all(isinstance(v, int | float) for v in numbers):
                continue
            low, q1, q2, q3, high = (float(v) * metric.nextflow_scale for v in numbers)  # type: ignore[arg-type]
            mean = values.get("mean")
            stats.setdefault(metric.key, []).append(
                charts.BoxStats(
                    group=entry["process"],
                    n=0,
                    minimum=low,
                    q1=q1,
                    median=q2,
                    q3=q3,
                    maximum=high,
                    mean=float(mean) * metric.nextflow_scale
                    if isinstance(mean, int | float)
                    else None,
                )
            )
    return stats


def _job_quantiles(workflow: Workflow) -> tuple[dict[str, list[charts.BoxStats]], int]:
    """Min, quartiles (lower nearest rank), max and mean of every metric per rule, in one
    query: a window per metric ranks the finished jobs, and only the rows at the five ranks
    come back (at most 5 per metric and rule). Past ``RESOURCE_SAMPLE`` finished jobs, every
    k-th is ranked; k is returned with the statistics."""
    sample, step = _sample((workflow.n_done or 0) + (workflow.n_error or 0), RESOURCE_SAMPLE)
    values: dict[str, ColumnElement[Any]] = {
        "duration": _duration_seconds(),
        "cpu": cast(Job.pcpu, Float),
        "memory": cast(Job.peak_rss, Float),
        "read": cast(Job.read_bytes, Float),
        "write": cast(Job.write_bytes, Float),
    }
    base = (
        select(Job.name.label("name"), *(expr.label(f"v_{key}") for key, expr in values.items()))
        .where(
            Job.workflow_pk == workflow.pk,
            Job.status.in_([JobStatus.DONE, JobStatus.ERROR]),
            Job.completed_at.is_not(None),
            sample,
        )
        .subquery()
    )
    ranked_columns: list[Any] = [base.c.name]
    for key in values:
        value = base.c[f"v_{key}"]
        ranked_columns += [
            value,
            func.row_number()
            .over(
                partition_by=base.c.name,
                order_by=(case((value.is_(None), 1), else_=0), value),
            )
            .label(f"r_{key}"),
            func.count(value).over(partition_by=base.c.name).label(f"n_{key}"),
            func.avg(value).over(partition_by=base.c.name).label(f"a_{key}"),
        ]
    ranked = select(*ranked_columns).subquery()
    picks = []
    for key in values:
        rank, last = ranked.c[f"r_{key}"] - 1, ranked.c[f"n_{key}"] - 1
        quartiles = (0, last // 4, last // 2, (last * 3) // 4, last)
        picks.append(and_(ranked.c[f"n_{key}"] > 0, or_(*(rank == q for q in quartiles))))
    found: dict[tuple[str, str], dict[int, float]] = {}
    totals: dict[tuple[str, str], tuple[int, float]] = {}
    for row in db.session.execute(select(ranked).where(or_(*picks))).mappings():
        group = row["name"] or UNNAMED
        for key in values:
            n = row[f"n_{key}"]
            if not n or row[f"v_{key}"] is None:
                continue
            found.setdefault((key, group), {})[row[f"r_{key}"]] = float(row[f"v_{key}"])
            totals[(key, group)] = (int(n), float(row[f"a_{key}"]))
    stats: dict[str, list[charts.BoxStats]] = {}
    for (key, group), by_rank in sorted(found.items(), key=lambda item: item[0][1].lower()):
        n, mean = totals[(key, group)]
        ranks = [charts.quantile_position(n, q) for q in (0, 0.25, 0.5, 0.75, 1)]
        if not all(r in by_rank for r in ranks):
            continue
        low, q1, q2, q3, high = (by_rank[r] for r in ranks)
        stats.setdefault(key, []).append(charts.BoxStats(group, n, low, q1, q2, q3, high, mean))
    return stats, step


def rule_states(rules: Sequence[RuleProgress]) -> dict[str, tuple[str, str]]:
    """(state, "done/total") per rule, for the rule graph."""
    return {rule.name: (rule.state, f"{rule.done}/{rule.total}") for rule in rules}
