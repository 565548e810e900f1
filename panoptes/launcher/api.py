"""The launch API: queue, list, read, cancel, relaunch launches and follow their logs.

Every route needs a token (or a signed-in session) with the launch right, even on a hub whose
reading and ingestion are open (``auth.py``); launches are rate-limited per token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import live
from ..abuse import RateLimit
from ..errors import ApiError
from ..extensions import db
from . import argv
from . import store as launches
from .models import Launch
from .queues import Queue, configured, default_queue

P = ParamSpec("P")
R = TypeVar("R")

bp = Blueprint("launches", __name__)

MAX_LIMIT = 1000
LAUNCHING_OFF = (
    "Launching is off: no queue is configured. Add a [queues.NAME] table to panoptes.toml "
    "(see panoptes.toml.example) and restart the hub."
)
_NO_NUL = r"^[^\x00]*$"


def _who() -> str:
    credential = g.get("credential")
    return credential.name if credential is not None else request.remote_addr or "unknown"


_LAUNCH_LIMIT = "panoptes.launch_rate_limit"


def rate_limited(view: Callable[P, R]) -> Callable[P, R]:
    """``LAUNCH_RATE_LIMIT`` per token on a launching route: past it, 429 with Retry-After.
    Counted in each process's memory by ``limits`` (Flask-Limiter's engine), called here
    rather than through Flask-Limiter, whose request hooks ran on every request of the hub
    (a tenth of a one-event ingestion request) to limit these few routes."""

    @wraps(view)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        launches_per_token: RateLimit = current_app.extensions[_LAUNCH_LIMIT]
        who = _who()
        if not launches_per_token.allows(who):
            wait = launches_per_token.retry_after(who)
            raise ApiError(
                429, f"Too many launches from this token; try again in {wait} s.", retry_after=wait
            )
        launches_per_token.count(who)
        return view(*args, **kwargs)

    return limited


class LaunchIn(BaseModel):
    """``POST /api/launches``."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["snakemake", "nextflow"]
    pipeline: str = Field(min_length=1, max_length=4096, pattern=_NO_NUL)
    revision: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    profile: str | None = Field(default=None, max_length=255, pattern=_NO_NUL)
    params: dict[str, Any] | None = None
    config: str | None = Field(default=None, max_length=1_000_000, pattern=_NO_NUL)
    work_dir: str | None = Field(default=None, max_length=4096, pattern=_NO_NUL)
    run_name: str | None = Field(default=None, min_length=1, max_length=255, pattern=_NO_NUL)
    queue: str | None = Field(default=None, max_length=64, pattern=_NO_NUL)
    args: list[str] = Field(default_factory=list, max_length=200)
    # Shell scripts run in the head job before and after the engine; only on a queue whose
    # table says run_scripts = true.
    pre_run_script: str | None = Field(default=None, max_length=100_000, pattern=_NO_NUL)
    post_run_script: str | None = Field(default=None, max_length=100_000, pattern=_NO_NUL)

    @field_validator("pre_run_script", "post_run_script")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value is not None and value.strip() else None

    @field_validator("pipeline", "revision", "profile", "run_name", "queue")
    @classmethod
    def _not_an_option(cls, value: str | None) -> str | None:
        # Each is the value of an engine option: one starting with "-" would read as another.
        if value is not None and value.startswith("-"):
            raise ValueError("must not start with '-'")
        return value

    @field_validator("work_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_absolute():
            raise ValueError("work_dir must be an absolute path")
        return value

    @field_validator("args")
    @classmethod
    def _no_nul(cls, value: list[str]) -> list[str]:
        if any("\x00" in arg for arg in value):
            raise ValueError("arguments must not contain NUL")
        return value


class RelaunchIn(BaseModel):
    """``POST /api/launches/<id>/relaunch``."""

    model_config = ConfigDict(extra="forbid")

    resume: bool = False


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str | None = None
    engine: str | None = None
    queue: str | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)


class LogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offset: int = Field(default=0, ge=0, le=2**62)
    tail: int | None = Field(default=None, ge=1, le=100_000)


def _parsed(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError.from_validation(error) from None


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def launch_json(launch: Launch) -> dict[str, Any]:
    """A launch as the API shows it."""
    return {
        "id": launch.id,
        "engine": launch.engine,
        "pipeline": launch.pipeline,
        "revision": launch.revision,
        "profile": launch.profile,
        "params": launch.params,
        "config": launch.config_text,
        "work_dir": launch.work_dir,
        "run_name": launch.run_name,
        "queue": launch.queue,
        "executor": launch.executor,
        "args": launch.args or [],
        "resume": launch.resume,
        "relaunch_of": launch.relaunch_of,
        "pre_run_script": launch.pre_run_script,
        "post_run_script": launch.post_run_script,
        "status": launch.status,
        "exit_code": launch.exit_code,
        "error": launch.error,
        "workflow_id": launch.workflow_id,
        "requested_by": launch.requested_by,
        "submitted_at": launches.when(launch.submitted_at),
        "started_at": launches.when(launch.started_at),
        "finished_at": launches.when(launch.finished_at),
        "cancel_requested_at": launches.when(launch.cancel_requested_at),
        "worker": launch.worker_id,
        "heartbeat_at": launches.when(launch.heartbeat_at),
        "slurm_job_id": launch.slurm_job_id,
        "log_size": launch.log_size,
    }


def queue_json(queue: Queue) -> dict[str, Any]:
    """A queue as the API shows it (no environment: it may hold secrets)."""
    return {
        "name": queue.name,
        "executor": queue.executor,
        "max_active": queue.max_active,
        "default": queue.default,
        "allow": list(queue.allow) if queue.allow is not None else None,
    }


def _queues() -> dict[str, Queue]:
    return configured(current_app.config)


def _pick_queue(name: str | None, pipeline: str) -> Queue:
    queues = _queues()
    if not queues:
        raise ApiError(409, LAUNCHING_OFF, "launching_off")
    queue = queues.get(name) if name else default_queue(queues)
    if queue is None:
        raise ApiError(400, f"No queue named {name!r} (queues: {', '.join(queues)}).", "invalid")
    if not queue.allows(pipeline):
        raise ApiError(403, f"Queue {queue.name!r} does not allow pipeline {pipeline!r}.")
    return queue


def _found(launch_id: str) -> Launch:
    launch = launches.get(launch_id)
    if launch is None:
        raise ApiError(404, f"No launch with id {launch_id!r}.")
    return launch


def _restricted(queue: str, data: LaunchIn) -> None:
    """On a queue with an allow-list only the listed pipelines may run, so nothing may bring
    in other code: no extra engine arguments, no Nextflow configuration (it is Groovy), no
    profile given as a path, no work dir of the caller's (Nextflow reads the nextflow.config
    of the directory it starts in)."""
    refused = []
    if data.args:
        refused.append("args")
    if data.config and data.engine == "nextflow":
        refused.append("config")
    if data.profile and "/" in data.profile:
        refused.append("a profile path")
    if data.work_dir:
        refused.append("work_dir")
    if refused:
        raise ApiError(
            403,
            f"Queue {queue!r} runs only its allowed pipelines: {', '.join(refused)} "
            "cannot be given there.",
        )


def relaunch_request(original: Launch, resume: bool) -> LaunchIn:
    """The request that launches ``original`` again; resuming needs its very work dir."""
    queues = _queues()
    work_dir = original.work_dir
    if resume and not work_dir and original.queue in queues:
        work_dir = str(argv.work_dir(original, queues[original.queue]))
    return LaunchIn(
        engine=original.engine,
        pipeline=original.pipeline,
        revision=original.revision,
        profile=original.profile,
        params=original.params,
        config=original.config_text,
        work_dir=work_dir,
        run_name=None,
        queue=original.queue,
        args=list(original.args or []),
        pre_run_script=original.pre_run_script,
        post_run_script=original.post_run_script,
    )


def submit(
    data: LaunchIn, requested_by: str, relaunch_of: str | None = None, resume: bool = False
) -> Launch:
    """Queue a checked launch request on its queue (a relaunch repeats what was accepted
    once, in the work dir the queue gave it)."""
    queue = _pick_queue(data.queue, data.pipeline)
    if queue.allow is not None and relaunch_of is None:
        _restricted(queue.name, data)
    if (data.pre_run_script or data.post_run_script) and not queue.run_scripts:
        # Checked on relaunches too: the queue's table may have changed since.
        raise ApiError(
            403,
            f"Queue {queue.name!r} runs no pre-run or post-run scripts (its table in "
            "panoptes.toml would say run_scripts = true).",
        )
    return launches.create(
        launches.NewLaunch(
            engine=data.engine,
            pipeline=data.pipeline,
            queue=queue.name,
            executor=queue.executor,
            revision=data.revision,
            profile=data.profile,
            params=data.params,
            config_text=data.config,
            work_dir=data.work_dir,
            run_name=data.run_name,
            args=data.args,
            relaunch_of=relaunch_of,
            resume=resume,
            requested_by=requested_by,
            pre_run_script=data.pre_run_script,
            post_run_script=data.post_run_script,
        )
    )


@bp.post("/api/launches")
@rate_limited
def create() -> tuple[Response, int]:
    """Queue a launch."""
    data = _parsed(LaunchIn, _json_body())
    launch = submit(data, _who())
    return jsonify(launch=launch_json(launch)), 201


@bp.get("/api/launches")
def index() -> Response:
    """Launches, newest first (filters: status, engine, queue; paged)."""
    params = _parsed(ListIn, request.args.to_dict())
    statuses = [s for s in (params.status or "").split(",") if s]
    unknown = set(statuses) - set(launches.STATUSES)
    if unknown:
        raise ApiError(400, f"Unknown status {', '.join(sorted(unknown))}.", "invalid")
    rows, total = launches.listing(
        status=statuses,
        engine=params.engine,
        queue=params.queue,
        limit=params.limit,
        offset=params.offset,
    )
    return jsonify(
        launches=[launch_json(row) for row in rows],
        total=total,
        limit=params.limit,
        offset=params.offset,
    )


@bp.get("/api/launches/<launch_id>")
def show(launch_id: str) -> Response:
    """One launch."""
    return jsonify(launch=launch_json(_found(launch_id)))


@bp.post("/api/launches/<launch_id>/cancel")
def cancel(launch_id: str) -> Response:
    """Cancel: a queued launch is dropped, a running one stopped (SIGTERM, then SIGKILL)."""
    launch = launches.request_cancel(launch_id)
    if launch is None:
        raise ApiError(404, f"No launch with id {launch_id!r}.")
    return jsonify(launch=launch_json(launch))


@bp.delete("/api/launches/<launch_id>")
def delete(launch_id: str) -> Response:
    """The same as cancel (the verb nextflow-turret's clients use)."""
    return cancel(launch_id)


@bp.post("/api/launches/<launch_id>/relaunch")
@rate_limited
def relaunch(launch_id: str) -> tuple[Response, int]:
    """Queue the same launch again (``resume``: Nextflow -resume, Snakemake
    --rerun-incomplete, in the same work dir)."""
    original = _found(launch_id)
    options = _parsed(RelaunchIn, request.get_json(silent=True) or {})
    data = relaunch_request(original, options.resume)
    launch = submit(data, _who(), relaunch_of=original.id, resume=options.resume)
    return jsonify(launch=launch_json(launch)), 201


@bp.get("/api/launches/<launch_id>/log")
def log(launch_id: str) -> Response:
    """The log as text from ``offset`` (characters), or its last ``tail`` lines; the offset
    to ask for next is in ``X-Log-Offset``."""
    launch = _found(launch_id)
    params = _parsed(LogIn, request.args.to_dict())
    text, end = launches.read_log(launch, 0 if params.tail else params.offset)
    if params.tail:
        text = "".join(text.splitlines(keepends=True)[-params.tail :])
    response = Response(text, mimetype="text/plain")
    response.headers["X-Log-Offset"] = str(end)
    response.headers["X-Launch-Status"] = launch.status
    return response


def _sse(kind: str, data: Any, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {kind}", f"data: {json.dumps(data)}"]
    return "\n".join(lines) + "\n\n"


@bp.get("/api/launches/<launch_id>/log/stream")
def log_stream(launch_id: str) -> Response:
    """The log as server-sent events: ``log`` events (id: the offset after them) from
    ``Last-Event-ID`` (or ``offset``) on, ``run`` once the run has reported, then ``end`` with
    the final status."""
    launch = _found(launch_id)
    raw = request.headers.get("Last-Event-ID") or request.args.get("offset") or "0"
    try:
        offset = max(0, int(raw))
    except ValueError:
        raise ApiError(400, "Last-Event-ID and offset must be whole numbers.") from None
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = live._settings(app)
    wants_stream = "text/event-stream" in request.headers.get("Accept", "")
    slots = app.extensions[live._EXTENSION] if wants_stream else None
    sock = request.environ.get("gunicorn.socket")
    launch_pk, workflow_id = launch.pk, launch.workflow_id
    run_url = url_for("ui.workflow", workflow_id=workflow_id)
    db.session.remove()  # the stream outlives the request: hold no session while it runs

    def body() -> Iterator[str]:
        nonlocal offset
        acquired = slots is not None and slots.acquire(blocking=False)
        run_seen = False
        try:
            yield f"retry: {settings.retry_ms if acquired else settings.busy_retry_ms}\n\n"
            started = last_write = time.monotonic()
            while True:
                with app.app_context():
                    current = db.session.get(Launch, launch_pk)
                    if current is None:
                        yield _sse("end", {"status": "deleted"})
                        return
                    status = current.status
                    text, end = launches.read_log(current, offset)
                    if not run_seen:
                        run_seen = launches.run_exists(workflow_id)
                        if run_seen:
                            yield _sse("run", {"workflow_id": workflow_id, "url": run_url})
                now = time.monotonic()
                if text:
                    yield _sse("log", {"text": text, "status": status}, str(end))
                    offset, last_write = end, now
                if status in launches.FINISHED:
                    yield _sse("end", {"status": status, "offset": offset})
                    return
                if now - last_write >= settings.heartbeat:
                    yield ": keep-alive\n\n"
                    last_write = now
                if not acquired or now - started >= settings.lifetime or live._client_gone(sock):
                    return
                if live.SHUTTING_DOWN.wait(settings.poll):
                    return
        finally:
            if acquired and slots is not None:
                slots.release()

    return Response(
        body(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/api/queues")
def queues() -> Response:
    """The queues launches can go to; ``launching`` is false when there are none."""
    configured_queues = _queues()
    default = default_queue(configured_queues)
    return jsonify(
        launching=bool(configured_queues),
        default=default.name if default else None,
        queues=[queue_json(q) for q in configured_queues.values()],
        message=None if configured_queues else LAUNCHING_OFF,
    )


@bp.get("/api/pipeline-schema")
def pipeline_schema() -> Response:
    """A local Nextflow pipeline's ``nextflow_schema.json`` (``schema`` null when it has
    none), from which the launch form builds its parameter fields."""
    pipeline = request.args.get("pipeline", "")
    if not pipeline or "\x00" in pipeline:
        raise ApiError(400, "Give the pipeline's path as ?pipeline=.")
    path = Path(pipeline).expanduser() / "nextflow_schema.json"
    schema: Any = None
    try:
        if path.is_file() and path.stat().st_size <= 1_000_000:
            schema = json.loads(path.read_text())
    except (OSError, ValueError):
        schema = None
    return jsonify(schema=schema if isinstance(schema, dict) else None)


def register(app: Flask) -> None:
    """Attach the launch API and its rate limits to ``app``."""
    app.register_blueprint(bp)
    app.extensions[_LAUNCH_LIMIT] = RateLimit(str(app.config["LAUNCH_RATE_LIMIT"]))
