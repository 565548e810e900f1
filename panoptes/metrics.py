"""Prometheus metrics that stay correct under several gunicorn workers.

Counters and histograms live in prometheus_client's multiprocess files when
``PROMETHEUS_MULTIPROC_DIR`` is set (the ``panoptes`` command and ``gunicorn_conf.py`` set it
before any worker starts) and are summed at scrape time. Runs by status are read from the
database at scrape time, so every worker and every instance reports the same numbers.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from .config import stale_after
from .extensions import db

EVENTS_INGESTED = Counter(
    "panoptes_events_ingested_total",
    "Raw events committed to the database",
    ["engine", "kind"],
)
REQUEST_LATENCY = Histogram(
    "panoptes_request_duration_seconds",
    "Time to answer a request, by route",
    ["method", "endpoint", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)


def count_ingested(events: Iterable[tuple[str, str]]) -> None:
    """Count committed raw events, given as (engine, kind) pairs."""
    for (engine, kind), count in collections.Counter(events).items():
        EVENTS_INGESTED.labels(engine=engine, kind=kind).inc(count)


class _RunsByStatus(Collector):
    """Runs by status as read (Stale included), from the database at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        from . import queries

        family = GaugeMetricFamily(
            "panoptes_runs", "Runs by engine and status", labels=["engine", "status"]
        )
        try:
            with self.app.app_context():
                counts = queries.runs_by_status(stale_after(self.app.config))
        except SQLAlchemyError:
            return  # the database is away; the other metrics still answer
        for (engine, status), count in counts.items():
            family.add_metric([engine, status], count)
        yield family


class _LogState(Collector):
    """The log's backlog (events stored, not yet projected) and the journal of this instance
    (events kept while the database could not store them), read at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        from .models import utcnow
        from .store import journal, projector

        kept = journal.for_app(self.app).state()
        depth = GaugeMetricFamily(
            "panoptes_journal_events", "Events kept in the journal, not yet in the database"
        )
        depth.add_metric([], kept.entries)
        yield depth
        age = GaugeMetricFamily(
            "panoptes_journal_age_seconds", "Age of the oldest event in the journal (0: empty)"
        )
        age.add_metric([], (utcnow() - kept.oldest).total_seconds() if kept.oldest else 0.0)
        yield age
        try:
            with self.app.app_context(), db.engine.connect() as connection:
                pending = projector.pending_events(connection)
        except SQLAlchemyError:
            return  # the database is away: the journal's gauges say what matters
        backlog = GaugeMetricFamily(
            "panoptes_projection_pending_events", "Events stored but not yet projected"
        )
        backlog.add_metric([], pending)
        yield backlog


class _ThisProcess(Collector):
    """The metrics of this process, when there is no multiprocess directory (tests, shells)."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


def scrape(app: Flask) -> Response:
    """The metrics of every worker of this instance plus the database gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(_LogState(app))
    registry.register(_RunsByStatus(app))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def instrument(app: Flask) -> None:
    """Time every request by route (the URL rule, so ids do not explode the label set)."""

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            REQUEST_LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
