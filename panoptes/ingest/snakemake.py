"""The panoptes protocol, as every Snakemake generation speaks it.

Snakemake 7/8 stop the user's workflow on 401, 403, 404 and 500 from any of these routes, so
well-formed but odd input is always accepted, and malformed input gets a 400 (which they
only print).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from .. import apidoc, serializers, store
from ..apidoc import SNAKEMAKE, Answer, Body
from ..config import stale_after
from ..errors import ApiError
from ..extensions import db
from ..models import Workflow, utcnow
from ..normalize import reducer
from ..normalize import snakemake as normalize
from .body import json_or_form

bp = Blueprint("snakemake", __name__)

MAX_BATCH_EVENTS = 10_000
# Integer ids (what panoptes hands out) are echoed as JSON numbers by Snakemake's raw-JSON bodies.
MAX_INTEGER_ID = 2**63 - 1
FEATURES = ["batch"]


@cache  # reading the installed metadata cost more than the rest of the request
def hub_version() -> str:
    try:
        return version("panoptes-hub")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


class UpdateEnvelope(BaseModel):
    """The ``/update_workflow_status`` envelope; ``timestamp`` (client local time, no zone) is
    kept raw but not trusted."""

    model_config = ConfigDict(extra="ignore")

    msg: str | dict[str, Any] = Field(
        description="the event: a JSON object, or one encoded as text (forms)"
    )
    id: str | int = Field(
        union_mode="left_to_right",
        description="the run's id, as /create_workflow returned it",
        json_schema_extra={"pattern": f"^{store.WORKFLOW_ID_PATTERN}$"},
    )
    timestamp: str | float | None = Field(
        default=None, description="the client's local time (kept, not trusted)"
    )

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | int) -> str:
        if isinstance(value, int) and not 0 <= value <= MAX_INTEGER_ID:
            raise ValueError(f"an integer id must be between 0 and {MAX_INTEGER_ID}")
        text = str(value).strip()
        if not store.is_valid_workflow_id(text):
            raise ValueError("not a workflow id (1-64 characters of A-Z, a-z, 0-9, _ . -)")
        return text


class BatchIn(BaseModel):
    """Our plugin's batch (see docs/ARCHITECTURE.md, "Batch route")."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str = Field(pattern=f"^{store.WORKFLOW_ID_PATTERN}$")
    events: list[dict[str, Any]] = Field(max_length=MAX_BATCH_EVENTS)

    @field_validator("workflow_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not store.is_valid_workflow_id(value):
            raise ValueError("not a workflow id (1-64 characters of A-Z, a-z, 0-9, _ . -)")
        return value


class CreateQuery(BaseModel):
    """``/create_workflow``'s query string. Recorded as received (the naming rules read it
    when the log is projected), so this model only describes it."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str | None = Field(default=None, description="a stable name chosen by the user")
    name: str | None = Field(default=None, description="legacy form of workflow_id")


class ServiceInfo(TypedDict):
    status: str
    server: str
    version: str
    features: list[str]
    engines: list[str]


class BatchOut(TypedDict):
    workflow_id: str
    accepted: int
    duplicates: int


@bp.get("/api/service-info")
@apidoc.operation(SNAKEMAKE, responses={200: ServiceInfo})
def service_info() -> Response:
    """Liveness check of Snakemake 7/8 before a run, plus what our plugin looks for."""
    return jsonify(
        ServiceInfo(
            status="running",
            server="panoptes-hub",
            version=hub_version(),
            features=FEATURES,
            engines=["snakemake", "nextflow", "any (POST /api/events)"],
        )
    )


@bp.route("/create_workflow", methods=["GET", "POST"])
@apidoc.operation(SNAKEMAKE, query=CreateQuery, responses={200: serializers.WorkflowSummary})
def create_workflow() -> Response:
    """Register a Snakemake run (panoptes naming rules).

    Snakemake 7/8 put a form or raw JSON body on this GET; it carries the command line, work
    dir and Snakefile."""
    try:
        body = json_or_form(request)
    except ApiError:
        body = {}  # the body is informational only; a strange one must not stop the run
    received_at = utcnow()
    workflow_id, name = store.snakemake_create(request.args.to_dict(), body, received_at)
    # Snakemake reads the run back at once: answer with the run as projected.
    try:
        store.catch_up()
        workflow = db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()
    except SQLAlchemyError:  # the database is away: the run went to the journal
        db.session.rollback()
        workflow = None
    if workflow is None:  # not projected yet: the run as it will be
        workflow = Workflow(
            id=workflow_id,
            engine="snakemake",
            name=name,
            status="Running",
            created_at=received_at,
            started_at=received_at,
            updated_at=received_at,
            n_unseen=0,
            **dict.fromkeys(reducer.COUNTERS.values(), 0),
        )
    return jsonify(serializers.workflow_summary(workflow, stale_after(current_app.config)))


@bp.post("/update_workflow_status")
@apidoc.operation(
    SNAKEMAKE,
    body=Body(
        UpdateEnvelope,
        media=("application/x-www-form-urlencoded", "application/json"),
        decode=json_or_form,
    ),
    responses={
        200: Answer("ok", "text/plain", {"type": "string"}),
        400: "missing or malformed field",
        409: "the id belongs to a run of another engine",
    },
)
def update_workflow_status(body: UpdateEnvelope) -> Response:
    """One Snakemake event: form, JSON, or raw JSON without Content-Type."""
    if normalize.decode_msg(body.msg) is None:
        raise ApiError(
            400, "Field msg is not a JSON object (nor a Python literal of one).", "invalid"
        )
    try:
        store.snakemake_update(str(body.id), body.model_dump())
    except store.EngineMismatch as error:
        raise ApiError(409, str(error)) from None
    return Response("ok", mimetype="text/plain")


@bp.post("/api/snakemake/events")
@apidoc.operation(
    SNAKEMAKE,
    body=BatchIn,
    responses={
        200: BatchOut,
        400: "malformed batch",
        409: "the id belongs to a run of another engine",
    },
)
def snakemake_events(body: BatchIn) -> Response:
    """A batch of Snakemake events (our logger plugin), stored in one transaction.

    Re-sent `event_id` values are skipped."""
    try:
        result = store.snakemake_batch(body.workflow_id, body.events)
    except store.EngineMismatch as error:
        raise ApiError(409, str(error)) from None
    return jsonify(
        BatchOut(
            workflow_id=result.workflow_id, accepted=result.accepted, duplicates=result.duplicates
        )
    )
