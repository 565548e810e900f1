"""The launcher's dashboard pages: the launch form, the launches list, and a launch's page with
its live log. Like every launch route they need the launch right (a signed-in session with a
token that has it); forms carry the dashboard's per-session CSRF token."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import ValidationError

from ..errors import ApiError
from ..ui import _csrf_ok, _not_found, _refused
from . import store as launches
from .api import LAUNCHING_OFF, LaunchIn, relaunch_request, submit
from .queues import configured, default_queue

bp = Blueprint("launch_ui", __name__)
PAGE_SIZE = 50


def _who() -> str:
    credential = g.get("credential")
    return credential.name if credential is not None else "dashboard"


def _no_launch() -> tuple[str, int]:
    return _not_found("There is no such launch.")


@bp.get("/launches")
def index() -> str:
    """The latest launches."""
    status = request.args.get("status") or None
    rows, total = launches.listing(
        status=[status] if status in launches.STATUSES else [], limit=PAGE_SIZE
    )
    return render_template(
        "launcher/index.html",
        launches=rows,
        total=total,
        status=status,
        statuses=launches.STATUSES,
        launching=bool(configured(current_app.config)),
        launching_off=LAUNCHING_OFF,
    )


def _form_values() -> dict[str, Any]:
    return {key: request.form.get(key, "") for key in request.form}


@bp.route("/launches/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    """The launch form (parameters as JSON, or as fields built from nextflow_schema.json)."""
    queues = configured(current_app.config)
    default = default_queue(queues)
    values: dict[str, Any] = {"engine": "snakemake", "queue": default.name if default else ""}
    error = None
    if request.method == "POST":
        if not _csrf_ok():
            return _refused()
        values = _form_values()
        try:
            data = _parse_form(values)
            launch = submit(data, _who())
        except ValidationError as problem:
            error = ApiError.from_validation(problem).message
        except ApiError as problem:
            error = problem.message
        except ValueError as problem:
            error = str(problem)
        else:
            flash("Launch queued.", "ok")
            return redirect(url_for("launch_ui.show", launch_id=launch.id), 303)
    return render_template(
        "launcher/new.html",
        queues=list(queues.values()),
        values=values,
        error=error,
        launching_off=None if queues else LAUNCHING_OFF,
    ), (400 if error else 200)


def _parse_form(values: dict[str, Any]) -> LaunchIn:
    def text(key: str) -> str | None:
        value = str(values.get(key) or "").strip()
        return value or None

    params_text = text("params")
    params = None
    if params_text:
        try:
            params = json.loads(params_text)
        except ValueError:
            raise ValueError("Parameters must be a JSON object.") from None
    args = [line.strip() for line in str(values.get("args") or "").splitlines() if line.strip()]
    return LaunchIn.model_validate(
        {
            "engine": text("engine") or "",
            "pipeline": text("pipeline") or "",
            "revision": text("revision"),
            "profile": text("profile"),
            "params": params,
            "config": text("config"),
            "work_dir": text("work_dir"),
            "run_name": text("run_name"),
            "queue": text("queue"),
            "args": args,
            "pre_run_script": text("pre_run_script"),
            "post_run_script": text("post_run_script"),
        }
    )


@bp.get("/launches/<launch_id>")
def show(launch_id: str) -> ResponseReturnValue:
    """A launch: its state, its live log, its run once it reports."""
    launch = launches.get(launch_id)
    if launch is None:
        return _no_launch()
    run_exists = launches.run_exists(launch.workflow_id)
    text, offset = launches.read_log(launch)
    return render_template(
        "launcher/show.html",
        launch=launch,
        run_exists=run_exists,
        log_text=text,
        log_offset=offset,
        finished=launch.status in launches.FINISHED,
        active=launch.status in (launches.QUEUED, *launches.ACTIVE),
    )


@bp.post("/launches/<launch_id>/cancel")
def cancel(launch_id: str) -> ResponseReturnValue:
    """Cancel from the launch's page."""
    if not _csrf_ok():
        return _refused()
    if launches.request_cancel(launch_id) is None:
        return _no_launch()
    flash("Cancel requested.", "ok")
    return redirect(url_for("launch_ui.show", launch_id=launch_id), 303)


@bp.post("/launches/<launch_id>/relaunch")
def relaunch(launch_id: str) -> ResponseReturnValue:
    """Launch the same again (optionally resuming) from the launch's page."""
    if not _csrf_ok():
        return _refused()
    original = launches.get(launch_id)
    if original is None:
        return _no_launch()
    resume = bool(request.form.get("resume"))
    data = relaunch_request(original, resume)
    try:
        launch = submit(data, _who(), relaunch_of=original.id, resume=resume)
    except ApiError as problem:
        flash(problem.message, "error")
        return redirect(url_for("launch_ui.show", launch_id=launch_id), 303)
    flash("Launched again.", "ok")
    return redirect(url_for("launch_ui.show", launch_id=launch.id), 303)
