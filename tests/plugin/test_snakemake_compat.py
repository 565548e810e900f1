"""The switch that keeps Snakemake logging finished jobs under ``--quiet progress``."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip(
    "snakemake_logger_plugin_panoptes",
    reason="the logger plugin is not installed: pip install -e ./snakemake_logger_plugin",
)
pytest.importorskip("snakemake", reason="Snakemake is not installed")
from snakemake.scheduling import job_scheduler
from snakemake.settings.enums import Quietness
from snakemake_logger_plugin_panoptes.snakemake_compat import (
    keep_progress_records,
    quiet_about_progress,
)


class FakeScheduler:
    """Stands in for JobScheduler: decides print_progress the way Snakemake 9.27 does."""

    def __init__(self, quiet: set[Any], dryrun: bool) -> None:
        self.dryrun = dryrun
        self.print_progress = Quietness.PROGRESS not in quiet and not dryrun


def test_quiet_about_progress() -> None:
    assert quiet_about_progress({Quietness.RULES, Quietness.PROGRESS})
    assert not quiet_about_progress({Quietness.ALL})
    assert not quiet_about_progress(None)


def test_the_scheduler_keeps_logging_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    original = FakeScheduler.__init__
    monkeypatch.setattr(FakeScheduler, "__init__", original)  # undone after the test
    monkeypatch.setattr(job_scheduler, "JobScheduler", FakeScheduler)
    assert keep_progress_records()
    assert keep_progress_records()  # idempotent: wrapped once
    assert FakeScheduler.__init__.__wrapped__ is original  # type: ignore[attr-defined]
    assert FakeScheduler({Quietness.PROGRESS}, dryrun=False).print_progress is True
    assert FakeScheduler({Quietness.PROGRESS}, dryrun=True).print_progress is False


def test_the_real_scheduler_has_the_flag() -> None:
    """If Snakemake renames the flag, this fails before users lose their progress events."""
    import inspect

    assert "self.print_progress" in inspect.getsource(job_scheduler.JobScheduler.__init__)
