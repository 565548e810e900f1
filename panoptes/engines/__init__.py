"""The engine adapters and their registry: everything engine-specific is looked up here.

Adding an engine is one adapter module (see ``base.EngineAdapter``) and one line in
``ADAPTERS`` below. ``create_app`` registers each adapter's routes; the projector parses raw
events with the adapter that recorded them; config, the API filters and the templates ask
``for_run`` what a run's engine is called and how its jobs behave.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from . import generic, nextflow, snakemake
from .base import EngineAdapter, Route, SettingsFormat, Suggestion, Words

__all__ = [
    "ADAPTERS",
    "EngineAdapter",
    "Route",
    "SettingsFormat",
    "Suggestion",
    "Words",
    "by_name",
    "for_run",
    "label",
]

ADAPTERS: Mapping[str, EngineAdapter] = {
    adapter.name: adapter for adapter in (snakemake.ADAPTER, nextflow.ADAPTER, generic.ADAPTER)
}
_FALLBACK = generic.ADAPTER


def by_name(name: str) -> EngineAdapter | None:
    """The adapter that recorded raw events under this name."""
    return ADAPTERS.get(name)


def for_run(engine: str) -> EngineAdapter:
    """The adapter of a run's engine: the one that owns the name, else the generic one."""
    for adapter in ADAPTERS.values():
        if adapter.owns(engine):
            return adapter
    return _FALLBACK


def label(engine: str) -> str:
    """A run engine's name as people read it ("Snakemake"; other engines as they call
    themselves)."""
    adapter = for_run(engine)
    return adapter.label if adapter.engines else engine


def known_engines() -> frozenset[str]:
    """The run engine names some adapter owns by name."""
    return frozenset(name for adapter in ADAPTERS.values() for name in adapter.engines)


def stale_thresholds(config: Mapping[str, Any]) -> tuple[dict[str, timedelta | None], Any]:
    """The Stale threshold of each owned engine name, and that of any other engine."""
    by_engine = {
        name: adapter.stale_after(config)
        for adapter in ADAPTERS.values()
        for name in adapter.engines
    }
    return by_engine, _FALLBACK.stale_after(config)
