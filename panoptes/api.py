"""The read and management API, across both engines (panoptes' routes and shapes, extended)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Self

from flask import (
    Blueprint,
    Request,
    Response,
    current_app,
    jsonify,
    request,
    stream_with_context,
    url_for,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy import Select, func, select
from sqlalchemy.orm import defer
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from . import apidoc, queries, serializers, store
from .apidoc import MANAGE, READ, Body
from .config import DEFAULTS, Staleness, stale_after
from .errors import ApiError
from .extensions import db
from .ingest.body import json_object
from .ingest.events import ENGINE_PATTERN as ENGINE_NAME
from .models import Job, Workflow
from .normalize.schema import JobStatus, WorkflowStatus

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_OFFSET = 2**31 - 1
# Jobs read per query while streaming every job of a run: memory stays flat at any size.
STREAM_CHUNK = 1000


def _case_insensitive(values: Any, choices: list[str]) -> Any:
    """Status values in any case (``done``, ``no execution``) as the API spells them."""
    if not isinstance(values, list):
        return values
    canonical = {choice.lower(): choice for choice in choices}
    return [canonical.get(v.strip().lower(), v) if isinstance(v, str) else v for v in values]


class Page(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(
        default=100, ge=1, description="page size (cut to PANOPTES_API_MAX_LIMIT, default 100)"
    )
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="rows to skip")

    @model_validator(mode="after")
    def _within_setting(self, info: ValidationInfo) -> Self:
        settings = info.context.get("settings") if isinstance(info.context, dict) else None
        most = settings["API_MAX_LIMIT"] if settings else DEFAULTS["API_MAX_LIMIT"]
        if self.limit is not None and self.limit > most:
            # A page larger than allowed is cut to the largest, as panoptes does, not refused.
            self.limit = most
        return self


class WorkflowQuery(Page):
    engine: list[Annotated[str, Field(pattern=ENGINE_NAME)]] | None = Field(
        default=None, description="engines, comma-separated"
    )
    status: list[WorkflowStatus] | None = Field(
        default=None, description="statuses as read, comma-separated, any case"
    )
    q: str | None = Field(default=None, max_length=255, description="case-insensitive name search")

    @field_validator("status", mode="before")
    @classmethod
    def _status_any_case(cls, value: Any) -> Any:
        return _case_insensitive(value, [s.value for s in WorkflowStatus])


class JobQuery(Page):
    # No limit: every job (panoptes' answer), streamed.
    limit: int | None = Field(  # type: ignore[assignment]
        default=None, ge=1, description="page size (cut to PANOPTES_API_MAX_LIMIT); none: every job"
    )
    status: list[JobStatus] | None = Field(
        default=None, description="statuses, comma-separated, any case"
    )
    name: str | None = Field(default=None, max_length=255, description="rule or process name")

    @field_validator("status", mode="before")
    @classmethod
    def _status_any_case(cls, value: Any) -> Any:
        return _case_insensitive(value, [s.value for s in JobStatus])


class RenameIn(BaseModel):
    """Snakemake 8 sends ``{}`` or its ``--wms-monitor-arg`` pairs: other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    # Not blank: the view refuses one with its own message.
    name: str | None = Field(
        default=None,
        max_length=255,
        description="the new name",
        json_schema_extra={"pattern": "\\S"},
    )


class DeletedAll(TypedDict):
    msg: str
    deleted: int


def _stale() -> Staleness:
    return stale_after(current_app.config)


def _workflow_or_404(workflow_id: str) -> Workflow:
    workflow = store.find_run(workflow_id)
    if workflow is None:
        raise ApiError(404, f"No workflow with id {workflow_id!r}.")
    return workflow


def _count(query: Select[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


@bp.get("/workflows")
@apidoc.operation(
    READ,
    query=WorkflowQuery,
    responses={200: serializers.WorkflowList, 400: "bad query parameter"},
)
def list_workflows(query: WorkflowQuery) -> Response:
    """Runs of every engine, newest first, filtered and paginated."""
    statement = select(Workflow)
    if query.engine:
        statement = statement.where(Workflow.engine.in_(query.engine))
    if query.status:
        statement = statement.where(queries.status_filter(query.status, _stale()))
    if query.q:
        statement = statement.where(
            func.lower(Workflow.name).like(queries.like_pattern(query.q), escape="\\")
        )
    total = _count(statement)
    rows = db.session.scalars(
        statement.options(*(defer(column) for column in queries.HEAVY_WORKFLOW_COLUMNS))
        .order_by(Workflow.created_at.desc(), Workflow.pk.desc())
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    stale = _stale()
    return jsonify(count=total, workflows=[serializers.workflow_summary(w, stale) for w in rows])


@bp.delete("/workflows/all")
@apidoc.operation(MANAGE, responses={200: DeletedAll, 410: "nothing to delete"})
def delete_all_workflows() -> Response:
    """Delete every run (Running ones too, as panoptes does)."""
    deleted = store.delete_all()
    if deleted == 0:
        raise ApiError(410, "There are no workflows to delete.")
    return jsonify(DeletedAll(msg="Database clean up is complete", deleted=deleted))


@bp.get("/workflow/<workflow_id>")
@apidoc.operation(READ, responses={200: serializers.WorkflowEnvelope, 404: "unknown id"})
def get_workflow(workflow_id: str) -> Response:
    """One run with everything known about it."""
    workflow = _workflow_or_404(workflow_id)
    return jsonify(workflow=serializers.workflow_detail(workflow, _stale()))


def _optional_object(sent: Request) -> dict[str, Any]:
    return json_object(sent, required=False)


@bp.put("/workflow/<workflow_id>")
@apidoc.operation(
    MANAGE,
    body=Body(RenameIn, required=False, decode=_optional_object),
    responses={
        200: serializers.WorkflowEnvelope,
        400: "blank name or malformed body",
        404: "unknown id",
    },
)
def rename_workflow(workflow_id: str, body: RenameIn) -> Response:
    """Rename a run. ``{}`` (Snakemake 8 right after create) is accepted as a no-op."""
    workflow = _workflow_or_404(workflow_id)
    if body.name is not None:
        name = body.name.strip()
        if not name:
            raise ApiError(400, "The new name is blank.")
        workflow = store.rename(workflow_id, name) or workflow
    return jsonify(workflow=serializers.workflow_detail(workflow, _stale()))


@bp.post("/workflow/<workflow_id>/cancel")
@apidoc.operation(MANAGE, responses={200: serializers.WorkflowEnvelope, 404: "unknown id"})
def cancel_workflow(workflow_id: str) -> Response:
    """Mark a run Cancelled (the hub cannot stop the pipeline itself)."""
    workflow = store.cancel(workflow_id)
    if workflow is None:
        raise ApiError(404, f"No workflow with id {workflow_id!r}.")
    return jsonify(workflow=serializers.workflow_detail(workflow, _stale()))


@bp.delete("/workflow/<workflow_id>")
@apidoc.operation(
    MANAGE,
    responses={
        204: apidoc.Answer("deleted", media=None),
        403: "the run is Running",
        404: "unknown id",
    },
)
def delete_workflow(workflow_id: str) -> Response:
    """Delete a run that is not Running (cancel a dead run first, or let it go Stale)."""
    outcome = store.delete_workflow(workflow_id)
    if outcome is store.Deleted.MISSING:
        raise ApiError(404, f"No workflow with id {workflow_id!r}.")
    if outcome is store.Deleted.RUNNING:
        raise ApiError(403, "You cannot delete a Running workflow. Cancel it first.")
    return Response(status=204)


@bp.get("/workflow/<workflow_id>/jobs")
@apidoc.operation(
    READ,
    query=JobQuery,
    responses={200: serializers.JobList, 400: "bad query parameter", 404: "unknown id"},
)
def list_jobs(workflow_id: str, query: JobQuery) -> Response:
    """A run's jobs in arrival order, filtered by status and name (rule/process).

    Without ``limit``, every job, streamed in chunks (as panoptes answers, with flat memory);
    with it, one page, whose ``next`` (and ``Link: rel="next"``) names the following one.
    """
    workflow = _workflow_or_404(workflow_id)
    statement = select(Job).where(Job.workflow_pk == workflow.pk)
    if query.status:
        statement = statement.where(Job.status.in_([s.value for s in query.status]))
    if query.name:
        statement = statement.where(Job.name == query.name)
    total = _count(statement)
    if query.limit is None:
        return Response(
            stream_with_context(_stream_jobs(statement, total, query.offset, workflow.id)),
            mimetype="application/json",
        )
    rows = db.session.scalars(statement.order_by(Job.pk).limit(query.limit).offset(query.offset))
    following = query.offset + query.limit
    next_url = None
    if following < total:
        args: dict[str, Any] = {
            **request.args.to_dict(),
            "offset": following,
            "limit": query.limit,
        }
        next_url = url_for("api.list_jobs", workflow_id=workflow.id, _external=True, **args)
    answer = jsonify(
        count=total, next=next_url, jobs=[serializers.job(j, workflow.id) for j in rows]
    )
    if next_url is not None:
        answer.headers["Link"] = f'<{next_url}>; rel="next"'
    return answer


def _stream_jobs(query: Select[Any], total: int, offset: int, workflow_id: str) -> Iterator[str]:
    """``{"count", "next": null, "jobs": [...]}`` written a chunk of jobs at a time; chunks
    after the first start past the last primary key sent, so no query skips rows."""
    dumps = current_app.json.dumps
    yield f'{{"count":{total},"next":null,"jobs":['
    first = True
    last_pk: int | None = None
    while True:
        chunk = query.order_by(Job.pk).limit(STREAM_CHUNK)
        chunk = chunk.offset(offset) if last_pk is None else chunk.where(Job.pk > last_pk)
        rows = db.session.scalars(chunk).all()
        if not rows:
            break
        parts = [dumps(serializers.job(job, workflow_id)) for job in rows]
        yield ("" if first else ",") + ",".join(parts)
        first = False
        last_pk = rows[-1].pk
        db.session.expunge_all()  # rows already sent are not kept
        if len(rows) < STREAM_CHUNK:
            break
    yield "]}"


@bp.get("/workflow/<workflow_id>/job/<job_id>")
@apidoc.operation(READ, responses={200: serializers.JobEnvelope, 404: "unknown id"})
def get_job(workflow_id: str, job_id: str) -> Response:
    """One job. panoptes answers ``{"jobs": <job>}``; ``job`` is the same object."""
    workflow = _workflow_or_404(workflow_id)
    found = db.session.scalars(
        select(Job).where(Job.workflow_pk == workflow.pk, Job.job_key == job_id)
    ).first()
    if found is None:
        raise ApiError(404, f"Workflow {workflow_id!r} has no job {job_id!r}.")
    data = serializers.job(found, workflow.id)
    return jsonify(job=data, jobs=data)
