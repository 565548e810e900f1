"""Snakemake: the panoptes protocol of every generation (7/8 ``--wms-monitor``, the logger
plugins of 9) and our plugin's batch route."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from ..normalize import snakemake
from ..normalize.schema import JobPolicy
from .base import EngineAdapter, Route, SettingsFormat, Suggestion, Words, hours_setting

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _routes() -> Sequence[Route]:
    from ..ingest import snakemake as ingest

    return [Route(ingest.bp)]


def _key(name: str) -> str:
    return name if _PLAIN_KEY.fullmatch(name) else json.dumps(name)  # JSON strings are YAML


def profile(suggestions: Sequence[Suggestion]) -> str:
    """A profile's ``set-threads`` and ``set-resources`` (Snakemake 8+): ``mem_mb`` in MB and
    ``runtime`` in minutes, the units Snakemake reads them in."""
    lines = []
    threads = [(s.name, s.cpus) for s in suggestions if s.cpus]
    if threads:
        lines.append("set-threads:")
        lines += [f"  {_key(name)}: {cpus}" for name, cpus in threads]
    resources = [s for s in suggestions if s.memory_bytes or s.time_ms]
    if resources:
        lines.append("set-resources:")
        for suggestion in resources:
            lines.append(f"  {_key(suggestion.name)}:")
            if suggestion.memory_bytes:
                lines.append(f"    mem_mb: {math.ceil(suggestion.memory_bytes / 1_000_000)}")
            if suggestion.time_ms:
                lines.append(f"    runtime: {math.ceil(suggestion.time_ms / 60_000)}")
    return "\n".join(lines) + "\n" if lines else ""


ADAPTER = EngineAdapter(
    name="snakemake",
    label="Snakemake",
    engines=frozenset({"snakemake"}),
    routes=_routes,
    parse=snakemake.parse_raw,
    job_policy=JobPolicy.RETRY_REUSES_ID,
    # Snakemake sends nothing while a long job runs: hours.
    stale_after=hours_setting("STALE_HOURS"),
    words=Words("rule", "rules", "job", "jobs", "Wildcards", "Command"),
    reports_job_usage=False,
    settings=SettingsFormat("a Snakemake profile (config.yaml)", profile),
)
