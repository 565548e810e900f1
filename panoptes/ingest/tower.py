"""The Nextflow Tower trace protocol, as ``nextflow run ... -with-tower URL`` speaks it.

Served under ``/`` and ``/api`` (users habitually configure ``http://host/api``). Nextflow aborts
the run on any non-2xx to create and begin, and (26.04+) to progress, so an id the hub does not
know is adopted, never refused. Any token is accepted (Bearer or Basic ``@token:<token>``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from .. import apidoc, store
from ..apidoc import NEXTFLOW, Body
from ..errors import ApiError
from .body import json_object_with_text

bp = Blueprint("tower", __name__)

# Stored as received and read leniently: no schema is imposed on Nextflow's bodies.
PAYLOAD = Body({"type": "object", "description": "Nextflow's payload (docs/TOWER.md)"})
BAD = "the body is not a JSON object, or the id is not a workflow id"
OTHER_ENGINE = "the id belongs to a run of another engine"


class Created(TypedDict):
    workflowId: str
    watchUrl: str


class Begun(TypedDict):
    status: str
    workflowId: str
    watchUrl: str


class Acknowledged(TypedDict):
    status: str
    workflowId: str


class Alive(TypedDict):
    message: str


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
@apidoc.operation(NEXTFLOW, body=PAYLOAD, responses={200: Created, 400: BAD})
def create() -> Response:
    """Nextflow: register a run; Nextflow needs `workflowId` back (and prints nothing else)."""
    body, text = json_object_with_text(request)
    workflow_id = store.tower_create(body, text)
    return jsonify(Created(workflowId=workflow_id, watchUrl=_watch_url(workflow_id)))


@bp.put("/trace/<workflow_id>/begin")
@apidoc.operation(NEXTFLOW, body=PAYLOAD, responses={200: Begun, 400: BAD, 409: OTHER_ENGINE})
def begin(workflow_id: str) -> Response:
    """Nextflow: run metadata, the DAG is built; Nextflow prints `watchUrl`."""
    workflow_id = _event("begin", workflow_id)
    return jsonify(Begun(status="OK", workflowId=workflow_id, watchUrl=_watch_url(workflow_id)))


@bp.put("/trace/<workflow_id>/progress")
@apidoc.operation(
    NEXTFLOW, body=PAYLOAD, responses={200: Acknowledged, 400: BAD, 409: OTHER_ENGINE}
)
def progress(workflow_id: str) -> Response:
    """Nextflow: up to 100 changed tasks plus the run's counters; unknown ids are adopted."""
    return jsonify(Acknowledged(status="OK", workflowId=_event("progress", workflow_id)))


@bp.put("/trace/<workflow_id>/heartbeat")
@apidoc.operation(NEXTFLOW, body=PAYLOAD, responses={200: Alive, 400: BAD, 409: OTHER_ENGINE})
def heartbeat(workflow_id: str) -> Response:
    """Nextflow: proof of life after 60 s without other traffic."""
    _event("heartbeat", workflow_id)
    return jsonify(Alive(message="OK"))


@bp.put("/trace/<workflow_id>/complete")
@apidoc.operation(
    NEXTFLOW, body=PAYLOAD, responses={200: Acknowledged, 400: BAD, 409: OTHER_ENGINE}
)
def complete(workflow_id: str) -> Response:
    """Nextflow: the end of the run: outcome, stats and per-process metrics."""
    return jsonify(Acknowledged(status="OK", workflowId=_event("complete", workflow_id)))


@bp.patch("/workflow/<workflow_id>")
@apidoc.operation(NEXTFLOW, responses={200: apidoc.Answer("ignored", schema={"type": "object"})})
def scheduler_patch(workflow_id: str) -> Response:
    """Nextflow 26.06+: the scheduler's run id (ignored).

    Sent as `{"schedRunId": ...}` for scheduler-managed runs; there is nothing to do."""
    return jsonify({})
