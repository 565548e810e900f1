"""What a notification says: a title short enough for a phone and a plain-text body (Apprise
turns it into each service's format). Pure: no database, no Flask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import engines
from ..charts import fmt_duration
from ..models import Job, Workflow

TITLE_MAX = 64
NAME_MAX = 48
MESSAGE_LOG_LINES = 15
MESSAGE_TEXT_MAX = 1500

_WORDS = {
    "Error": "Failed",
    "Done": "Done",
    "Stale": "Stale",
    "Cancelled": "Cancelled",
    "No Execution": "Nothing to do",
    "launch_failed": "Launch failed",
    "launch_lost": "Launch lost",
}
# Apprise's notification types.
_KINDS = {
    "Error": "failure",
    "Done": "success",
    "Stale": "warning",
    "Cancelled": "warning",
    "No Execution": "info",
    "launch_failed": "failure",
    "launch_lost": "failure",
}
_ENGINES = {"snakemake": "Snakemake", "nextflow": "Nextflow"}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    kind: str  # info, success, warning or failure


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title(event: str, run_name: str) -> str:
    """E.g. ``Failed: rnaseq-prod`` (at most 64 characters)."""
    return _clip(f"{_WORDS.get(event, event)}: {_clip(run_name, NAME_MAX)}", TITLE_MAX)


def kind(event: str) -> str:
    return _KINDS.get(event, "info")


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _tail(text: str, lines: int = MESSAGE_LOG_LINES) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return _clip("\n".join(kept), MESSAGE_TEXT_MAX)


def _log_tail(job: Job) -> str | None:
    """The end of the job's log, where the hub has one: ``extra['log_tail']`` (the generic
    event API, as text or lines) or the last of ``extra['log_tails']`` (our Snakemake plugin:
    one ``{"path", "text"}`` per log file)."""
    extra = job.extra or {}
    tail = extra.get("log_tail")
    tails = extra.get("log_tails")
    if tail is None and isinstance(tails, list) and tails and isinstance(tails[-1], dict):
        tail = tails[-1].get("text")
    if isinstance(tail, list):
        tail = "\n".join(str(line) for line in tail)
    return _tail(tail) if isinstance(tail, str) and tail.strip() else None


def _failed_job(job: Job, engine: str) -> list[str]:
    word = engines.for_run(engine).words.step
    label = job.tag or (job.extra or {}).get("task_name") or ""
    head = f"- {word} {job.name or '?'}"
    if label and label != job.name:
        head += f" ({label})"
    head += f", job {job.job_key}"
    if job.exit_code is not None:
        head += f", exit code {job.exit_code}"
    lines = [head]
    if job.error_message:
        lines += ["  " + line for line in _tail(job.error_message, 8).splitlines()]
    tail = _log_tail(job)
    if tail:
        lines.append("  log tail:")
        lines += ["    " + line for line in tail.splitlines()]
    return lines


def render(
    event: str,
    run: Workflow,
    counts: tuple[int, int, int],
    failed: Sequence[Job],
    link: str | None,
    stale_after: timedelta | None = None,
) -> Message:
    """The message for ``event`` of ``run``. ``counts``: jobs done, failed, total; ``failed``:
    the failed jobs to show (the latest few); ``link``: the run's page, if the hub knows its
    public address."""
    engine = _ENGINES.get(run.engine, run.engine)
    done, failed_count, total = counts
    end = run.completed_at or run.updated_at
    duration = (end - run.started_at).total_seconds() if run.started_at and end else None
    if event == "Stale":
        silence = (
            f" (the limit is {fmt_duration(stale_after.total_seconds())})" if stale_after else ""
        )
        headline = f"{run.name} ({engine}) has sent nothing since {_when(run.updated_at)}{silence}."
    else:
        headline = f"{run.name} ({engine}) ended: {event}."
    lines = [
        headline,
        "",
        f"Run: {run.name}" + (f" ({run.id})" if run.id != run.name else ""),
        f"Engine: {engine}{' ' + run.engine_version if run.engine_version else ''}",
        f"Status: {event}",
        f"Started: {_when(run.started_at)}",
        f"Duration: {fmt_duration(duration) or '—'}",
        f"Jobs: {done} done, {failed_count} failed, {total} total",
    ]
    if run.error_message:
        lines.append(f"Error: {_clip(run.error_message, 500)}")
    if failed:
        lines += ["", "Failed jobs:"]
        for job in failed:
            lines += _failed_job(job, run.engine)
        if failed_count > len(failed):
            lines.append(f"… and {failed_count - len(failed)} more")
    if link:
        lines += ["", link]
    return Message(title(event, run.name), "\n".join(lines), kind(event))
