"""Geometry of the dashboard's charts: pure functions, no Flask, no SQLAlchemy.

Charts are drawn as SVG by the templates (``templates/_charts.html``) from the numbers computed
here, so every piece of text goes through Jinja's autoescaping and no script is needed to read
them. Coordinates are plain floats in SVG user units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# -- formatting ------------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """``40ms``, ``2.5s``, ``12s``, ``3m 05s``, ``2h 03m``, ``3d 04h``; empty for None."""
    if seconds is None or math.isnan(seconds):
        return ""
    seconds = max(seconds, 0.0)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def fmt_bytes(value: float | None) -> str:
    """Binary units: ``512 B``, ``3.4 MiB``; an empty string for None."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover - the loop always returns


def fmt_percent(value: float | None) -> str:
    """CPU usage as the engines report it (100% is one core)."""
    return "" if value is None else f"{value:.0f}%"


def ordinal(number: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``20th``, ``21st``."""
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def status_class(status: str | None) -> str:
    """The CSS class of a status: ``No Execution`` -> ``s-no-execution``."""
    return "s-" + (status or "unknown").lower().replace(" ", "-")


# -- progress bars ---------------------------------------------------------------------------

PROGRESS_ORDER = ("done", "failed", "ignored", "running", "pending", "aborted", "not_run")


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a stacked bar, in percent of the bar's width."""

    kind: str
    x: float
    width: float
    count: int


def stacked_bar(counts: Mapping[str, int], total: int) -> list[Segment]:
    """Segments for ``counts`` (done, failed, running, pending) out of ``total``; counts larger
    than the total (an engine that under-reports) widen the total instead of overflowing."""
    known = sum(max(counts.get(kind, 0), 0) for kind in PROGRESS_ORDER)
    total = max(total, known)
    if total <= 0:
        return []
    segments = []
    x = 0.0
    for kind in PROGRESS_ORDER:
        count = max(counts.get(kind, 0), 0)
        if count:
            width = 100.0 * count / total
            segments.append(Segment(kind, round(x, 3), round(width, 3), count))
            x += width
    return segments


# -- axes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


_TIME_STEPS = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)


def time_step(span_seconds: float, max_ticks: int = 8) -> float:
    """A round step (10 ms ... 1 week) giving at most ``max_ticks`` ticks over the span."""
    for step in _TIME_STEPS:
        if span_seconds / step <= max_ticks:
            return float(step)
    return float(math.ceil(span_seconds / max_ticks / 604800) * 604800)


def nice_step(span: float, max_ticks: int = 6) -> float:
    """1, 2 or 5 times a power of ten, giving at most ``max_ticks`` ticks over the span."""
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * power:
            return float(multiple * power)
    return float(10 * power)  # pragma: no cover


# -- timeline (Gantt) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineJob:
    """A job as the timeline needs it (``end`` None: still running)."""

    group: str
    key: str
    status: str
    start: datetime
    end: datetime | None
    label: str = ""


@dataclass(frozen=True, slots=True)
class TimelineCell:
    """Jobs of one group started in one time bin (the timeline of a very large run)."""

    group: str
    bin: int
    count: int


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str
    key: str | None = None
    shade: int = 0  # 1-5 for density cells


@dataclass(frozen=True, slots=True)
class RowLabel:
    y: float
    height: float
    label: str
    count: int


@dataclass
class Timeline:
    width: float
    height: float
    plot_x: float
    plot_width: float
    axis_y: float
    rows: list[RowLabel] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    start: datetime | None = None
    density: bool = False


TIMELINE_LABEL_WIDTH = 170.0
TIMELINE_WIDTH = 1300.0
_LANE_HEIGHT = 11.0
_ROW_GAP = 8.0
_AXIS_HEIGHT = 22.0


def _time_ticks(span: float, plot_x: float, plot_width: float) -> list[Tick]:
    step = time_step(span)
    count = int(span / step + 1e-9)
    return [
        Tick(plot_x + plot_width * i * step / span, fmt_elapsed(i * step)) for i in range(count + 1)
    ]


def fmt_elapsed(seconds: float) -> str:
    """Axis labels of elapsed time: ``0``, ``250ms``, ``1.4s``, ``30s``, ``5m``, ``1h 30m``."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10 and abs(seconds - round(seconds)) > 1e-6:  # steps under a second
        return f"{seconds:.1f}s"
    seconds = round(seconds)
    if seconds == 0:
        return "0"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{minutes}m" + (f" {secs}s" if secs else "")
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h" + (f" {rest // 60}m" if rest // 60 else "")
    days, rest = divmod(seconds, 86400)
    return f"{days}d" + (f" {rest // 3600}h" if rest // 3600 else "")


def timeline(
    jobs: Sequence[TimelineJob],
    now: datetime,
    max_lanes: int = 6,
    width: float = TIMELINE_WIDTH,
    order: Sequence[str] = (),
) -> Timeline | None:
    """One row per rule/process (in ``order``, the others by first start), each job a bar
    from its start to its end (or ``now``), jobs packed into at most ``max_lanes`` lanes per
    row. None when no job has started."""
    if not jobs:
        return None
    start = min(job.start for job in jobs)
    end = max(max(job.end or now, job.start) for job in jobs)
    span = max((end - start).total_seconds(), 0.05)
    plot_x = TIMELINE_LABEL_WIDTH
    plot_width = width - plot_x - 10
    groups: dict[str, list[TimelineJob]] = {}
    for job in sorted(jobs, key=lambda j: (j.start, j.key)):
        groups.setdefault(job.group, []).append(job)
    chart = Timeline(
        width=width,
        height=0,
        plot_x=plot_x,
        plot_width=plot_width,
        axis_y=0,
        start=start,
    )
    y = 4.0
    position = {name: index for index, name in enumerate(order)}
    for group, members in sorted(
        groups.items(), key=lambda item: (position.get(item[0], len(position)), item[1][0].start)
    ):
        lane_ends: list[datetime] = []
        placed: list[tuple[int, TimelineJob]] = []
        for job in members:
            job_end = max(job.end or now, job.start)
            lane = next((i for i, e in enumerate(lane_ends) if e <= job.start), None)
            if lane is None and len(lane_ends) < max_lanes:
                lane = len(lane_ends)
                lane_ends.append(job_end)
            elif lane is None:  # full: overlap in the lane that frees first
                lane = min(range(len(lane_ends)), key=lane_ends.__getitem__)
            lane_ends[lane] = max(lane_ends[lane], job_end)
            placed.append((lane, job))
        height = len(lane_ends) * _LANE_HEIGHT
        chart.rows.append(RowLabel(y, height, group, len(members)))
        for lane, job in placed:
            job_end = max(job.end or now, job.start)
            x0 = plot_x + plot_width * (job.start - start).total_seconds() / span
            x1 = plot_x + plot_width * (job_end - start).total_seconds() / span
            duration = fmt_duration((job_end - job.start).total_seconds())
            title = f"{job.label or job.group} #{job.key}: {job.status}, {duration}"
            chart.bars.append(
                Bar(
                    x=round(x0, 2),
                    y=round(y + lane * _LANE_HEIGHT + 0.5, 2),
                    width=round(max(x1 - x0, 1.5), 2),
                    height=_LANE_HEIGHT - 1,
                    status=job.status,
                    title=title,
                    key=job.key,
                )
            )
        y += height + _ROW_GAP
    chart.axis_y = y
    chart.height = y + _AXIS_HEIGHT
    chart.ticks = _time_ticks(span, plot_x, plot_width)
    return chart


def density_timeline(
    cells: Iterable[TimelineCell],
    totals: Mapping[str, int],
    start: datetime,
    bin_seconds: float,
    bins: int,
    width: float = TIMELINE_WIDTH,
) -> Timeline | None:
    """The timeline of a run too large to draw job by job: per rule/process, how many jobs
    started in each time bin (darker is more)."""
    cells = [cell for cell in cells if 0 <= cell.bin < bins]
    if not cells:
        return None
    plot_x = TIMELINE_LABEL_WIDTH
    plot_width = width - plot_x - 10
    span = bin_seconds * bins
    peak = max(cell.count for cell in cells)
    first_bin: dict[str, int] = {}
    for cell in cells:
        first_bin[cell.group] = min(first_bin.get(cell.group, bins), cell.bin)
    order = sorted(first_bin, key=lambda g: (first_bin[g], g))
    row_height = 16.0
    chart = Timeline(
        width=width,
        height=0,
        plot_x=plot_x,
        plot_width=plot_width,
        axis_y=0,
        start=start,
        density=True,
    )
    rows = {group: 4.0 + i * (row_height + _ROW_GAP) for i, group in enumerate(order)}
    for group in order:
        chart.rows.append(RowLabel(rows[group], row_height, group, totals.get(group, 0)))
    cell_width = plot_width / bins

    def shade(count: int) -> int:
        return 1 + min(4, int(4 * count / peak))

    # Neighbouring bins of one shade become one rectangle: the page stays small.
    runs: list[list[TimelineCell]] = []
    for cell in sorted(cells, key=lambda c: (c.group, c.bin)):
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.group == cell.group
            and last.bin + 1 == cell.bin
            and shade(last.count) == shade(cell.count)
        ):
            runs[-1].append(cell)
        else:
            runs.append([cell])
    for run in runs:
        first, count = run[0], sum(cell.count for cell in run)
        since, until = first.bin * bin_seconds, (run[-1].bin + 1) * bin_seconds
        elapsed = f"{fmt_elapsed(since)} to {fmt_elapsed(until)}"
        chart.bars.append(
            Bar(
                x=round(plot_x + first.bin * cell_width, 2),
                y=rows[first.group],
                width=round(max(cell_width * len(run), 1.0), 2),
                height=row_height,
                status="density",
                title=f"{first.group}: {count:,} jobs started, {elapsed}",
                shade=shade(first.count),
            )
        )
    chart.axis_y = 4.0 + len(order) * (row_height + _ROW_GAP)
    chart.height = chart.axis_y + _AXIS_HEIGHT
    chart.ticks = _time_ticks(span, plot_x, plot_width)
    return chart


# -- box plots -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoxStats:
    """Five-number summary of one metric over the jobs of one rule/process."""

    group: str
    n: int
    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float
    mean: float | None = None


@dataclass(frozen=True, slots=True)
class BoxRow:
    label: str
    y: float
    x_min: float
    x_q1: float
    x_median: float
    x_q3: float
    x_max: float
    summary: str


@dataclass
class BoxPlot:
    title: str
    width: float
    height: float
    plot_x: float
    axis_y: float
    rows: list[BoxRow] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)


BOX_WIDTH = 480.0
_BOX_ROW = 22.0


def box_plot(
    title: str,
    stats: Sequence[BoxStats],
    fmt: Callable[[float], str],
    width: float = BOX_WIDTH,
) -> BoxPlot | None:
    """Horizontal box plots (whiskers at min and max), one row per rule/process, on a shared
    axis starting at zero. None without data."""
    if not stats:
        return None
    label_width = 130.0
    plot_width = width - label_width - 34  # room for the last tick's label
    top = max(s.maximum for s in stats)
    step = nice_step(top) if top > 0 else 1.0
    axis_max = step * max(math.ceil(top / step), 1)

    def x(value: float) -> float:
        return round(label_width + plot_width * max(value, 0.0) / axis_max, 2)

    chart = BoxPlot(title=title, width=width, height=0, plot_x=label_width, axis_y=0)
    for i, s in enumerate(stats):
        summary = (
            f"{s.group}: n={s.n}, min {fmt(s.minimum)}, median {fmt(s.median)}, "
            f"max {fmt(s.maximum)}" + (f", mean {fmt(s.mean)}" if s.mean is not None else "")
        )
        chart.rows.append(
            BoxRow(
                label=s.group,
                y=6 + i * _BOX_ROW,
                x_min=x(s.minimum),
                x_q1=x(s.q1),
                x_median=x(s.median),
                x_q3=x(s.q3),
                x_max=x(s.maximum),
                summary=summary,
            )
        )
    chart.axis_y = 6 + len(stats) * _BOX_ROW
    chart.height = chart.axis_y + 22
    value = 0.0
    while value <= axis_max + 1e-9:
        chart.ticks.append(Tick(x(value), fmt(value)))
        value += step
    return chart


def quantile_position(n: int, q: float) -> int:
    """1-based rank of the ``q`` quantile among ``n`` sorted values (lower nearest rank), the
    same rule as the SQL that picks the rows (``(n - 1) * k // 4``)."""
    return 1 + int((n - 1) * q)


# -- rule graph ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphNode:
    label: str
    x: float
    y: float
    width: float
    height: float
    state: str
    caption: str


@dataclass(frozen=True, slots=True)
class GraphEdge:
    path: str


@dataclass
class Graph:
    width: float
    height: float
    nodes: list[GraphNode]
    edges: list[GraphEdge]


_NODE_W = 150.0
_NODE_H = 38.0
_GAP_X = 46.0
_GAP_Y = 14.0
MAX_GRAPH_NODES = 400


def _graph_input(dag: Any) -> tuple[list[str], list[tuple[int, int]]] | None:
    """Rule names and (source, target) index pairs from Snakemake's rule graph, checked."""
    if not isinstance(dag, Mapping):
        return None
    raw_nodes = dag.get("nodes")
    raw_links = dag.get("links")
    if not isinstance(raw_nodes, list) or not raw_nodes or len(raw_nodes) > MAX_GRAPH_NODES:
        return None
    names = []
    for node in raw_nodes:
        rule = node.get("rule") if isinstance(node, Mapping) else None
        names.append(str(rule) if rule is not None else "?")
    links = []
    for link in raw_links if isinstance(raw_links, list) else []:
        if not isinstance(link, Mapping):
            continue
        source, target = link.get("source"), link.get("target")
        if (
            isinstance(source, int)
            and isinstance(target, int)
            and 0 <= source < len(names)
            and 0 <= target < len(names)
            and source != target
        ):
            links.append((source, target))
    return names, links


def _layers(count: int, links: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path layering (sources in layer 0); cycles are cut by bounding the passes."""
    layer = [0] * count
    for _ in range(count):
        changed = False
        for source, target in links:
            if layer[target] < layer[source] + 1 and layer[source] + 1 < count:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def dag_order(dag: Any) -> list[str]:
    """The rules of a rule graph in the order they run: by layer (sources first), then as
    the engine listed them. Empty when the DAG is missing or malformed."""
    parsed = _graph_input(dag)
    if parsed is None:
        return []
    names, links = parsed
    layer = _layers(len(names), links)
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (layer[i], i))]


def rank_by(order: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    """A sort key putting names in ``order`` first, in that order, then the others by name."""
    position = {name: index for index, name in enumerate(order)}
    return lambda name: (position.get(name, len(position)), name.lower())


def rule_graph(dag: Any, states: Mapping[str, tuple[str, str]]) -> Graph | None:
    """A left-to-right drawing of Snakemake's rule graph; ``states`` maps a rule to its
    (state, caption), e.g. ``("running", "3/8")``. None when the DAG is missing or malformed."""
    parsed = _graph_input(dag)
    if parsed is None:
        return None
    names, links = parsed
    layer = _layers(len(names), links)
    columns: dict[int, list[int]] = {}
    for index, level in enumerate(layer):
        columns.setdefault(level, []).append(index)
    parents: dict[int, list[int]] = {}
    for source, target in links:
        parents.setdefault(target, []).append(source)
    row: dict[int, float] = {}
    for level in sorted(columns):
        members = columns[level]

        def barycentre(index: int) -> float:
            placed = [row[p] for p in parents.get(index, []) if p in row]
            return sum(placed) / len(placed) if placed else float(index)

        members.sort(key=lambda i: (barycentre(i), i))
        for position, index in enumerate(members):
            row[index] = float(position)
    tallest = max(len(m) for m in columns.values())
    height = tallest * (_NODE_H + _GAP_Y) + _GAP_Y
    nodes = []
    centre: dict[int, tuple[float, float]] = {}
    for level, members in columns.items():
        offset = (height - len(members) * (_NODE_H + _GAP_Y) - _GAP_Y) / 2
        for index in members:
            x = 10 + level * (_NODE_W + _GAP_X)
            y = offset + _GAP_Y + row[index] * (_NODE_H + _GAP_Y)
            centre[index] = (x, y + _NODE_H / 2)
            state, caption = states.get(names[index], ("idle", ""))
            nodes.append(GraphNode(names[index], x, round(y, 2), _NODE_W, _NODE_H, state, caption))
    edges = []
    for source, target in links:
        (sx, sy), (tx, ty) = centre[source], centre[target]
        x1, x2 = sx + _NODE_W, tx
        middle = (x1 + x2) / 2
        edges.append(
            GraphEdge(
                f"M{x1:.1f} {sy:.1f} C{middle:.1f} {sy:.1f} {middle:.1f} {ty:.1f} "
                f"{x2 - 4:.1f} {ty:.1f}"
            )
        )
    width = 20 + (max(layer) + 1) * (_NODE_W + _GAP_X) - _GAP_X
    return Graph(width=width, height=height, nodes=nodes, edges=edges)
