"""The launcher's part of the OpenAPI document: the launch API and the launcher's pages."""

from __future__ import annotations

from typing import Any

from .api import MAX_LIMIT, LaunchIn, RelaunchIn
from .store import ENGINES, STATUSES

_NO_NUL = "^[^\\u0000]*$"
_TEXT = {"type": "string", "pattern": _NO_NUL}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
TAGS = ["launcher"]
# Every route of the launcher needs the launch right, even on an open hub.
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"nextflowBasic": []}]

LAUNCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "engine", "pipeline", "queue", "executor", "status", "workflow_id"],
    "properties": {
        "id": {"type": "string"},
        "engine": {"type": "string", "enum": list(ENGINES)},
        "pipeline": {"type": "string"},
        "revision": _NULLABLE_TEXT,
        "profile": _NULLABLE_TEXT,
        "params": {"type": ["object", "null"]},
        "config": _NULLABLE_TEXT,
        "work_dir": _NULLABLE_TEXT,
        "run_name": _NULLABLE_TEXT,
        "queue": {"type": "string"},
        "executor": {"type": "string", "enum": ["local", "slurm"]},
        "args": {"type": "array", "items": {"type": "string"}},
        "resume": {"type": "boolean"},
        "relaunch_of": _NULLABLE_TEXT,
        "pre_run_script": _NULLABLE_TEXT,
        "post_run_script": _NULLABLE_TEXT,
        "status": {"type": "string", "enum": list(STATUSES)},
        "exit_code": {"type": ["integer", "null"]},
        "error": _NULLABLE_TEXT,
        "workflow_id": {
            "type": "string",
            "description": "the monitored run's id, assigned at submission",
        },
        "requested_by": _NULLABLE_TEXT,
        "submitted_at": {"type": "string", "format": "date-time"},
        "started_at": _NULLABLE_TIME,
        "finished_at": _NULLABLE_TIME,
        "cancel_requested_at": _NULLABLE_TIME,
        "worker": _NULLABLE_TEXT,
        "heartbeat_at": _NULLABLE_TIME,
        "slurm_job_id": _NULLABLE_TEXT,
        "log_size": {"type": "integer", "description": "characters of log kept so far"},
    },
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


LAUNCH_ID = {
    "name": "launch_id",
    "in": "path",
    "required": True,
    "description": "the launch's id",
    "schema": _TEXT,
}
ENVELOPE = _json(
    {"type": "object", "required": ["launch"], "properties": {"launch": LAUNCH_SCHEMA}}
)
DENIED = {
    "401": _json(_ERROR, "no token or session with the launch right"),
    "403": _json(_ERROR, "the token lacks the launch right"),
}
MISSING = {"404": _json(_ERROR, "no such launch")}


def _operation(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "tags": TAGS,
        "summary": summary,
        "security": SECURITY,
        "responses": {**responses, **DENIED},
        **more,
    }


def schemas() -> dict[str, Any]:
    """Components the launcher adds."""
    launch_in = LaunchIn.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"Launch": LAUNCH_SCHEMA, "LaunchIn": launch_in}


def paths() -> dict[str, Any]:
    """Every route of the launch API and the launcher's pages."""
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LaunchIn"}}},
    }
    relaunch_body = {
        "required": False,
        "content": {"application/json": {"schema": RelaunchIn.model_json_schema()}},
    }
    listing = _json(
        {
            "type": "object",
            "required": ["launches", "total", "limit", "offset"],
            "properties": {
                "launches": {"type": "array", "items": LAUNCH_SCHEMA},
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        }
    )
    text = {"description": "the log as text", "content": {"text/plain": {"schema": _TEXT}}}
    stream = {
        "description": "server-sent events: `log` ({text, status}; id: the offset after it), "
        "`run` ({workflow_id, url}) once the run reports, then `end` ({status})",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    invalid = {"400": _json(_ERROR, "invalid request")}
    form = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["csrf_token"],
                    "properties": {"csrf_token": {"type": "string"}},
                    "additionalProperties": True,
                }
            }
        },
    }
    page = {"200": _HTML, "302": {"description": "to the sign-in page"}}
    redirect = {
        "302": {"description": "to the sign-in page"},
        "303": {"description": "done; see Location"},
        "400": _HTML,
        "404": _HTML,
    }
    return {
        "/api/launches": {
            "get": _operation(
                "Launches, newest first",
                {"200": listing, **invalid},
                parameters=[
                    _query("status", "comma-separated statuses", _TEXT),
                    _query("engine", "snakemake or nextflow", _TEXT),
                    _query("queue", "a queue's name", _TEXT),
                    _query(
                        "limit",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _query(
                        "offset",
                        "rows to skip",
                        {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                    ),
                ],
            ),
            "post": _operation(
                "Queue a launch (rate-limited per token)",
                {
                    "201": ENVELOPE,
                    **invalid,
                    "409": _json(_ERROR, "launching is off: no queue is configured"),
                    "429": _json(_ERROR, "too many launches from this token"),
                },
                requestBody=body,
            ),
        },
        "/api/launches/{launch_id}": {
            "get": _operation("One launch", {"200": ENVELOPE, **MISSING}, parameters=[LAUNCH_ID]),
            "delete": _operation(
                "Cancel a launch (as nextflow-turret's clients do)",
                {"200": ENVELOPE, **MISSING},
                parameters=[LAUNCH_ID],
            ),
        },
        "/api/launches/{launch_id}/cancel": {
            "post": _operation(
                "Cancel: a queued launch is dropped; a running one gets SIGTERM (scancel), "
                "then SIGKILL after the grace period",
                {"200": ENVELOPE, **MISSING},
                parameters=[LAUNCH_ID],
            )
        },
        "/api/launches/{launch_id}/relaunch": {
            "post": _operation(
                "Queue the same launch again (resume: -resume / --rerun-incomplete)",
                {
                    "201": ENVELOPE,
                    **MISSING,
                    **invalid,
                    "429": _json(_ERROR, "too many launches from this token"),
                },
                parameters=[LAUNCH_ID],
                requestBody=relaunch_body,
            )
        },
        "/api/launches/{launch_id}/log": {
            "get": _operation(
                "The launch's log from `offset` (characters) or its last `tail` lines; "
                "X-Log-Offset says where to continue",
                {"200": text, **MISSING, **invalid},
                parameters=[
                    LAUNCH_ID,
                    _query(
                        "offset",
                        "characters to skip",
                        {"type": "integer", "minimum": 0, "maximum": 2**62},
                    ),
                    _query(
                        "tail",
                        "only the last lines",
                        {"type": "integer", "minimum": 1, "maximum": 100_000},
                    ),
                ],
            )
        },
        "/api/launches/{launch_id}/log/stream": {
            "get": _operation(
                "The log live, resuming from Last-Event-ID (or `offset`)",
                {"200": stream, **MISSING, **invalid},
                parameters=[
                    LAUNCH_ID,
                    _query("offset", "characters to skip", {"type": "integer", "minimum": 0}),
                ],
            )
        },
        "/api/queues": {
            "get": _operation(
                "The queues launches can go to (`launching` false when there is none)",
                {"200": _json({"type": "object", "required": ["launching", "queues"]})},
            )
        },
        "/api/pipeline-schema": {
            "get": _operation(
                "A local Nextflow pipeline's nextflow_schema.json (null when it has none)",
                {"200": _json({"type": "object", "required": ["schema"]}), **invalid},
                parameters=[_query("pipeline", "the pipeline's path", _TEXT)],
            )
        },
        "/launches": {
            "get": _operation(
                "Dashboard: launches", page, parameters=[_query("status", "one status", _TEXT)]
            )
        },
        "/launches/new": {
            "get": _operation("Dashboard: the launch form", page),
            "post": _operation("Dashboard: submit the launch form", redirect, requestBody=form),
        },
        "/launches/{launch_id}": {
            "get": _operation(
                "Dashboard: a launch with its live log",
                {**page, "404": _HTML},
                parameters=[LAUNCH_ID],
            ),
        },
        "/launches/{launch_id}/cancel": {
            "post": _operation(
                "Dashboard: cancel", redirect, parameters=[LAUNCH_ID], requestBody=form
            ),
        },
        "/launches/{launch_id}/relaunch": {
            "post": _operation(
                "Dashboard: relaunch", redirect, parameters=[LAUNCH_ID], requestBody=form
            ),
        },
    }
