"""The dashboard: server-rendered pages that read without JavaScript, plus the forms that act on
a run (rename, mark cancelled, delete), protected by a per-session CSRF token.

Pages are rendered from SQL aggregates (``dashboard.py``); ``static/panoptes.js`` keeps them
current by re-fetching the page when the event stream (``live.py``) reports a change and swapping
the regions marked ``data-live``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from . import apidoc, charts, dashboard, efficiency, engines, live, serializers, store
from .apidoc import DASHBOARD, HTML, Answer, Body
from .config import Staleness, stale_after
from .extensions import db
from .models import Job, utcnow
from .normalize.schema import JobStatus, WorkflowStatus

bp = Blueprint("ui", __name__)

CSRF_FIELD = "csrf_token"
_CSRF_SESSION_KEY = "csrf"
NAME_MAX_LENGTH = 255

# What the run pages' forms send; described here, read by the views below.
FORM = Body(
    {
        "type": "object",
        "required": [CSRF_FIELD],
        "properties": {
            CSRF_FIELD: {"type": "string", "description": "the session's token"},
            "name": {"type": "string", "description": "rename only"},
        },
    },
    media=("application/x-www-form-urlencoded",),
)
MISSING = Answer("unknown run (HTML page)", "text/html", {"type": "string"})
FORM_ANSWERS = {
    303: Answer("done; see Location", None),
    400: Answer("missing or wrong CSRF token (HTML page)", "text/html", {"type": "string"}),
    404: MISSING,
}


# -- template helpers ------------------------------------------------------------------------


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get(_CSRF_SESSION_KEY)
    sent = request.form.get(CSRF_FIELD, "")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    return isinstance(expected, str) and bool(expected) and hmac.compare_digest(sent, expected)


def url_with(**changes: Any) -> str:
    """The current page's URL with some query arguments changed (None or "" drops one)."""
    args = {key: value for key, value in request.args.items() if value != ""}
    for key, value in changes.items():
        if value is None or value == "":
            args.pop(key, None)
        else:
            args[key] = value
    values: dict[str, Any] = {**(request.view_args or {}), **args}
    return url_for(request.endpoint or "ui.index", **values)


def elapsed(run: serializers.WorkflowSummary) -> float | None:
    """A run's duration; for a live run, the time since it started."""
    if run.duration_seconds is not None:
        return run.duration_seconds
    if run.status in (WorkflowStatus.RUNNING, WorkflowStatus.STALE) and run.started_at:
        return max((utcnow() - run.started_at).total_seconds(), 0.0)
    return None


def job_duration(job: Job) -> float | None:
    """A job's run time: the engine's realtime when sent, else end minus start."""
    if job.realtime_ms is not None:
        return job.realtime_ms / 1000
    if job.started_at and job.completed_at:
        return max((job.completed_at - job.started_at).total_seconds(), 0.0)
    if job.started_at and job.status == JobStatus.RUNNING:
        return max((utcnow() - job.started_at).total_seconds(), 0.0)
    return None


def job_label(job: Job) -> str:
    """What tells jobs of one rule apart: Snakemake wildcards or Nextflow's tag/task name
    (without the process name it repeats: ``stress (3)`` of ``stress`` is ``3``)."""
    if job.tag:
        return job.tag
    task_name = (job.extra or {}).get("task_name")
    if not isinstance(task_name, str) or task_name == job.name:
        return ""
    if job.name and task_name.startswith(f"{job.name} (") and task_name.endswith(")"):
        return task_name[len(job.name) + 2 : -1]
    return task_name


def log_paths(
    job: Job, engine: str, everything: bool = True, run_dir: str | None = None
) -> list[str]:
    """The job's log files: those the engine reported (Snakemake's ``log:``, relative to the
    run's directory, which ``run_dir`` makes absolute), then those its adapter knows in the
    work dir (Nextflow's: stderr and the full log first, where a failure shows)."""
    base_dir = PurePosixPath(run_dir) if run_dir and run_dir.startswith("/") else None
    paths = [
        str(base_dir / p) if base_dir is not None and not str(p).startswith("/") else str(p)
        for p in job.log or []
    ]
    names = engines.for_run(engine).work_dir_logs
    if names and job.work_dir:
        base = job.work_dir.rstrip("/")
        paths += [f"{base}/{name}" for name in (names if everything else names[:2])]
    return paths


def log_tails(job: Job) -> list[dict[str, Any]]:
    """The last lines of a failed job's log files, as the engine's client sent them."""
    tails = (job.extra or {}).get("log_tails")
    if not isinstance(tails, list):
        return []
    return [t for t in tails if isinstance(t, dict) and isinstance(t.get("text"), str)]


def earlier_attempts(job: Job) -> list[dict[str, Any]]:
    """What the earlier attempts of a retried job ended with."""
    attempts = (job.extra or {}).get("attempts")
    return [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else []


# Memory requests as a Snakemake user writes them, in the unit they wrote.
_MEMORY_RESOURCES = (("mem_mb", "MB"), ("mem_mib", "MiB"), ("mem_gb", "GB"), ("mem_gib", "GiB"))


def memory_requested(job: Job) -> str:
    """The memory a job asked for, as written (``mem_mb=200``: ``200 MB``), else in bytes."""
    resources = job.resources if isinstance(job.resources, dict) else {}
    for name, unit in _MEMORY_RESOURCES:
        value = resources.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value:g} {unit}"
    if isinstance(resources.get("mem"), str):
        return str(resources["mem"])
    return charts.fmt_bytes(job.memory_bytes)


def extra_shown(job: Job) -> dict[str, Any] | None:
    """The engine's extras the page does not show on its own."""
    shown = {k: v for k, v in (job.extra or {}).items() if k not in ("log_tails", "attempts")}
    return shown or None


def pretty(value: Any) -> str:
    """JSON for people (text: as it is). The result is autoescaped like any other text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def iso(moment: datetime | None) -> str:
    """ISO 8601 UTC with ``Z`` (what ``<time datetime>`` and the API use)."""
    return "" if moment is None else moment.isoformat().replace("+00:00", "Z")


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "csrf_field": CSRF_FIELD,
        "url_with": url_with,
        "elapsed": elapsed,
        "job_duration": job_duration,
        "job_label": job_label,
        "log_paths": log_paths,
        "log_tails": log_tails,
        "earlier_attempts": earlier_attempts,
        "memory_requested": memory_requested,
        "extra_shown": extra_shown,
        "stacked_bar": charts.stacked_bar,
        "engine_names": dashboard.engine_names(),
        "engine_label": engines.label,
        "engine_words": lambda engine: engines.for_run(engine).words,
        "engine_reports_usage": lambda engine: engines.for_run(engine).reports_job_usage,
    }


@bp.app_template_filter("status_class")
def _status_class(status: str | None) -> str:
    return charts.status_class(status)


bp.add_app_template_filter(charts.fmt_duration, "duration")
bp.add_app_template_filter(charts.fmt_bytes, "bytes")
bp.add_app_template_filter(charts.fmt_percent, "percent")
bp.add_app_template_filter(charts.ordinal, "ordinal")
bp.add_app_template_filter(pretty, "pretty")
bp.add_app_template_filter(iso, "iso")


# -- query arguments -------------------------------------------------------------------------


def _choice(value: str | None, allowed: Iterable[str], default: str = "") -> str:
    """``value`` if it is one of ``allowed``; a page never fails on a bad argument."""
    return value if value is not None and value in set(allowed) else default


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10**7))
    except ValueError:
        return 1


def _descending(args: Mapping[str, str], default: bool) -> bool:
    direction = args.get("dir")
    return default if direction not in ("asc", "desc") else direction == "desc"


def _run_filter(args: Mapping[str, str]) -> dashboard.RunFilter:
    sort = _choice(args.get("sort"), dashboard.RUN_SORTS, "started")
    return dashboard.RunFilter(
        q=(args.get("q") or "").strip()[:NAME_MAX_LENGTH],
        engine=_choice(args.get("engine"), list(dashboard.engine_names())),
        status=_choice(args.get("status"), [s.value for s in WorkflowStatus]),
        sort=sort,
        descending=_descending(args, dashboard.RUN_SORT_DESCENDING[sort]),
        page=_page_number(args.get("page")),
    )


def _stale() -> Staleness:
    return stale_after(current_app.config)


def _not_found(message: str) -> tuple[str, int]:
    return render_template("error.html", title="Not found", message=message), 404


# -- pages -----------------------------------------------------------------------------------


@bp.get("/")
@apidoc.operation(DASHBOARD, responses={200: HTML})
def index() -> str:
    """Dashboard: all runs of every engine.

    Counts by status, search, filters, sorting, pagination."""
    stale = _stale()
    version = live.version(db.session.connection(), None, stale)  # before the data: see live
    run_filter = _run_filter(request.args)
    return render_template(
        "index.html",
        filter=run_filter,
        page=dashboard.list_runs(run_filter, stale),
        counts=dashboard.status_counts(run_filter, stale),
        sort_defaults=dashboard.RUN_SORT_DESCENDING,
        stream_url=url_for("live.stream", since=version),
    )


@bp.get("/workflow/<workflow_id>")
@apidoc.operation(DASHBOARD, responses={200: HTML, 404: MISSING})
def workflow(workflow_id: str) -> str | tuple[str, int]:
    """Dashboard: one run (Tower's watchUrl points here)."""
    stale = _stale()
    version = live.version(db.session.connection(), workflow_id, stale)
    run = store.find_run(workflow_id)
    if run is None:
        return _not_found(f"There is no run with id {workflow_id}.")
    args = request.args
    rules = dashboard.rule_progress(run)
    sort = _choice(args.get("sort"), dashboard.JOB_SORTS, "id")
    jobs = dashboard.jobs_page(
        run,
        status=_choice(args.get("status"), [s.value for s in JobStatus]),
        name=(args.get("rule") or "")[:NAME_MAX_LENGTH],
        sort=sort,
        descending=_descending(args, False),
        page=_page_number(args.get("page")),
    )
    summary = dashboard.summary(run, stale)
    fit, fit_history = efficiency.for_run(run), efficiency.across_runs(run)
    return render_template(
        "workflow.html",
        run=run,
        summary=summary,
        rules=rules,
        jobs=jobs,
        job_filter={
            "status": args.get("status", ""),
            "rule": args.get("rule", ""),
            "sort": sort,
            "dir": args.get("dir", ""),
        },
        job_statuses=[s.value for s in JobStatus],
        failed=dashboard.failed_jobs(run) if run.n_error else [],
        not_run=dashboard.not_run(rules),
        fit=fit,
        fit_history=fit_history,
        # Written for the engine from the widest evidence: the pipeline's runs, else this one.
        fit_settings=efficiency.settings(run.engine, fit_history if fit_history.runs > 1 else fit),
        cpu_hours=efficiency.cpu_hours(run),
        cpu_sample=efficiency.SAMPLE,
        eta=efficiency.eta(run, rules, utcnow()),
        graph=charts.rule_graph(run.dag, dashboard.rule_states(rules)) if run.dag else None,
        timeline=dashboard.timeline(run, rules),
        timeline_limit=dashboard.TIMELINE_JOB_LIMIT,
        resources=dashboard.resource_plots(run),
        stream_url=url_for("live.stream", workflow_id=workflow_id, since=version or ""),
    )


@bp.get("/workflow/<workflow_id>/job/<job_id>")
@apidoc.operation(DASHBOARD, responses={200: HTML, 404: MISSING})
def job(workflow_id: str, job_id: str) -> str | tuple[str, int]:
    """Dashboard: everything known about one job."""
    stale = _stale()
    version = live.version(db.session.connection(), workflow_id, stale)
    run = store.find_run(workflow_id)
    if run is None:
        return _not_found(f"There is no run with id {workflow_id}.")
    found = dashboard.find_job(run, job_id)
    if found is None:
        return _not_found(f"Run {run.name} has no job {job_id}.")
    return render_template(
        "job.html",
        run=run,
        summary=dashboard.summary(run, stale),
        job=found,
        stream_url=url_for("live.stream", workflow_id=workflow_id, since=version or ""),
    )


# -- actions ---------------------------------------------------------------------------------


def _refused() -> tuple[str, int]:
    message = "This form has expired or did not come from this hub. Reload the page and retry."
    return render_template("error.html", title="Form refused", message=message), 400


@bp.post("/workflow/<workflow_id>/rename")
@apidoc.operation(DASHBOARD, body=FORM, responses=FORM_ANSWERS)
def rename(workflow_id: str) -> ResponseReturnValue:
    """Dashboard form: rename a run."""
    if not _csrf_ok():
        return _refused()
    name = (request.form.get("name") or "").strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        flash(f"A name needs 1 to {NAME_MAX_LENGTH} characters.", "error")
    elif store.rename(workflow_id, name) is None:
        return _not_found(f"There is no run with id {workflow_id}.")
    else:
        flash("Renamed.", "ok")
    return redirect(url_for("ui.workflow", workflow_id=workflow_id), 303)


@bp.post("/workflow/<workflow_id>/cancel")
@apidoc.operation(DASHBOARD, body=FORM, responses=FORM_ANSWERS)
def cancel(workflow_id: str) -> ResponseReturnValue:
    """Dashboard form: mark a run Cancelled (the hub cannot stop the pipeline itself)."""
    if not _csrf_ok():
        return _refused()
    if store.cancel(workflow_id) is None:
        return _not_found(f"There is no run with id {workflow_id}.")
    flash("Marked as cancelled.", "ok")
    return redirect(url_for("ui.workflow", workflow_id=workflow_id), 303)


@bp.get("/workflow/<workflow_id>/delete")
@apidoc.operation(DASHBOARD, responses={200: HTML, 404: MISSING})
def confirm_delete(workflow_id: str) -> str | tuple[str, int]:
    """Dashboard: confirm deleting a run (works without JavaScript)."""
    run = store.find_run(workflow_id)
    if run is None:
        return _not_found(f"There is no run with id {workflow_id}.")
    return render_template("delete.html", run=run, summary=dashboard.summary(run, _stale()))


@bp.post("/workflow/<workflow_id>/delete")
@apidoc.operation(DASHBOARD, body=FORM, responses=FORM_ANSWERS)
def delete(workflow_id: str) -> ResponseReturnValue:
    """Dashboard form: delete a run that is not Running, with its jobs and raw events."""
    if not _csrf_ok():
        return _refused()
    run = store.find_run(workflow_id)
    name = run.name if run is not None else workflow_id
    outcome = store.delete_workflow(workflow_id)
    if outcome is store.Deleted.MISSING:
        return _not_found(f"There is no run with id {workflow_id}.")
    if outcome is store.Deleted.RUNNING:
        flash("A Running run cannot be deleted: mark it cancelled first.", "error")
        return redirect(url_for("ui.confirm_delete", workflow_id=workflow_id), 303)
    flash(f"Deleted {name}.", "ok")
    return redirect(url_for("ui.index"), 303)


@bp.errorhandler(HTTPException)
def _html_error(error: HTTPException) -> tuple[str, int]:
    """Errors raised inside dashboard views answer a page, not the API's JSON body."""
    status = error.code or 500
    return render_template("error.html", title=error.name, message=error.description), status
