"""The Seqera Platform API, self-hosted: the subset of routes Seqera's clients use (tower-cli,
``requests`` scripts with TOWER_ACCESS_TOKEN and TOWER_API_ENDPOINT), under ``/seqera``.

Reads come from the runs and jobs tables and from the launcher's launches; a launch goes to
the launcher's queue named by ``computeEnvId`` (a compute environment is a queue). Two
blueprints: ``seqera`` (reading, deleting) and ``seqera_launch`` (launching and cancelling,
which need the launch right, as every launcher route does). ``?workspaceId=`` is accepted and
ignored everywhere: the hub has one workspace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml  # type: ignore[import-untyped]
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import case, delete, exists, func, or_, select

from .. import auth, queries, store
from ..config import stale_after
from ..errors import ApiError
from ..extensions import db
from ..ingest.snakemake import hub_version
from ..launcher import api as launcher_api
from ..launcher import store as launches
from ..launcher.models import ACTIVE, FINISHED, QUEUED, Launch, LaunchLogChunk
from ..launcher.queues import Queue, configured, default_queue
from ..models import ApiToken, Job, Workflow, utcnow
from . import shapes

bp = Blueprint("seqera", __name__, url_prefix="/seqera")
launch_bp = Blueprint("seqera_launch", __name__, url_prefix="/seqera")

API_VERSION = "1.32.0"
MAX_PAGE = 1000
# Most jobs whose metrics one metrics request reads (the newest finished ones).
MAX_METRIC_JOBS = 20_000
# Launches that have not reported yet, listed before the runs (newest first).
MAX_UNREPORTED = 1000
_NO_NUL = r"^[^\x00]*$"
# Task sort keys (``sortBy``) and the job columns they order by.
TASK_SORT = {
    "taskId": Job.job_key,
    "id": Job.job_key,
    "status": Job.status,
    "process": Job.name,
    "name": Job.name,
    "tag": Job.tag,
    "submit": Job.submitted_at,
    "start": Job.started_at,
    "complete": Job.completed_at,
    "realtime": Job.realtime_ms,
    "pcpu": Job.pcpu,
    "peakRss": Job.peak_rss,
    "rchar": Job.read_bytes,
    "wchar": Job.write_bytes,
    "cpus": Job.cpus,
    "memory": Job.memory_bytes,
    "exit": Job.exit_code,
    "attempt": Job.attempt,
}


# -- requests ------------------------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore")

    workspaceId: str | None = Field(default=None, max_length=64, pattern=_NO_NUL)


class ListQuery(_Query):
    max: int = Field(default=50, ge=0, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    search: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)


class TaskQuery(ListQuery):
    sortBy: str | None = Field(default=None, max_length=64)
    sortDir: str | None = Field(default=None, max_length=8)

    @field_validator("sortBy")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is not None and value not in TASK_SORT:
            raise ValueError(f"must be one of {', '.join(TASK_SORT)}")
        return value

    @field_validator("sortDir")
    @classmethod
    def _direction(cls, value: str | None) -> str | None:
        if value is not None and value not in ("asc", "desc"):
            raise ValueError("must be asc or desc")
        return value


class LogQuery(_Query):
    next: int = Field(default=0, ge=0, le=2**62)
    maxLength: int = Field(default=10_000, ge=1, le=100_000)


def _option_value(value: str | None) -> str | None:
    # Each becomes the value of an engine option: one starting with "-" would read as another.
    if value is not None and value.startswith("-"):
        raise ValueError("must not start with '-'")
    return value


class WorkflowLaunchRequest(BaseModel):
    """Seqera's ``WorkflowLaunchRequest``: what the hub can honour; fields it does not know
    are ignored (labels, secrets, optimisation ...)."""

    model_config = ConfigDict(extra="ignore")

    computeEnvId: str | None = Field(default=None, max_length=64, pattern=_NO_NUL)
    pipeline: str | None = Field(default=None, max_length=4096, pattern=_NO_NUL)
    mainScript: str | None = Field(default=None, max_length=4096, pattern=_NO_NUL)
    entryName: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    revision: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    runName: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    workDir: str | None = Field(default=None, max_length=4096, pattern=_NO_NUL)
    configProfiles: list[str] | None = Field(default=None, max_length=50)
    configText: str | None = Field(default=None, max_length=1_000_000, pattern=_NO_NUL)
    paramsText: str | None = Field(default=None, max_length=1_000_000)
    preRunScript: str | None = Field(default=None, max_length=100_000)
    postRunScript: str | None = Field(default=None, max_length=100_000)
    resume: bool | None = None
    pullLatest: bool | None = None
    stubRun: bool | None = None

    @field_validator("pipeline", "mainScript", "entryName", "revision", "runName")
    @classmethod
    def _not_an_option(cls, value: str | None) -> str | None:
        return _option_value(value)

    @field_validator("configProfiles")
    @classmethod
    def _profiles(cls, value: list[str] | None) -> list[str] | None:
        for profile in value or []:
            if not profile or "," in profile or profile.startswith("-") or "\x00" in profile:
                raise ValueError("each profile is a non-empty name without ',' or a leading '-'")
        return value


class SubmitWorkflowLaunchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    launch: WorkflowLaunchRequest


def _parsed(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError.from_validation(error) from None


def _args(model: type[BaseModel]) -> Any:
    return _parsed(model, request.args.to_dict())


def _workspace_id(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 19 else None


# -- loading -------------------------------------------------------------------------------


def _run_status(run: Workflow) -> str:
    """The run's status as read (a silent Running run is Stale)."""
    if run.status != "Running":
        return run.status
    after = stale_after(current_app.config).after(run.engine)
    if after is not None and run.updated_at < utcnow() - after:
        return "Stale"
    return run.status


def _run(workflow_id: str) -> Workflow | None:
    return store.find_run(workflow_id)


def _found(workflow_id: str) -> tuple[Workflow | None, Launch | None]:
    """The run and the launch behind an id; 404 when neither exists. When the head job has
    ended, everything the engine sent before it exited is projected first, so its outcome
    and the run's own end are told together."""
    run = _run(workflow_id)
    launch = launches.by_workflow_id(workflow_id)
    if run is None and launch is None:
        raise ApiError(404, f"Workflow {workflow_id!r} not found.")
    unsettled = run is None or (run.completed_at is None and run.status in ("Running", "Error"))
    if launch is not None and launch.status in FINISHED and unsettled:
        store.catch_up(timeout=5.0)
        db.session.expire_all()
        run = _run(workflow_id)
    return run, launch


def _log_tail(launch: Launch | None, lines: int = 20) -> str | None:
    if launch is None:
        return None
    text, _end = launches.read_log(launch, max(0, launch.log_size - 20_000))
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(tail) or None


def _workflow(run: Workflow | None, launch: Launch | None) -> dict[str, Any]:
    fallback = None
    if launch is not None and launch.status in FINISHED and (run is None or not run.error_message):
        fallback = _log_tail(launch)
    return shapes.workflow(
        run, _run_status(run) if run is not None else None, launch, error_fallback=fallback
    )


def _groups(run: Workflow) -> list[dict[str, Any]]:
    """Per (process, status) sums of a run's job rows (one GROUP BY on an index)."""
    rows = db.session.execute(
        select(
            Job.name,
            Job.status,
            func.count().label("n"),
            func.sum(Job.cpus).label("cpus"),
            func.sum(Job.memory_bytes).label("memory"),
            func.sum(Job.peak_rss).label("rss"),
            func.sum(Job.realtime_ms * func.coalesce(Job.cpus, 1)).label("cpu_time"),
            func.sum(Job.realtime_ms * Job.pcpu / 100.0).label("cpu_load"),
            func.sum(Job.read_bytes).label("reads"),
            func.sum(Job.write_bytes).label("writes"),
        )
        .where(Job.workflow_pk == run.pk)
        .group_by(Job.name, Job.status)
    ).all()
    return [dict(row._mapping) for row in rows]


def _progress(run: Workflow | None) -> dict[str, Any]:
    return shapes.progress(run, _groups(run) if run is not None else [])


def _envelope(extra: Mapping[str, Any]) -> dict[str, Any]:
    query = _args(_Query)
    return {
        **extra,
        "orgId": None,
        "orgName": None,
        "workspaceId": _workspace_id(query.workspaceId),
        "workspaceName": None,
        "labels": [],
        "optimized": False,
    }


# -- service and user ------------------------------------------------------------------------


@bp.get("/service-info")
def service_info() -> Response:
    """``ServiceInfoResponse``."""
    _args(_Query)
    return jsonify(
        serviceInfo={
            "version": hub_version(),
            "apiVersion": API_VERSION,
            "commitId": None,
            "authTypes": ["token"],
            "loginPath": "/signin",
            "heartbeatInterval": 60,
            "userWorkspaceEnabled": False,
            "allowInstanceCredentials": False,
            "allowLocalRepos": True,
            "waveEnabled": False,
            "groundswellEnabled": False,
            "seqeraCloud": False,
            "allowNextflowCliLogs": True,
        }
    )


def _presented_credential() -> tuple[auth.Credential | None, int]:
    """The token the request carries (checked or not by the hub's open/closed setting), and
    its row number (0 for PANOPTES_TOKEN or none)."""
    credential = g.get("credential")
    if credential is None:
        secret = auth.presented_secret(request.headers.get("Authorization"))
        credential = auth._credential(secret, auth._token_state()[1])
    if credential is None:
        return None, 0
    pk = db.session.scalar(select(ApiToken.pk).where(ApiToken.name == credential.name))
    return credential, int(pk or 0)


@bp.get("/user-info")
def user_info() -> Response:
    """``DescribeUserResponse``: the token's name is the user."""
    _args(_Query)
    credential, pk = _presented_credential()
    name = credential.name if credential is not None else "anonymous"
    return jsonify(
        user={
            "id": pk,
            "userName": name,
            "email": None,
            "firstName": None,
            "lastName": None,
            "organization": None,
            "description": None,
            "avatar": None,
            "trusted": True,
            "deleted": False,
            "options": {"scopes": sorted(credential.scopes) if credential else []},
        },
        needConsent=False,
        defaultWorkspaceId=None,
    )


# -- compute environments (the launcher's queues) ------------------------------------------


_PLATFORM = {"local": "local-platform", "slurm": "slurm-platform"}


def _compute_env(queue: Queue, primary: bool, full: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": queue.name,
        "name": queue.name,
        "platform": _PLATFORM.get(queue.executor, queue.executor),
        "status": "AVAILABLE",
        "message": None,
        "lastUsed": None,
        "primary": primary,
        "workspaceName": None,
        "visibility": "SHARED",
        "workDir": queue.work_dir,
        "credentialsId": None,
        "region": None,
    }
    if full:
        entry.pop("workspaceName")
        entry.pop("visibility")
        entry.pop("region")
        entry.update(
            description=f"panoptes launch queue ({queue.executor}, at most {queue.max_active} "
            "at a time)",
            dateCreated=None,
            lastUpdated=None,
            deleted=False,
            config={
                "discriminator": _PLATFORM.get(queue.executor, queue.executor),
                "workDir": queue.work_dir,
                "headQueue": queue.slurm_partition,
                "computeQueue": queue.slurm_partition,
                "maxQueueSize": queue.max_active,
                "preRunScript": None,
                "postRunScript": None,
                "allowedPipelines": list(queue.allow) if queue.allow is not None else None,
            },
        )
    return entry


def _queues() -> dict[str, Queue]:
    return configured(current_app.config)


@bp.get("/compute-envs")
def compute_envs() -> Response:
    """``ListComputeEnvsResponse``: the hub's launch queues."""
    _args(_Query)
    queues = _queues()
    default = default_queue(queues)
    return jsonify(
        computeEnvs=[
            _compute_env(queue, default is not None and queue.name == default.name, full=False)
            for queue in queues.values()
        ]
    )


@bp.get("/compute-envs/<compute_env_id>")
def compute_env(compute_env_id: str) -> Response:
    """``DescribeComputeEnvResponse``."""
    _args(_Query)
    queues = _queues()
    queue = queues.get(compute_env_id)
    if queue is None:
        raise ApiError(404, f"Compute environment {compute_env_id!r} not found.")
    default = default_queue(queues)
    primary = default is not None and queue.name == default.name
    return jsonify(computeEnv=_compute_env(queue, primary, full=True))


# -- launching -----------------------------------------------------------------------------


def _params(text: str | None) -> dict[str, Any] | None:
    """``paramsText``: a JSON or YAML mapping."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ApiError(400, f"paramsText is neither JSON nor YAML: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "paramsText must be a JSON or YAML mapping of parameter names.")
    return value


def _launch_in(data: WorkflowLaunchRequest) -> launcher_api.LaunchIn:
    pipeline = data.pipeline or data.mainScript
    if not pipeline:
        raise ApiError(400, "Give the pipeline to launch: launch.pipeline or launch.mainScript.")
    args: list[str] = []
    if data.pipeline and data.mainScript:
        args += ["-main-script", data.mainScript]
    if data.entryName:
        args += ["-entry", data.entryName]
    if data.stubRun:
        args.append("-stub-run")
    if data.pullLatest:
        args.append("-latest")
    try:
        return launcher_api.LaunchIn(
            engine="nextflow",
            pipeline=pipeline,
            revision=data.revision or None,
            profile=",".join(data.configProfiles) if data.configProfiles else None,
            params=_params(data.paramsText),
            config=data.configText or None,
            work_dir=data.workDir or None,
            run_name=data.runName or None,
            queue=data.computeEnvId or None,
            args=args,
            pre_run_script=data.preRunScript,
            post_run_script=data.postRunScript,
        )
    except ValidationError as error:
        raise ApiError.from_validation(error) from None


@launch_bp.post("/workflow/launch")
@launcher_api.rate_limited
def launch() -> Response:
    """``SubmitWorkflowLaunchRequest`` -> ``SubmitWorkflowLaunchResponse``: a launch on the
    queue named by ``computeEnvId`` (else the default queue). The id answered is the run's
    from the start: the launcher assigns it before the engine starts."""
    _args(_Query)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, 'The body must be a JSON object: {"launch": {...}}.')
    data = _parsed(SubmitWorkflowLaunchRequest, body).launch
    launch_request = _launch_in(data)
    if data.resume and not launch_request.work_dir:
        raise ApiError(400, "resume needs the workDir of the run to resume.")
    created = launcher_api.submit(launch_request, launcher_api._who(), resume=bool(data.resume))
    return jsonify(workflowId=created.workflow_id)


@launch_bp.post("/workflow/<workflow_id>/cancel")
def cancel(workflow_id: str) -> tuple[str, int]:
    """Cancel the launch behind a run (its head job is stopped), or mark a run that is only
    monitored cancelled (that needs the admin right on a hub that requires tokens)."""
    _args(_Query)
    run, launch = _found(workflow_id)
    if launch is not None and launch.status in (QUEUED, *ACTIVE):
        launches.request_cancel(launch.id)
        return "", 204
    if run is None:
        raise ApiError(400, f"Workflow {workflow_id!r} has already ended: nothing to cancel.")
    if shapes.status(run, _run_status(run), launch) in shapes.TERMINAL:
        raise ApiError(400, f"Workflow {workflow_id!r} has already ended: nothing to cancel.")
    credential = g.get("credential")
    if auth._token_state()[0] and (credential is None or "admin" not in credential.scopes):
        raise ApiError(403, "Marking a monitored run cancelled needs the admin right.")
    store.cancel(workflow_id)
    return "", 204


# -- reading runs ----------------------------------------------------------------------------


@bp.get("/workflow/<workflow_id>")
def describe(workflow_id: str) -> Response:
    """``DescribeWorkflowResponse``: SUBMITTED from the launch on, then the run's status."""
    run, launch = _found(workflow_id)
    return jsonify(
        _envelope(
            {
                "workflow": _workflow(run, launch),
                "progress": _progress(run),
                "platform": (
                    {"id": _PLATFORM.get(launch.executor, launch.executor), "name": launch.queue}
                    if launch is not None
                    else None
                ),
                "jobInfo": None,
            }
        )
    )


def _unreported(search: str | None) -> list[Launch]:
    """Launches whose run has not reported yet, newest first."""
    query = select(Launch).where(~exists().where(Workflow.id == Launch.workflow_id))
    if search:
        pattern = queries.like_pattern(search)
        query = query.where(
            or_(
                func.lower(func.coalesce(Launch.run_name, "")).like(pattern, escape="\\"),
                func.lower(Launch.pipeline).like(pattern, escape="\\"),
            )
        )
    query = query.order_by(Launch.submitted_at.desc(), Launch.pk.desc()).limit(MAX_UNREPORTED)
    return list(db.session.scalars(query).all())


@bp.get("/workflow")
def list_workflows() -> Response:
    """``ListWorkflowsResponse``: runs of every engine and launches not reported yet (those
    first), newest first; ``search`` matches the run name or project."""
    params = _args(ListQuery)
    runs = select(Workflow)
    if params.search:
        pattern = queries.like_pattern(params.search)
        runs = runs.where(
            or_(
                func.lower(Workflow.name).like(pattern, escape="\\"),
                func.lower(func.coalesce(Workflow.project, "")).like(pattern, escape="\\"),
            )
        )
    run_total = db.session.scalar(select(func.count()).select_from(runs.subquery())) or 0
    pending = _unreported(params.search)
    page_launches = pending[params.offset : params.offset + params.max]
    run_offset = max(0, params.offset - len(pending))
    run_rows: list[Workflow] = []
    if len(page_launches) < params.max:
        run_rows = list(
            db.session.scalars(
                runs.order_by(Workflow.created_at.desc(), Workflow.pk.desc())
                .limit(params.max - len(page_launches))
                .offset(run_offset)
            ).all()
        )
    by_id = {}
    if run_rows:
        ids = [row.id for row in run_rows]
        by_id = {
            launch.workflow_id: launch
            for launch in db.session.scalars(select(Launch).where(Launch.workflow_id.in_(ids)))
        }
    items: list[tuple[Workflow | None, Launch | None]] = [
        (None, launch) for launch in page_launches
    ]
    items += [(row, by_id.get(row.id)) for row in run_rows]
    workspace = _workspace_id(params.workspaceId)
    return jsonify(
        workflows=[
            {
                "workflow": _workflow(run, launch),
                "orgId": None,
                "orgName": None,
                "workspaceId": workspace,
                "workspaceName": None,
                "labels": [],
                "starred": False,
                "optimized": False,
            }
            for run, launch in items
        ],
        totalSize=run_total + len(pending),
        hasMore=params.offset + len(items) < run_total + len(pending),
    )


def _tasks_query(run: Workflow, search: str | None) -> Any:
    query = select(Job).where(Job.workflow_pk == run.pk)
    if search:
        pattern = queries.like_pattern(search)
        query = query.where(
            or_(
                func.lower(func.coalesce(Job.name, "")).like(pattern, escape="\\"),
                func.lower(func.coalesce(Job.tag, "")).like(pattern, escape="\\"),
                func.lower(Job.status).like(pattern, escape="\\"),
            )
        )
    return query


@bp.get("/workflow/<workflow_id>/tasks")
def tasks(workflow_id: str) -> Response:
    """``ListTasksResponse``: ``sortBy`` one of TASK_SORT, ``sortDir`` asc or desc."""
    params = _args(TaskQuery)
    run, _launch = _found(workflow_id)
    if run is None:
        return jsonify(tasks=[], total=0)
    query = _tasks_query(run, params.search)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    descending = params.sortDir == "desc"
    order: list[Any]
    if params.sortBy in (None, "taskId", "id"):
        # Task numbers are kept as text: shorter first, then by digits, is numeric order.
        keys = [func.length(Job.job_key), Job.job_key]
        order = [key.desc() if descending else key for key in keys]
    else:
        column = TASK_SORT[params.sortBy]
        # Empty values last whichever the direction (as NULLS LAST, on SQLite too).
        order = [case((column.is_(None), 1), else_=0), column.desc() if descending else column]
    rows = db.session.scalars(
        query.order_by(*order, Job.pk).limit(params.max).offset(params.offset)
    ).all()
    return jsonify(tasks=[{"task": shapes.task(job)} for job in rows], total=total)


@bp.get("/workflow/<workflow_id>/task/<task_id>")
def task(workflow_id: str, task_id: str) -> Response:
    """``DescribeTaskResponse``: a task by its number (Nextflow taskId, Snakemake jobid)."""
    _args(_Query)
    if not task_id.isdigit() or len(task_id) > 18:
        raise ApiError(400, "A task id is a whole number.")
    run, _launch = _found(workflow_id)
    found = None
    if run is not None:
        found = db.session.scalars(
            select(Job).where(Job.workflow_pk == run.pk, Job.job_key == task_id)
        ).first()
        if found is None:
            # A job without a number of its own (generic engines) is known by its row's.
            by_row = db.session.get(Job, int(task_id))
            if by_row is not None and by_row.workflow_pk == run.pk:
                found = by_row if shapes.task_id(by_row) == by_row.pk else None
    if found is None:
        raise ApiError(404, f"Task {task_id} of workflow {workflow_id!r} not found.")
    return jsonify(task=shapes.task(found))


@bp.get("/workflow/<workflow_id>/progress")
def progress(workflow_id: str) -> Response:
    """``GetProgressResponse``."""
    _args(_Query)
    run, _launch = _found(workflow_id)
    return jsonify(progress=_progress(run))


@bp.get("/workflow/<workflow_id>/metrics")
def metrics(workflow_id: str) -> Response:
    """``GetWorkflowMetricsResponse``: per-process quartiles of the finished tasks' metrics."""
    _args(_Query)
    run, _launch = _found(workflow_id)
    if run is None:
        return jsonify(metrics=[])
    rows = db.session.execute(
        select(
            Job.name,
            Job.tag,
            Job.job_key,
            Job.extra,
            Job.cpus,
            Job.memory_bytes,
            Job.time_ms,
            Job.pcpu,
            Job.peak_rss,
            Job.realtime_ms,
            Job.read_bytes,
            Job.write_bytes,
        )
        .where(Job.workflow_pk == run.pk, Job.status.in_(("Done", "Error", "Ignored")))
        .order_by(Job.pk.desc())
        .limit(MAX_METRIC_JOBS)
    ).all()
    shaped = []
    for row in rows:
        extra = row.extra if isinstance(row.extra, Mapping) else {}
        label = extra.get("task_name") or (f"{row.name} ({row.tag})" if row.tag else row.name)
        shaped.append(
            {
                "name": row.name,
                "label": label or row.job_key,
                "cpus": row.cpus,
                "memory": row.memory_bytes,
                "time": row.time_ms,
                "pcpu": row.pcpu,
                "peak_rss": row.peak_rss,
                "peak_vmem": extra.get("peak_vmem"),
                "realtime_ms": row.realtime_ms,
                "read_bytes": row.read_bytes,
                "write_bytes": row.write_bytes,
            }
        )
    return jsonify(metrics=shapes.metrics(shaped))


@bp.get("/workflow/<workflow_id>/log")
def log(workflow_id: str) -> Response:
    """``WorkflowLogResponse``: the launch's log as lines from character offset ``next`` on
    (at most ``maxLength`` lines); ``forwardToken`` is the offset to ask for next."""
    params = _args(LogQuery)
    _run_row, launch = _found(workflow_id)
    if launch is None:
        return jsonify(
            log={
                "entries": [],
                "rewindToken": None,
                "forwardToken": None,
                "pending": False,
                "message": "This run was not launched by the hub: it has no launch log.",
                "downloads": [],
                "truncated": False,
            }
        )
    text, end = launches.read_log(launch, params.next)
    lines = text.splitlines(keepends=True)
    truncated = len(lines) > params.maxLength
    if truncated:
        lines = lines[: params.maxLength]
        end = params.next + sum(len(line) for line in lines)
    elif lines and not lines[-1].endswith("\n") and launch.status not in FINISHED:
        end -= len(lines.pop())  # a line still being written comes whole next time
    return jsonify(
        log={
            "entries": [line.rstrip("\n") for line in lines],
            "rewindToken": str(params.next),
            "forwardToken": str(end),
            "pending": launch.status not in FINISHED,
            "message": None,
            "downloads": [],
            "truncated": truncated,
        }
    )


@bp.delete("/workflow/<workflow_id>")
def delete_workflow(workflow_id: str) -> tuple[str, int]:
    """Delete a run that has ended (with its launch); a running one is refused."""
    _args(_Query)
    run, launch = _found(workflow_id)
    if launch is not None and launch.status not in FINISHED:
        raise ApiError(400, f"Workflow {workflow_id!r} is still running: cancel it first.")
    if run is not None:
        outcome = store.delete_workflow(workflow_id)
        if outcome is store.Deleted.RUNNING:
            raise ApiError(400, f"Workflow {workflow_id!r} is still running: cancel it first.")
    if launch is not None:
        with store.write_transaction() as session:
            session.execute(delete(LaunchLogChunk).where(LaunchLogChunk.launch_pk == launch.pk))
            session.execute(delete(Launch).where(Launch.pk == launch.pk))
    return "", 204


def register(app: Flask) -> None:
    """Attach the Seqera API's blueprints."""
    app.register_blueprint(bp)
    app.register_blueprint(launch_bp)
