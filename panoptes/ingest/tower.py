"""The Nextflow Tower trace protocol, as ``nextflow run ... -with-tower URL`` speaks it.

Served under ``/`` and ``/api`` (users habitually configure ``http://host/api``). Nextflow aborts
the run on any non-2xx to create and begin, and (26.04+) to progress, so an id the hub does not
know is adopted, never refused. Any token is accepted (Bearer or Basic ``@token:<token>``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .. import store
from ..errors import ApiError
from .body import json_object_with_text

bp = Blueprint("tower", __name__)


def _watch_url(workflow_id: str) -> str:
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return f"{str(base).rstrip('/')}/workflow/{workflow_id}"


def _checked_id(workflow_id: str) -> str:
    if not store.is_valid_workflow_id(workflow_id):
        raise ApiError(
            400, "Not a workflow id: use 1-64 characters of A-Z, a-z, 0-9, _ . - (hub ids have 14)."
        )
    return workflow_id


def _event(kind: str, workflow_id: str) -> str:
    body, text = json_object_with_text(request)
    try:
        return store.tower_event(kind, _checked_id(workflow_id), body, text=text)
    except store.EngineMismatch as error:
        raise ApiError(409, str(error)) from None


@bp.post("/trace/create")
def create() -> Response:
    """A new run; Nextflow needs ``workflowId`` back (and prints nothing else)."""
    body, text = json_object_with_text(request)
    workflow_id = store.tower_create(body, text)
    return jsonify(workflowId=workflow_id, watchUrl=_watch_url(workflow_id))


@bp.put("/trace/<workflow_id>/begin")
def begin(workflow_id: str) -> Response:
    """The DAG is built; Nextflow prints ``watchUrl``."""
    workflow_id = _event("begin", workflow_id)
    return jsonify(status="OK", workflowId=workflow_id, watchUrl=_watch_url(workflow_id))


@bp.put("/trace/<workflow_id>/progress")
def progress(workflow_id: str) -> Response:
    """Up to 100 changed tasks plus the run's counters."""
    return jsonify(status="OK", workflowId=_event("progress", workflow_id))


@bp.put("/trace/<workflow_id>/heartbeat")
def heartbeat(workflow_id: str) -> Response:
    """Proof of life after 60 s without other traffic."""
    _event("heartbeat", workflow_id)
    return jsonify(message="OK")


@bp.put("/trace/<workflow_id>/complete")
def complete(workflow_id: str) -> Response:
    """The end of the run: outcome, stats and per-process metrics."""
    return jsonify(status="OK", workflowId=_event("complete", workflow_id))


@bp.patch("/workflow/<workflow_id>")
def scheduler_patch(workflow_id: str) -> Response:
    """Nextflow 26.06+ sends ``{"schedRunId": ...}`` for scheduler-managed runs; nothing to do."""
    return jsonify({})
