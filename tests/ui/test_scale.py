"""The dashboard at 10,000 runs and a run of 100,000 jobs: pages render quickly and never load
more than a page of job rows into Python (aggregates are computed by the database)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    DateTime,
    Integer,
    String,
    case,
    cast,
    event,
    func,
    insert,
    literal,
    select,
    update,
)

from panoptes import dashboard
from panoptes.extensions import db
from panoptes.models import Job, RuleCount, Workflow

RUNS = 10_000
JOBS = 100_000
BIG = f"run{RUNS - 1:05d}"


def sequence(count: int) -> Any:
    """0 .. count-1 as a recursive CTE (SQLite and PostgreSQL alike)."""
    seq = select(literal(0, Integer).label("x")).cte("seq", recursive=True)
    return seq.union_all(select(seq.c.x + 1).where(seq.c.x < count - 1))


def moment(seconds: Any) -> Any:
    """2026-01-01 plus ``seconds``, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        start = cast(literal("2026-01-01 00:00:00"), DateTime)
        return start + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    return func.datetime("2026-01-01", "+" + cast(seconds, String) + " seconds")


def fill() -> None:
    runs = sequence(RUNS)
    x = runs.c.x
    statuses = case((x % 4 == 0, "Done"), (x % 4 == 1, "Error"), else_="Cancelled")
    columns = {
        "id": literal("run") + func.substr(cast(x + 100_000, String), 2, 5),
        "engine": case((x % 2 == 0, "nextflow"), else_="snakemake"),
        "name": literal("pipeline-") + cast(x % 97, String) + "-" + cast(x, String),
        "status": statuses,
        "name_locked": literal(False),
        "created_at": moment(x * 60),
        "started_at": moment(x * 60),
        "updated_at": moment(x * 60 + 30),
        "completed_at": moment(x * 60 + 30),
        "progress_done": x % 10,
        "progress_total": literal(10),
        "user": literal("alice"),
        "host": literal("node1"),
        **{name: literal(0) for name in ("n_pending", "n_submitted", "n_running", "n_done")},
        **{name: literal(0) for name in ("n_error", "n_cached", "n_aborted")},
    }
    db.session.execute(
        insert(Workflow.__table__).from_select(
            list(columns), select(*columns.values()).select_from(runs)
        )
    )
    big = db.session.scalar(select(Workflow.pk).where(Workflow.id == BIG))
    jobs = sequence(JOBS)
    j = jobs.c.x
    job_columns = {
        "workflow_pk": literal(big),
        "job_key": cast(j, String),
        "name": literal("rule_") + cast(j % 12, String),
        "status": case((j % 50 == 0, "Error"), else_="Done"),
        "attempt": literal(1),
        "started_at": moment(j / 2),
        "completed_at": moment(j / 2 + 5 + j % 30),
        "updated_at": moment(j / 2 + 5 + j % 30),
        "realtime_ms": (5 + j % 30) * 1000,
        "pcpu": cast(50 + j % 100, Integer),
        "peak_rss": (1 + j % 200) * 1_000_000,
    }
    db.session.execute(
        insert(Job.__table__).from_select(
            list(job_columns), select(*job_columns.values()).select_from(jobs)
        )
    )
    # The per-(rule, status) counts the projector would have kept for these jobs.
    db.session.execute(
        insert(RuleCount.__table__).from_select(
            ["workflow_pk", "name", "status", "jobs"],
            select(Job.workflow_pk, Job.name, Job.status, func.count())
            .where(Job.workflow_pk == big)
            .group_by(Job.workflow_pk, Job.name, Job.status),
        )
    )
    db.session.execute(
        update(Workflow)
        .where(Workflow.pk == big)
        .values(n_done=JOBS - JOBS // 50, n_error=JOBS // 50, progress_total=JOBS, status="Error")
    )
    db.session.commit()


@pytest.fixture
def large(app) -> Iterator[list[int]]:
    """The test database filled; yields a counter of Job rows loaded as ORM objects."""
    with app.app_context():
        fill()
    loaded = [0]

    def count(*_: Any) -> None:
        loaded[0] += 1

    event.listen(Job, "load", count)
    yield loaded
    event.remove(Job, "load", count)


def timed_page(client, url: str) -> str:
    """A page of the big database (its speed is measured in bench/readside.py; here, what
    it loads)."""
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def listed(html: str) -> list[str]:
    return re.findall(r'href="/workflow/(run\d+)">', html)


def test_runs_list_at_ten_thousand_runs(client, large):
    first = timed_page(client, "/")
    assert "Page 1 of 200 · 10,000 runs" in first and listed(first)[0] == BIG
    assert len(listed(first)) == 50
    assert listed(timed_page(client, "/?page=200"))[-1] == "run00000"
    by_name = timed_page(client, "/?sort=name&dir=asc&page=100")
    assert len(listed(by_name)) == 50
    assert "2,500 runs" in timed_page(client, "/?status=Done")
    assert "5,000 runs" in timed_page(client, "/?engine=snakemake&sort=status")
    found = timed_page(client, "/?q=pipeline-5-")
    assert all(name.startswith("pipeline-5-") for name in re.findall(r">(pipeline-[\d-]+)<", found))
    # 2,501 Error: the big run too
    assert re.search(r"Done <b>2,500</b>", first) and re.search(r"Error <b>2,501</b>", first)


def test_run_page_with_a_hundred_thousand_jobs(client, large):
    html = timed_page(client, f"/workflow/{BIG}")
    assert "Page 1 of 2000 · 100,000 jobs" in html
    assert "98,000 of 100,000" not in html  # the summary shows plain counts
    # per-rule progress from GROUP BY: 12 rules of 8,333 or 8,334 jobs
    assert len(re.findall(r'href="/workflow/run09999\?rule=rule_\d+#jobs"', html)) == 12
    assert re.search(r">rule_0</a>.*?<td class=\"num\">8334</td>", html, re.S)
    assert "more than 1,000 jobs" in html and 'class="shade-' in html  # density timeline
    assert html.count('class="box-figure"') == 3  # run time, CPU, memory
    # quantiles estimated from an even sample
    assert f"every {100_000 // dashboard.RESOURCE_SAMPLE}th" in html
    assert html.count('class="failed-job"') == 10
    assert large[0] <= 60, large[0]  # a page of the table and the failed panel, nothing more


def test_run_page_aggregates_are_reused_until_the_run_changes(app, client, large):
    """The density timeline and the resource quantiles scan a sample of a large run's jobs,
    the per-rule counts read a few rows: a reload of an unchanged run reuses them; any change
    to the run (which moves updated_at) does not."""
    with app.app_context():
        engine = db.engine

    def load() -> tuple[str, list[str]]:
        statements: list[str] = []

        def seen(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            return timed_page(client, f"/workflow/{BIG}"), statements
        finally:
            event.remove(engine, "before_cursor_execute", seen)

    def charts(html: str) -> list[str]:
        return re.findall(r'class="(?:shade-\d+|box-figure)"', html)

    first, first_statements = load()
    again, again_statements = load()
    assert charts(again) == charts(first) and charts(first)
    assert len(again_statements) <= len(first_statements) - 3  # min/max, bins, quantiles
    assert not any("row_number" in s.lower() for s in again_statements)
    # and the per-rule counts: read from the counts the projector keeps, never by grouping
    # the run's jobs
    counts, grouped = "from rule_counts", "group by jobs.name"
    assert any(counts in s.lower() for s in first_statements)
    assert not any(counts in s.lower() for s in again_statements)

    with app.app_context():
        db.session.execute(
            update(Workflow).where(Workflow.id == BIG).values(updated_at=func.current_timestamp())
        )
        db.session.commit()
    _, changed_statements = load()
    assert len(changed_statements) >= len(again_statements) + 3
    assert any("row_number" in s.lower() for s in changed_statements)
    assert any(counts in s.lower() for s in changed_statements)
    assert not any(grouped in s.lower() for s in first_statements + changed_statements)


JOB_TABLE_PAGES = [
    ("page=2000", "99950", "100,000"),
    ("sort=started&dir=desc", "99999", "100,000"),
    ("status=Error&page=40", "97500", "2,000"),
    ("rule=rule_3&sort=name", "3", "8,334"),
    ("sort=duration&dir=desc&page=3", None, "100,000"),
]


def test_job_table_pages_of_a_hundred_thousand_jobs(client, large):
    for query, first_key, total in JOB_TABLE_PAGES:
        large[0] = 0
        html = timed_page(client, f"/workflow/{BIG}?{query}")
        keys = re.findall(r'<td class="mono"><a href="/workflow/run09999/job/(\d+)">', html)
        assert len(keys) == 50 and f"· {total} jobs" in html, query
        if first_key is not None:
            assert keys[0] == first_key, query
        assert large[0] <= 60, (query, large[0])


def test_a_page_of_the_job_table_is_read_in_order_from_an_index(app, client, large):
    """The default order (job id as a number) and its reverse come from an index: no sort of
    the run's 100,000 jobs for one page."""
    with app.app_context():
        engine = db.engine
    ordered: list[tuple[str, Any]] = []

    def seen(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY length(jobs.job_key)" in statement:
            ordered.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        timed_page(client, f"/workflow/{BIG}")
        timed_page(client, f"/workflow/{BIG}?sort=id&dir=desc&page=3")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(ordered) >= 2
    if engine.dialect.name != "sqlite":
        return  # the plan below is SQLite's; PostgreSQL's planner chooses by its statistics
    with engine.connect() as connection:
        for statement, parameters in ordered:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            steps = " / ".join(str(row[-1]) for row in plan)
            assert "ix_jobs_workflow_key_order" in steps and "TEMP B-TREE" not in steps, steps
