"""The OpenAPI 3.1 document (``/openapi.json``) and its offline HTML rendering (``/docs``).

Response schemas come from the pydantic models the views serialise with; a test checks that
every route of the app is described here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template
from pydantic import BaseModel

from . import serializers, store
from .api import MAX_OFFSET
from .config import DEFAULTS
from .ingest.events import EventBatchIn, EventBatchOut
from .ingest.snakemake import BatchIn, hub_version
from .launcher import openapi as launcher_openapi
from .normalize.schema import Engine, JobStatus, WorkflowStatus
from .seqera import openapi as seqera_openapi

bp = Blueprint("openapi", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "status"],
    "properties": {
        "error": {"type": "string", "description": "short machine-readable code"},
        "message": {"type": "string", "description": "what went wrong, for a person"},
        "status": {"type": "integer"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
_OBJECT = {"type": "object", "additionalProperties": True}
_HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "pattern": NO_NUL},
    }


# No text the hub takes may contain NUL (it answers 400 to one in the URL).
NO_NUL = "^[^\\u0000]*$"


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "pattern" not in schema:
        schema = {**schema, "pattern": NO_NUL}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


ID_SCHEMA = {"type": "string", "pattern": f"^{store.WORKFLOW_ID_PATTERN}$"}
WORKFLOW_ID = _path_param("workflow_id", "the run's id (as returned at creation)", ID_SCHEMA)
PAGE = [
    _query(
        "limit",
        "page size (1 to PANOPTES_API_MAX_LIMIT, default 100)",
        {"type": "integer", "minimum": 1, "maximum": DEFAULTS["API_MAX_LIMIT"], "default": 100},
    ),
    _query(
        "offset",
        "rows to skip",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    ),
]


def _comma_list(name: str, description: str, values: list[str]) -> dict[str, Any]:
    """A query parameter taking several values separated by commas."""
    return {
        **_query(name, description, {"type": "array", "items": {"type": "string", "enum": values}}),
        "style": "form",
        "explode": False,
    }


TOWER_BODY = {"required": True, "content": {"application/json": {"schema": _OBJECT}}}
TOWER_ACK = _json(
    {
        "type": "object",
        "properties": {"status": {"type": "string"}, "workflowId": {"type": "string"}},
    }
)


def _tower_paths(prefix: str) -> dict[str, Any]:
    tag = ["nextflow"]
    return {
        f"{prefix}/trace/create": {
            "post": {
                "tags": tag,
                "summary": "Nextflow: register a run",
                "requestBody": TOWER_BODY,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["workflowId"],
                            "properties": {
                                "workflowId": {"type": "string"},
                                "watchUrl": {"type": "string"},
                            },
                        }
                    ),
                    "400": _error("body is not a JSON object"),
                },
            }
        },
        f"{prefix}/trace/{{workflow_id}}/begin": {
            "put": {
                "tags": tag,
                "summary": "Nextflow: run metadata, DAG built",
                "parameters": [WORKFLOW_ID],
                "requestBody": TOWER_BODY,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string"},
                                "workflowId": {"type": "string"},
                                "watchUrl": {"type": "string"},
                            },
                        }
                    ),
                    "400": _error("bad body or id"),
                },
            }
        },
        f"{prefix}/trace/{{workflow_id}}/progress": {
            "put": {
                "tags": tag,
                "summary": "Nextflow: changed tasks and counters; unknown ids are created",
                "parameters": [WORKFLOW_ID],
                "requestBody": TOWER_BODY,
                "responses": {"200": TOWER_ACK, "400": _error("bad body or id")},
            }
        },
        f"{prefix}/trace/{{workflow_id}}/heartbeat": {
            "put": {
                "tags": tag,
                "summary": "Nextflow: proof of life",
                "parameters": [WORKFLOW_ID],
                "requestBody": TOWER_BODY,
                "responses": {
                    "200": _json({"type": "object", "properties": {"message": {"type": "string"}}}),
                    "400": _error("bad body or id"),
                },
            }
        },
        f"{prefix}/trace/{{workflow_id}}/complete": {
            "put": {
                "tags": tag,
                "summary": "Nextflow: outcome, stats and metrics",
                "parameters": [WORKFLOW_ID],
                "requestBody": TOWER_BODY,
                "responses": {"200": TOWER_ACK, "400": _error("bad body or id")},
            }
        },
        f"{prefix}/workflow/{{workflow_id}}": {
            "patch": {
                "tags": tag,
                "summary": "Nextflow 26.06+: scheduler run id (ignored)",
                "parameters": [WORKFLOW_ID],
                "responses": {"200": _json(_OBJECT)},
            }
        },
    }


def _ops_paths() -> dict[str, Any]:
    ops = ["operations"]
    public: list[dict[str, Any]] = []  # no token needed, even when tokens are configured
    return {
        "/signin": {
            method: {
                "tags": ["dashboard"],
                "summary": "Dashboard sign-in with a token (sets a session cookie)",
                "security": public,
                "responses": {
                    "200": _HTML,
                    "302": {"description": "signed in"},
                    "401": {"description": "wrong token (HTML form again)"},
                },
            }
            for method in ("get", "post")
        },
        "/signout": {
            "post": {
                "tags": ["dashboard"],
                "summary": "End the dashboard session",
                "responses": {"302": {"description": "signed out"}},
            }
        },
        "/healthz": {
            "get": {
                "security": public,
                "tags": ops,
                "summary": "The process answers",
                "responses": {"200": _json(_OBJECT)},
            }
        },
        "/readyz": {
            "get": {
                "security": public,
                "tags": ops,
                "summary": "The database answers",
                "responses": {"200": _json(_OBJECT), "503": _error("the database is unreachable")},
            }
        },
        "/metrics": {
            "get": {
                "tags": ops,
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _dashboard_paths() -> dict[str, Any]:
    """The dashboard's job page, its forms (HTML, CSRF-protected) and the live event stream."""
    tag = ["dashboard"]
    job_id = _path_param("job_id", "Snakemake jobid or Nextflow taskId")
    form = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["csrf_token"],
                    "properties": {
                        "csrf_token": {"type": "string", "description": "the session's token"},
                        "name": {"type": "string", "description": "rename only"},
                    },
                }
            }
        },
    }
    sse_event = {
        "type": "object",
        "description": "one event; `data` is JSON: {workflow_id, version}",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": ["change", "deleted"]},
            "id": {"type": "string", "description": "the version (absent on `deleted`)"},
            "data": {"type": "string"},
        },
    }
    redirect = {"description": "done; see Location"}
    refused = {"description": "missing or wrong CSRF token (HTML page)"}
    missing = {"description": "unknown run (HTML page)"}
    return {
        "/workflow/{workflow_id}/job/{job_id}": {
            "get": {
                "tags": tag,
                "summary": "Dashboard: one job",
                "parameters": [WORKFLOW_ID, job_id],
                "responses": {"200": _HTML, "404": missing},
            }
        },
        "/workflow/{workflow_id}/rename": {
            "post": {
                "tags": tag,
                "summary": "Dashboard form: rename a run",
                "parameters": [WORKFLOW_ID],
                "requestBody": form,
                "responses": {"303": redirect, "400": refused, "404": missing},
            }
        },
        "/workflow/{workflow_id}/cancel": {
            "post": {
                "tags": tag,
                "summary": "Dashboard form: mark a run Cancelled",
                "parameters": [WORKFLOW_ID],
                "requestBody": form,
                "responses": {"303": redirect, "400": refused, "404": missing},
            }
        },
        "/workflow/{workflow_id}/delete": {
            "get": {
                "tags": tag,
                "summary": "Dashboard: confirm deleting a run",
                "parameters": [WORKFLOW_ID],
                "responses": {"200": _HTML, "404": missing},
            },
            "post": {
                "tags": tag,
                "summary": "Dashboard form: delete a run that is not Running",
                "parameters": [WORKFLOW_ID],
                "requestBody": form,
                "responses": {"303": redirect, "400": refused, "404": missing},
            },
        },
        "/api/stream": {
            "get": {
                "tags": tag,
                "summary": "Server-sent events: `change` (id: the new version) when a run, or the "
                "list of runs, changes; `deleted` when the run is deleted. Fed from the "
                "database; each stream ends after a few minutes and the browser reconnects. "
                "A client whose Accept header does not name text/event-stream gets the "
                "current state once.",
                "parameters": [
                    _query(
                        "workflow_id", "one run (default: the list of runs)", {"type": "string"}
                    ),
                    _query("since", "the version the page shows", {"type": "string"}),
                ],
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": sse_event}},
                    },
                    "404": _error("unknown workflow_id"),
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document of every route the hub serves."""
    form_or_json = {
        "schema": {
            "type": "object",
            "required": ["msg", "id"],
            "properties": {
                "msg": {"type": "string", "description": "the event, JSON-encoded"},
                "timestamp": {"type": "string"},
                "id": ID_SCHEMA,
            },
        }
    }
    snake = ["snakemake"]
    read = ["read API"]
    manage = ["management"]
    paths: dict[str, Any] = {
        "/api/service-info": {
            "get": {
                "tags": snake,
                "summary": "Liveness check used by Snakemake 7/8 and the plugin",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"type": "string", "enum": ["running"]},
                                "server": {"type": "string"},
                                "version": {"type": "string"},
                                "features": {"type": "array", "items": {"type": "string"}},
                                "engines": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    )
                },
            }
        },
        "/create_workflow": {
            m: {
                "tags": snake,
                "summary": "Register a Snakemake run (panoptes naming rules)",
                "parameters": [
                    _query("workflow_id", "a stable name chosen by the user", {"type": "string"}),
                    _query("name", "legacy form of workflow_id", {"type": "string"}),
                ],
                "responses": {"200": _json(_ref("WorkflowSummary"))},
            }
            for m in ("get", "post")
        },
        "/update_workflow_status": {
            "post": {
                "tags": snake,
                "summary": "One Snakemake event (form, JSON, or raw JSON without Content-Type)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": form_or_json,
                        "application/json": form_or_json,
                    },
                },
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "400": _error("missing or malformed field"),
                    "409": _error("the id belongs to a Nextflow run"),
                },
            }
        },
        "/api/snakemake/events": {
            "post": {
                "tags": snake,
                "summary": "A batch of Snakemake events (our logger plugin)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BatchIn")}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "workflow_id": {"type": "string"},
                                "accepted": {"type": "integer"},
                                "duplicates": {"type": "integer"},
                            },
                        }
                    ),
                    "400": _error("malformed batch"),
                    "409": _error("the id belongs to a Nextflow run"),
                },
            }
        },
        "/api/log": {
            "get": {
                "tags": ["meta"],
                "summary": "How far runs and jobs lag the stored events",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "appended": {"type": "integer"},
                                "pending": {"type": "integer"},
                            },
                        }
                    )
                },
            }
        },
        "/api/events": {
            "post": {
                "tags": ["any engine"],
                "summary": "A batch of one run's events, from any engine (docs/EVENTS.md)",
                "description": "Idempotent (an event_id already stored is skipped), tolerant of "
                "order and of unknown fields; answered once the events are stored.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("EventBatchIn")}},
                },
                "responses": {
                    "200": _json(_ref("EventBatchOut")),
                    "400": _error("malformed batch, or an engine with a protocol of its own"),
                    "409": _error("the run id belongs to a run of another engine"),
                },
            }
        },
        "/api/workflows": {
            "get": {
                "tags": read,
                "summary": "Runs of both engines, newest first",
                "parameters": [
                    _comma_list("engine", "engines, comma-separated", [e.value for e in Engine]),
                    _comma_list(
                        "status", "statuses, comma-separated", [s.value for s in WorkflowStatus]
                    ),
                    _query(
                        "q", "case-insensitive name search", {"type": "string", "maxLength": 255}
                    ),
                    *PAGE,
                ],
                "responses": {
                    "200": _json(_ref("WorkflowList")),
                    "400": _error("bad query parameter"),
                },
            }
        },
        "/api/workflows/all": {
            "delete": {
                "tags": manage,
                "summary": "Delete every run",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "msg": {"type": "string"},
                                "deleted": {"type": "integer"},
                            },
                        }
                    ),
                    "410": _error("nothing to delete"),
                },
            }
        },
        "/api/workflow/{workflow_id}": {
            "get": {
                "tags": read,
                "summary": "One run",
                "parameters": [WORKFLOW_ID],
                "responses": {"200": _json(_ref("WorkflowEnvelope")), "404": _error("unknown id")},
            },
            "put": {
                "tags": manage,
                "summary": "Rename a run ({} is a no-op, as Snakemake 8 sends it)",
                "parameters": [WORKFLOW_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("WorkflowEnvelope")),
                    "400": _error("blank name or malformed body"),
                    "404": _error("unknown id"),
                },
            },
            "delete": {
                "tags": manage,
                "summary": "Delete a run that is not Running",
                "parameters": [WORKFLOW_ID],
                "responses": {
                    "204": {"description": "deleted"},
                    "403": _error("the run is Running"),
                    "404": _error("unknown id"),
                },
            },
            "patch": _tower_paths("")["/workflow/{workflow_id}"]["patch"],
        },
        "/api/workflow/{workflow_id}/cancel": {
            "post": {
                "tags": manage,
                "summary": "Mark a run Cancelled",
                "parameters": [WORKFLOW_ID],
                "responses": {"200": _json(_ref("WorkflowEnvelope")), "404": _error("unknown id")},
            }
        },
        "/api/workflow/{workflow_id}/jobs": {
            "get": {
                "tags": read,
                "summary": "A run's jobs / tasks",
                "parameters": [
                    WORKFLOW_ID,
                    _comma_list(
                        "status", "statuses, comma-separated", [s.value for s in JobStatus]
                    ),
                    _query("name", "rule or process name", {"type": "string", "maxLength": 255}),
                    *PAGE,
                ],
                "responses": {
                    "200": _json(_ref("JobList")),
                    "400": _error("bad query parameter"),
                    "404": _error("unknown id"),
                },
            }
        },
        "/api/workflow/{workflow_id}/job/{job_id}": {
            "get": {
                "tags": read,
                "summary": "One job (panoptes' plural key `jobs` is kept)",
                "parameters": [
                    WORKFLOW_ID,
                    _path_param("job_id", "Snakemake jobid or Nextflow taskId"),
                ],
                "responses": {"200": _json(_ref("JobEnvelope")), "404": _error("unknown id")},
            }
        },
        "/": {
            "get": {
                "tags": ["dashboard"],
                "summary": "Dashboard: all runs",
                "responses": {"200": _HTML},
            }
        },
        "/workflow/{workflow_id}": {
            "get": {
                "tags": ["dashboard"],
                "summary": "Dashboard: one run (Tower's watchUrl)",
                "parameters": [WORKFLOW_ID],
                "responses": {"200": _HTML, "404": {"description": "unknown run (HTML page)"}},
            },
            "patch": _tower_paths("")["/workflow/{workflow_id}"]["patch"],
        },
        **_dashboard_paths(),
        "/openapi.json": {
            "get": {
                "tags": ["meta"],
                "summary": "This document",
                "responses": {"200": _json(_OBJECT)},
            }
        },
        "/docs": {
            "get": {
                "tags": ["meta"],
                "summary": "This document as a web page",
                "responses": {"200": {"description": "HTML"}},
            }
        },
    }
    root_tower = _tower_paths("")
    root_tower.pop("/workflow/{workflow_id}")  # merged into the dashboard's entry above
    paths.update(root_tower)
    api_tower = _tower_paths("/api")
    api_tower.pop("/api/workflow/{workflow_id}")  # merged into the read API's entry above
    paths.update(api_tower)
    paths.update(_ops_paths())
    # -- the launcher (launch API and pages) --
    paths.update(launcher_openapi.paths())
    # -- the Seqera Platform API and its Tower trace routes (panoptes/seqera/openapi.py) --
    paths.update(seqera_openapi.paths(paths))
    components = _schemas(
        serializers.WorkflowList,
        serializers.WorkflowEnvelope,
        serializers.JobList,
        serializers.JobEnvelope,
        serializers.WorkflowSummary,
        BatchIn,
        EventBatchIn,
        EventBatchOut,
    )
    components["Error"] = ERROR_SCHEMA
    components.update(launcher_openapi.schemas())
    security_schemes = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token from `panoptes token create` or PANOPTES_TOKEN",
        },
        "nextflowBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "user `@token`, password the token (Nextflow)",
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "panoptes",
            "version": hub_version(),
            "description": "Live monitoring hub for Snakemake and Nextflow runs.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": security_schemes},
        # Only enforced once a token exists or PANOPTES_TOKEN is set.
        "security": [{"bearer": []}, {"nextflowBasic": []}, {}],
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document."""
    return jsonify(document())


@bp.get("/docs")
def docs() -> str:
    """The OpenAPI document rendered on the server: no script, nothing from a CDN."""
    return render_template("docs.html", spec=document())
