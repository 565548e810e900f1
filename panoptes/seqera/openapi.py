"""The /seqera part of the OpenAPI document: the Seqera Platform routes (field names as Seqera's
own document has them) and the Tower trace routes served there too."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from ..launcher.openapi import SECURITY as LAUNCH_SECURITY
from .api import MAX_PAGE, TASK_SORT
from .shapes import STATUSES, TASK_STATUS

TAGS = ["seqera"]
_NO_NUL = "^[^\\u0000]*$"
_ERROR = {"$ref": "#/components/schemas/Error"}
_ANY = {"type": "object", "additionalProperties": True}
_SCRIPT = "bash, run {} the engine; only on a queue with run_scripts = true"


def _nullable(kind: str | list[str], **more: Any) -> dict[str, Any]:
    kinds = [kind] if isinstance(kind, str) else kind
    return {"type": [*kinds, "null"], **more}


_TEXT = _nullable("string")
_TIME = _nullable("string", format="date-time")
_INT = _nullable("integer")
_NUMBER = _nullable("number")
_BOOL = _nullable("boolean")
_OBJECT = _nullable("object")


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


WORKSPACE = _query(
    "workspaceId",
    "accepted and ignored: the hub has one workspace",
    {"type": "string", "maxLength": 64, "pattern": _NO_NUL},
)
WORKFLOW_ID = {
    "name": "workflow_id",
    "in": "path",
    "required": True,
    "description": "the run's id (Seqera's workflowId): the one a launch answered",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _NO_NUL},
}
PAGE = [
    _query("max", "page size", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE}),
    _query("offset", "rows to skip", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}),
    _query("search", "text in the name", {"type": "string", "maxLength": 255, "pattern": _NO_NUL}),
]

RESOURCE_DATA = _nullable(
    "object",
    required=["mean", "min", "q1", "q2", "q3", "max"],
    properties={
        **{key: {"type": "number"} for key in ("mean", "min", "q1", "q2", "q3", "max")},
        **{f"{key}Label": _TEXT for key in ("min", "max", "q1", "q2", "q3")},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
)
_LOAD_NUMBERS = [
    "cpus",
    "cpuTime",
    "cpuLoad",
    "memoryRss",
    "memoryReq",
    "readBytes",
    "writeBytes",
    "volCtxSwitch",
    "invCtxSwitch",
    "loadTasks",
    "loadCpus",
    "loadMemory",
    "peakCpus",
    "peakTasks",
    "peakMemory",
    "pending",
    "submitted",
    "running",
    "succeeded",
    "failed",
    "cached",
    "memoryEfficiency",
    "cpuEfficiency",
]
PROCESS_LOAD = _object(
    ["process", "pending", "submitted", "running", "succeeded", "failed", "cached"],
    {
        "process": {"type": "string"},
        **{key: {"type": "number"} for key in _LOAD_NUMBERS},
        "dateCreated": _TIME,
        "lastUpdated": _TIME,
    },
)
WORKFLOW_LOAD = _object(
    ["pending", "submitted", "running", "succeeded", "failed", "cached"],
    {
        **{key: {"type": "number"} for key in _LOAD_NUMBERS},
        "cost": _NUMBER,
        "executors": _nullable("array", items={"type": "string"}),
        "dateCreated": _TIME,
        "lastUpdated": _TIME,
    },
)
PROGRESS = _object(
    ["workflowProgress", "processesProgress"],
    {
        "workflowProgress": WORKFLOW_LOAD,
        "processesProgress": {"type": "array", "items": PROCESS_LOAD},
        "totalProcesses": {"type": "integer"},
    },
)
WORKFLOW = _object(
    ["id", "status", "runName", "submit", "dateCreated"],
    {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "submit": {"type": "string", "format": "date-time"},
        "start": _TIME,
        "complete": _TIME,
        "dateCreated": {"type": "string", "format": "date-time"},
        "lastUpdated": _TIME,
        "runName": {"type": "string"},
        "sessionId": _TEXT,
        "profile": _TEXT,
        "workDir": _TEXT,
        "commitId": _TEXT,
        "userName": _TEXT,
        "scriptId": _TEXT,
        "revision": _TEXT,
        "commandLine": _TEXT,
        "projectName": _TEXT,
        "scriptName": _TEXT,
        "launchId": _TEXT,
        "requiresAttention": {"type": "boolean"},
        "configFiles": _nullable("array", items={"type": "string"}),
        "params": _OBJECT,
        "configText": _TEXT,
        "manifest": _OBJECT,
        "nextflow": _OBJECT,
        "stats": _OBJECT,
        "errorMessage": _TEXT,
        "errorReport": _TEXT,
        "deleted": _BOOL,
        "peakLoadCpus": _INT,
        "peakLoadTasks": _INT,
        "peakLoadMemory": _INT,
        "projectDir": _TEXT,
        "homeDir": _TEXT,
        "container": _TEXT,
        "repository": _TEXT,
        "containerEngine": _TEXT,
        "scriptFile": _TEXT,
        "launchDir": _TEXT,
        "duration": _INT,
        "exitStatus": _INT,
        "resume": _BOOL,
        "success": _BOOL,
        "logFile": _TEXT,
        "outFile": _TEXT,
        "operationId": _TEXT,
        "ownerId": _INT,
        "engine": {"type": "string", "description": "not Seqera's: the engine that ran it"},
    },
)
_WORKSPACE_FIELDS = {
    "orgId": _INT,
    "orgName": _TEXT,
    "workspaceId": _INT,
    "workspaceName": _TEXT,
    "labels": {"type": "array"},
    "optimized": {"type": "boolean"},
}
DESCRIBE = _object(
    ["workflow", "progress"],
    {
        "workflow": WORKFLOW,
        "progress": PROGRESS,
        "platform": _OBJECT,
        "jobInfo": _OBJECT,
        **_WORKSPACE_FIELDS,
    },
)
WORKFLOW_LIST = _object(
    ["workflows", "totalSize"],
    {
        "workflows": {
            "type": "array",
            "items": _object(
                ["workflow"],
                {"workflow": WORKFLOW, "starred": {"type": "boolean"}, **_WORKSPACE_FIELDS},
            ),
        },
        "totalSize": {"type": "integer"},
        "hasMore": {"type": "boolean"},
    },
)
TASK = _object(
    ["id", "taskId", "status"],
    {
        "id": {"type": "integer"},
        "taskId": {"type": "integer"},
        "status": {"type": "string", "enum": sorted(set(TASK_STATUS.values()))},
        "hash": _TEXT,
        "name": _TEXT,
        "process": _TEXT,
        "tag": _TEXT,
        "submit": _TIME,
        "start": _TIME,
        "complete": _TIME,
        "module": {"type": "array"},
        "container": _TEXT,
        "attempt": _INT,
        "script": _TEXT,
        "scratch": {},
        "workdir": _TEXT,
        "queue": _TEXT,
        "cpus": _INT,
        "memory": _INT,
        "disk": _INT,
        "time": _INT,
        "env": _TEXT,
        "executor": _TEXT,
        "machineType": _TEXT,
        "cloudZone": _TEXT,
        "priceModel": _TEXT,
        "cost": _NUMBER,
        "errorAction": _TEXT,
        "exitStatus": _INT,
        "exit": _INT,
        "duration": _INT,
        "realtime": _INT,
        "nativeId": _TEXT,
        "pcpu": _NUMBER,
        "pmem": _NUMBER,
        "rss": _INT,
        "vmem": _INT,
        "peakRss": _INT,
        "peakVmem": _INT,
        "rchar": _INT,
        "wchar": _INT,
        "syscr": _INT,
        "syscw": _INT,
        "readBytes": _INT,
        "writeBytes": _INT,
        "volCtxt": _INT,
        "invCtxt": _INT,
        "dateCreated": _TIME,
        "lastUpdated": _TIME,
    },
)
METRICS = _object(
    ["metrics"],
    {
        "metrics": {
            "type": "array",
            "items": _object(
                ["process"],
                {
                    "id": {"type": "integer"},
                    "process": {"type": "string"},
                    **dict.fromkeys(
                        [
                            "cpu",
                            "mem",
                            "vmem",
                            "time",
                            "reads",
                            "writes",
                            "cpuUsage",
                            "memUsage",
                            "timeUsage",
                        ],
                        RESOURCE_DATA,
                    ),
                },
            ),
        }
    },
)
LOG = _object(
    ["log"],
    {
        "log": _object(
            ["entries", "pending", "truncated"],
            {
                "entries": {"type": "array", "items": {"type": "string"}},
                "rewindToken": _TEXT,
                "forwardToken": _TEXT,
                "pending": {"type": "boolean"},
                "message": _TEXT,
                "downloads": {"type": "array"},
                "truncated": {"type": "boolean"},
            },
        )
    },
)
COMPUTE_ENV = _object(
    ["id", "name", "platform", "status"],
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "platform": {"type": "string", "enum": ["local-platform", "slurm-platform"]},
        "status": {"type": "string", "enum": ["AVAILABLE"]},
        "message": _TEXT,
        "lastUsed": _TIME,
        "primary": {"type": "boolean"},
        "workDir": _TEXT,
        "config": _OBJECT,
    },
)
LAUNCH_REQUEST = _object(
    ["launch"],
    {
        "launch": {
            "type": "object",
            "description": "Seqera's WorkflowLaunchRequest; fields not listed are ignored",
            "properties": {
                "computeEnvId": {"type": "string", "description": "a queue name"},
                "pipeline": {"type": "string"},
                "mainScript": {"type": "string"},
                "entryName": {"type": "string"},
                "revision": {"type": "string"},
                "runName": {"type": "string"},
                "workDir": {"type": "string", "description": "an absolute path"},
                "configProfiles": {"type": "array", "items": {"type": "string"}},
                "configText": {"type": "string"},
                "paramsText": {"type": "string", "description": "JSON or YAML"},
                "preRunScript": {"type": "string", "description": _SCRIPT.format("before")},
                "postRunScript": {"type": "string", "description": _SCRIPT.format("after")},
                "resume": {"type": "boolean"},
                "pullLatest": {"type": "boolean"},
                "stubRun": {"type": "boolean"},
            },
        }
    },
)


def _get(summary: str, schema: dict[str, Any], *parameters: Any, **errors: str) -> Any:
    responses = {"200": _json(schema)}
    responses.update({code: _error(text) for code, text in errors.items()})
    return {
        "get": {
            "tags": TAGS,
            "summary": summary,
            "parameters": [*parameters, WORKSPACE],
            "responses": responses,
        }
    }


_RUN_ERRORS = {"400": "invalid query", "404": "unknown workflow"}
_NO_CONTENT = {"description": "done"}


def _seqera_paths() -> dict[str, Any]:
    base = "/seqera/workflow/{workflow_id}"
    describe = _get("Seqera: describe a run", DESCRIBE, WORKFLOW_ID, **_RUN_ERRORS)
    describe["delete"] = {
        "tags": TAGS,
        "summary": "Seqera: delete a run that has ended (and its launch)",
        "parameters": [WORKFLOW_ID, WORKSPACE],
        "responses": {
            "204": _NO_CONTENT,
            "400": _error("still running"),
            "404": _error("unknown workflow"),
        },
    }
    return {
        "/seqera/service-info": _get(
            "Seqera: service info",
            _object(["serviceInfo"], {"serviceInfo": _object(["version", "apiVersion"], {})}),
            **{"400": "invalid query"},
        ),
        "/seqera/user-info": _get(
            "Seqera: the user (the token's name)",
            _object(
                ["user"],
                {"user": _object(["id", "userName"], {"id": {"type": "integer"}, "email": _TEXT})},
            ),
            **{"400": "invalid query"},
        ),
        "/seqera/compute-envs": _get(
            "Seqera: compute environments (the launch queues)",
            _object(["computeEnvs"], {"computeEnvs": {"type": "array", "items": COMPUTE_ENV}}),
            **{"400": "invalid query"},
        ),
        "/seqera/compute-envs/{compute_env_id}": _get(
            "Seqera: one compute environment",
            _object(["computeEnv"], {"computeEnv": COMPUTE_ENV}),
            {
                "name": "compute_env_id",
                "in": "path",
                "required": True,
                "description": "a queue name",
                "schema": {"type": "string", "minLength": 1, "pattern": _NO_NUL},
            },
            **{"400": "invalid query", "404": "unknown queue"},
        ),
        "/seqera/workflow/launch": {
            "post": {
                "tags": TAGS,
                "summary": "Seqera: launch on a queue (computeEnvId, else the default one)",
                "security": LAUNCH_SECURITY,
                "parameters": [WORKSPACE],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": LAUNCH_REQUEST}},
                },
                "responses": {
                    "200": _json(
                        _object(
                            ["workflowId"],
                            {
                                "workflowId": {
                                    "type": "string",
                                    "description": "the run's id from the start",
                                }
                            },
                        )
                    ),
                    "400": _error("invalid launch"),
                    "401": _error("a token with the launch right is needed"),
                    "403": _error("the queue does not allow it, or no launch right"),
                    "409": _error("launching is off: no queue"),
                    "429": _error("too many launches"),
                },
            }
        },
        "/seqera/workflow": _get(
            "Seqera: runs of every engine, newest first (unreported launches first)",
            WORKFLOW_LIST,
            *PAGE,
            **{"400": "invalid query"},
        ),
        base: describe,
        f"{base}/tasks": _get(
            "Seqera: tasks (Snakemake jobs)",
            _object(
                ["tasks", "total"],
                {
                    "tasks": {"type": "array", "items": _object(["task"], {"task": TASK})},
                    "total": {"type": "integer"},
                },
            ),
            WORKFLOW_ID,
            *PAGE,
            _query("sortBy", "sort key", {"type": "string", "enum": list(TASK_SORT)}),
            _query("sortDir", "sort direction", {"type": "string", "enum": ["asc", "desc"]}),
            **_RUN_ERRORS,
        ),
        f"{base}/task/{{task_id}}": _get(
            "Seqera: one task by its number",
            _object(["task"], {"task": TASK}),
            WORKFLOW_ID,
            {
                "name": "task_id",
                "in": "path",
                "required": True,
                "description": "the task's number (Nextflow taskId, Snakemake jobid)",
                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            },
            **{"400": "not a task number", "404": "unknown workflow or task"},
        ),
        f"{base}/progress": _get(
            "Seqera: progress per process",
            _object(["progress"], {"progress": PROGRESS}),
            WORKFLOW_ID,
            **_RUN_ERRORS,
        ),
        f"{base}/metrics": _get(
            "Seqera: per-process quartiles of the tasks' metrics",
            METRICS,
            WORKFLOW_ID,
            **_RUN_ERRORS,
        ),
        f"{base}/log": _get(
            "Seqera: the launch's log",
            LOG,
            WORKFLOW_ID,
            _query(
                "next",
                "character offset (forwardToken)",
                {"type": "integer", "minimum": 0, "maximum": 2**62},
            ),
            _query(
                "maxLength", "most lines", {"type": "integer", "minimum": 1, "maximum": 100_000}
            ),
            **_RUN_ERRORS,
        ),
        f"{base}/cancel": {
            "post": {
                "tags": TAGS,
                "summary": "Seqera: cancel the launch behind a run (or mark a run cancelled)",
                "security": LAUNCH_SECURITY,
                "parameters": [WORKFLOW_ID, WORKSPACE],
                "responses": {
                    "204": _NO_CONTENT,
                    "400": _error("already ended"),
                    "401": _error("a token with the launch right is needed"),
                    "403": _error("no admin right to mark a monitored run cancelled"),
                    "404": _error("unknown workflow"),
                },
            }
        },
    }


def paths(existing: dict[str, Any]) -> dict[str, Any]:
    """The /seqera paths; the Tower trace routes of ``existing`` (the document's root ones)
    are described again under /seqera."""
    described = _seqera_paths()
    for path, item in existing.items():
        if path.startswith("/trace/"):
            described[f"/seqera{path}"] = deepcopy(item)
    scheduler = existing.get("/workflow/{workflow_id}", {}).get("patch")
    if scheduler is not None:
        described["/seqera/workflow/{workflow_id}"]["patch"] = deepcopy(scheduler)
    return described


class Described:
    """The /seqera API's description, as the document's builder takes a module's (its Tower
    trace routes under /seqera are derived like the others)."""

    @staticmethod
    def paths() -> dict[str, Any]:
        return _seqera_paths()

    @staticmethod
    def schemas() -> dict[str, Any]:
        return {}
