"""The one place where the plugin reaches into Snakemake beyond the logger interface."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

_MARK = "_panoptes_keeps_progress_records"


def quiet_about_progress(quiet: Collection[Any] | None) -> bool:
    """Whether the ``quiet`` setting includes ``progress`` (``-q``, ``--quiet progress``)."""
    return any(getattr(item, "name", str(item)).upper() == "PROGRESS" for item in quiet or ())


def keep_progress_records() -> bool:
    """Make Snakemake log finished jobs and progress even under ``--quiet progress``.

    Under that option Snakemake's JobScheduler does not filter JOB_FINISHED and PROGRESS
    records: it never logs them (its ``print_progress`` flag), so no logger plugin can see
    them, whatever its filter. Forcing the flag only creates the records; Snakemake's own
    terminal and log-file handlers still drop them through their quiet filter, so the user
    sees exactly what they asked for. Returns False when this Snakemake has no such flag
    (the plugin then infers the finished jobs at the end of a successful run).
    """
    try:
        from snakemake.scheduling import job_scheduler  # type: ignore[import-untyped]
    except ImportError:
        return False
    scheduler = getattr(job_scheduler, "JobScheduler", None)
    if scheduler is None:
        return False
    original: Callable[..., None] = scheduler.__init__
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if isinstance(getattr(self, "print_progress", None), bool):
            self.print_progress = not getattr(self, "dryrun", False)

    setattr(__init__, _MARK, True)
    scheduler.__init__ = __init__
    return True
