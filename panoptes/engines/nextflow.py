"""Nextflow: the Tower trace protocol of ``-with-tower``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..normalize import tower
from ..normalize.schema import JobPolicy
from .base import EngineAdapter, Route, SettingsFormat, Suggestion, Words, hours_setting


def _routes() -> Sequence[Route]:
    from ..ingest import tower as ingest

    # Users habitually configure http://host/api as the Tower endpoint.
    return [
        Route(ingest.bp),
        Route(ingest.bp, url_prefix="/api", name="tower_api"),
        Route(ingest.bp, url_prefix="/seqera", name="tower_seqera"),  # the Seqera API's prefix
    ]


def _stale_after(config: Mapping[str, Any]) -> timedelta | None:
    """Nextflow sends a heartbeat every minute when idle: minutes (0: the general setting)."""
    minutes = float(config["NEXTFLOW_STALE_MINUTES"])
    if minutes > 0:
        return timedelta(minutes=minutes)
    return hours_setting("STALE_HOURS")(config)


def _groovy_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def configuration(suggestions: Sequence[Suggestion]) -> str:
    """A ``process { withName: ... }`` block per process: ``memory`` in MB (Nextflow's are
    binary units) and ``time`` in minutes."""
    blocks = []
    for suggestion in suggestions:
        settings = []
        if suggestion.cpus:
            settings.append(f"cpus = {suggestion.cpus}")
        if suggestion.memory_bytes:
            settings.append(f"memory = '{math.ceil(suggestion.memory_bytes / 2**20)} MB'")
        if suggestion.time_ms:
            settings.append(f"time = '{math.ceil(suggestion.time_ms / 60_000)}m'")
        if settings:
            body = "".join(f"        {line}\n" for line in settings)
            blocks.append(f"    withName: {_groovy_string(suggestion.name)} {{\n{body}    }}\n")
    return "process {\n" + "".join(blocks) + "}\n" if blocks else ""


ADAPTER = EngineAdapter(
    name="nextflow",
    label="Nextflow",
    engines=frozenset({"nextflow"}),
    routes=_routes,
    parse=tower.parse,
    job_policy=JobPolicy.RETRY_NEW_ID,
    stale_after=_stale_after,
    words=Words("process", "processes", "task", "tasks", "Tag", "Script"),
    work_dir_logs=(".command.err", ".command.log", ".command.out", ".command.sh"),
    settings=SettingsFormat("a Nextflow configuration (nextflow.config or -c)", configuration),
)
