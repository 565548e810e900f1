"""Snakemake: the panoptes protocol of every generation (7/8 ``--wms-monitor``, the logger
plugins of 9) and our plugin's batch route."""

from __future__ import annotations

from collections.abc import Sequence

from ..normalize import snakemake
from ..normalize.schema import JobPolicy
from .base import EngineAdapter, Route, Words, hours_setting


def _routes() -> Sequence[Route]:
    from ..ingest import snakemake as ingest

    return [Route(ingest.bp)]


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
)
