"""Chart geometry (pure) and the SQL aggregates it is drawn from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from panoptes import charts, dashboard
from panoptes.extensions import db
from panoptes.models import Job, Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.04, "40ms"), (2.5, "2.5s"), (42, "42s"), (185, "3m 05s"), (7380, "2h 03m")],
)
def test_fmt_duration(seconds, text):
    assert charts.fmt_duration(seconds) == text


def test_small_formatters():
    assert charts.fmt_bytes(512) == "512 B" and charts.fmt_bytes(3_584_000) == "3.4 MiB"
    assert charts.fmt_percent(181.9) == "182%" and charts.fmt_percent(None) == ""
    assert [charts.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 20, 21, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "20th", "21st", "102nd"
    ]  # fmt: skip
    assert charts.status_class("No Execution") == "s-no-execution"
    assert charts.fmt_elapsed(5400) == "1h 30m" and charts.fmt_elapsed(0) == "0"
    assert [charts.fmt_elapsed(0.2 * i) for i in range(4, 8)] == ["800ms", "1s", "1.2s", "1.4s"]


def test_stacked_bar_segments_follow_each_other_and_never_overflow():
    segments = charts.stacked_bar({"done": 5, "failed": 1, "running": 2}, 10)
    assert [(s.kind, s.x, s.width) for s in segments] == [
        ("done", 0.0, 50.0),
        ("failed", 50.0, 10.0),
        ("running", 60.0, 20.0),
    ]
    # an engine that under-reports its total: the bar widens instead of overflowing
    widened = charts.stacked_bar({"done": 6, "running": 2}, 4)
    assert sum(s.width for s in widened) == pytest.approx(100)
    assert charts.stacked_bar({}, 0) == []


def test_timeline_packs_overlapping_jobs_into_lanes_per_group():
    def job(group: str, key: str, status: str, start: float, end: float | None):
        finish = None if end is None else T0 + timedelta(seconds=end)
        return charts.TimelineJob(group, key, status, T0 + timedelta(seconds=start), finish)

    jobs = [
        job("align", "1", "Done", 0, 10),
        job("align", "2", "Done", 2, 8),
        job("align", "3", "Done", 11, 20),
        job("sort", "4", "Running", 20, None),
    ]
    chart = charts.timeline(jobs, now=T0 + timedelta(seconds=40))
    assert chart is not None
    assert [(r.label, r.count) for r in chart.rows] == [("align", 3), ("sort", 1)]
    bars = {b.key: b for b in chart.bars}
    assert bars["1"].y != bars["2"].y  # overlap: two lanes
    assert bars["1"].y == bars["3"].y  # 3 starts after 1 ended: back in the first lane
    # the running job reaches "now", the right end of the plot
    assert bars["4"].x + bars["4"].width == pytest.approx(chart.plot_x + chart.plot_width)
    assert bars["1"].x == pytest.approx(chart.plot_x)
    assert [t.label for t in chart.ticks][:3] == ["0", "5s", "10s"]
    assert charts.timeline([], now=T0) is None


def test_density_timeline_merges_equal_neighbours():
    cells = [charts.TimelineCell("a", b, 10) for b in range(5)] + [charts.TimelineCell("b", 3, 1)]
    chart = charts.density_timeline(cells, {"a": 50, "b": 1}, T0, 60.0, 10)
    assert chart is not None and chart.density
    assert len(chart.bars) == 2  # five equal cells of "a" became one rectangle
    assert "50 jobs started, 0 to 5m" in chart.bars[0].title


def test_box_plot_positions_on_a_shared_axis():
    stats = [
        charts.BoxStats("a", 5, 1.0, 2.0, 3.0, 4.0, 10.0, 4.0),
        charts.BoxStats("b", 1, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0),
    ]
    plot = charts.box_plot("CPU", stats, charts.fmt_percent)
    assert plot is not None
    a, b = plot.rows
    assert a.x_min < a.x_q1 < a.x_median < a.x_q3 < a.x_max
    assert b.x_min == b.x_max == a.x_min + (a.x_max - a.x_min) / 9 * 4
    assert plot.ticks[0].label == "0%" and plot.ticks[-1].label == "10%"
    assert charts.box_plot("x", [], str) is None


def test_rule_graph_layers_left_to_right_and_rejects_malformed_input():
    dag = {
        "nodes": [{"rule": "all"}, {"rule": "call"}, {"rule": "align"}, {"rule": "ref"}],
        "links": [
            {"source": 2, "target": 1},
            {"source": 3, "target": 1},
            {"source": 1, "target": 0},
            {"source": 9, "target": 0},  # out of range: ignored
            {"source": "x", "target": 0},
        ],
    }
    graph = charts.rule_graph(dag, {"align": ("done", "4/4"), "call": ("running", "1/4")})
    assert graph is not None and len(graph.edges) == 3
    x = {n.label: n.x for n in graph.nodes}
    assert x["align"] == x["ref"] < x["call"] < x["all"]
    states = {n.label: (n.state, n.caption) for n in graph.nodes}
    assert states["call"] == ("running", "1/4") and states["all"] == ("idle", "")
    cyclic = {"nodes": [{"rule": "a"}, {"rule": "b"}], "links": [
        {"source": 0, "target": 1}, {"source": 1, "target": 0}]}  # fmt: skip
    assert charts.rule_graph(cyclic, {}) is not None  # drawn, not looped forever
    for bad in (None, [], {"nodes": "x"}, {"nodes": []}, {"nodes": [1] * 500}):
        assert charts.rule_graph(bad, {}) is None


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[charts.quantile_position(len(ordered), q) - 1]


def test_sql_quantiles_match_the_nearest_rank_rule(app, client):
    workflow_id = client.post("/trace/create", json={"runName": "q"}).get_json()["workflowId"]
    cpu = [12.0, 99.5, 45.0, 45.0, 3.0, 77.0, 150.0]
    with app.app_context():
        run = db.session.query(Workflow).filter_by(id=workflow_id).one()
        for key, value in enumerate(cpu):
            db.session.add(
                Job(
                    workflow_pk=run.pk,
                    job_key=str(key),
                    name="work",
                    status="Done",
                    started_at=T0,
                    completed_at=T0 + timedelta(seconds=key + 1),
                    updated_at=T0,
                    pcpu=value,
                    peak_rss=None if key == 0 else 1000 * key,
                )
            )
        db.session.add(  # unfinished: not in the statistics
            Job(
                workflow_pk=run.pk,
                job_key="x",
                name="work",
                status="Running",
                started_at=T0,
                updated_at=T0,
                pcpu=1000.0,
            )
        )
        db.session.execute(
            update(Workflow).where(Workflow.pk == run.pk).values(n_done=len(cpu), n_running=1)
        )
        db.session.commit()
        stats, step = dashboard._job_quantiles(run)
    assert step == 1
    (box,) = stats["cpu"]
    assert (box.n, box.minimum, box.maximum) == (7, 3.0, 150.0)
    assert (box.q1, box.median, box.q3) == tuple(nearest_rank(cpu, q) for q in (0.25, 0.5, 0.75))
    assert box.mean == pytest.approx(sum(cpu) / len(cpu))
    (memory,) = stats["memory"]
    assert memory.n == 6 and memory.minimum == 1000  # missing values are left out
    (duration,) = stats["duration"]
    assert (duration.minimum, duration.maximum) == pytest.approx((1.0, 7.0), abs=1e-3)
