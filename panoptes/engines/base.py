"""What the hub needs to know about an engine, in one place: the adapter protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint

from ..normalize.schema import Event, JobPolicy

# (kind of raw event, its stored body, when it arrived) -> the events it means. Never raises.
Parser = Callable[[str, Any, datetime], list[Event]]


@dataclass(frozen=True, slots=True)
class Words:
    """What the dashboard calls an engine's parts."""

    step: str  # "rule", "process"
    steps: str
    job: str  # "job", "task"
    jobs: str
    tag: str  # what tells jobs of one step apart: "Wildcards", "Tag"
    command: str  # "Command", "Script"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """What one rule/process should ask for, in the hub's units (None: no advice)."""

    name: str
    cpus: int | None
    memory_bytes: float | None
    time_ms: float | None


@dataclass(frozen=True, slots=True)
class SettingsFormat:
    """Suggestions written the way the engine reads them: a Snakemake profile, a Nextflow
    configuration."""

    label: str  # "a Snakemake profile (config.yaml)"
    render: Callable[[Sequence[Suggestion]], str]


@dataclass(frozen=True, slots=True)
class Route:
    """A blueprint of an adapter and where it is served."""

    blueprint: Blueprint
    url_prefix: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class EngineAdapter:
    """One engine (or one protocol for many engines).

    ``name`` is recorded with each raw event the adapter's routes append, and selects its
    ``parse`` when the log is projected. ``engines`` are the run engine names it owns (empty:
    the adapter takes runs of any engine no other adapter owns, the generic API).
    """

    name: str
    label: str
    engines: frozenset[str]
    routes: Callable[[], Sequence[Route]]  # called by create_app: blueprints import the store
    parse: Parser
    job_policy: JobPolicy
    # The silence after which a Running run of this engine reads as Stale (None: never).
    stale_after: Callable[[Mapping[str, Any]], timedelta | None]
    words: Words
    # Whether the engine reports resource usage per job (the dashboard explains its absence).
    reports_job_usage: bool = True
    # Log files of a job in its work dir, the most telling first (Nextflow's .command.*).
    work_dir_logs: tuple[str, ...] = ()
    # How suggested requests are written for this engine (None: shown in the hub's units only).
    settings: SettingsFormat | None = None

    def owns(self, engine: str) -> bool:
        return engine in self.engines

    def takes_events_of(self, run_engine: str, event_engine: str) -> bool:
        """Whether this adapter's event (naming ``event_engine``) may change a run of
        ``run_engine``: one it owns, or (generic API) a run of the engine the event names."""
        return self.owns(run_engine) if self.engines else run_engine == event_engine

    def run_engine(self, body: Any) -> str:
        """The engine of the run a raw event of this adapter belongs to: the adapter's own, or
        (generic API) the name the client gave, which the route recorded in each event."""
        if len(self.engines) == 1:
            return next(iter(self.engines))
        named = body.get("engine") if isinstance(body, dict) else None
        return named if isinstance(named, str) and named else self.name


def hours_setting(name: str) -> Callable[[Mapping[str, Any]], timedelta | None]:
    """A staleness read from a setting in hours (0: never)."""

    def stale_after(config: Mapping[str, Any]) -> timedelta | None:
        hours = float(config[name])
        return timedelta(hours=hours) if hours > 0 else None

    return stale_after
