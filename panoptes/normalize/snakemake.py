"""Snakemake messages (``--wms-monitor`` 7/8, logger plugins for 9) to schema events.

The input is the inner ``msg`` object of ``/update_workflow_status`` (or one event of the batch
route): a dict with a ``level`` and level-specific keys. See ../shared/protocols/SNAKEMAKE.md.
"""

from __future__ import annotations

import ast
import math
import shlex
from datetime import datetime
from pathlib import PurePath
from typing import Any

from . import coerce
from .schema import (
    Event,
    Heartbeat,
    JobStatus,
    JobUpdate,
    Reconcile,
    RunCreated,
    ShellCommand,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)

NOTHING_TO_BE_DONE = "Nothing to be done"
# Errors that belong to one job: the run may go on (retries, --keep-going).
_JOB_LEVEL_ERRORS = ("RuleException", "CalledProcessError")
_RESOURCE_NAMES_HIDDEN = frozenset({"_cores", "_nodes"})
# Snakemake's exit status when a run fails or is interrupted (it never reports it itself).
FAILED_EXIT_STATUS = 1
_MIB = 1024 * 1024  # Snakemake's benchmark "MB" are psutil bytes / 1024²
_LOG_TAILS_KEPT = 8
_LOG_TAIL_CHARS = 32 * 1024


def decode_msg(raw: Any) -> dict[str, Any] | None:
    """The inner message from its wire form: a JSON string, a dict, or (pre-2021 clients) a
    Python literal. Anything else gives None. ``eval`` is never used."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        value = coerce.loads(raw)
    except RecursionError:  # nested deeper than a parser goes: not a message
        return None
    except ValueError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def event_time(msg: dict[str, Any], received_at: datetime) -> datetime:
    """The client's own time when the message carries it (7/8 and our plugin), else arrival."""
    return coerce.epoch_seconds(msg.get("timestamp")) or received_at


def parse_message(msg: Any, received_at: datetime) -> list[Event]:
    """Events for one Snakemake message. Never raises on a dict; unknown levels only touch
    the run (the raw message is kept by the caller)."""
    if not isinstance(msg, dict):
        return [Heartbeat(at=received_at)]
    at = event_time(msg, received_at)
    level = msg.get("level")
    handler = _HANDLERS.get(level) if isinstance(level, str) else None
    if handler is None:
        return [Heartbeat(at=at)]
    return handler(msg, at, coerce.json_safe)


def parse_raw(kind: str, body: Any, received_at: datetime) -> list[Event]:
    """Events for one recorded raw event of the panoptes protocol: ``create`` (what
    ``/create_workflow`` recorded), ``update`` (an ``/update_workflow_status`` envelope) or
    ``event`` (one message of the batch route)."""
    if not isinstance(body, dict):
        return [Heartbeat(at=received_at)]
    if kind == "create":
        return parse_create(body, received_at)
    if kind == "update":
        return parse_message(decode_msg(body.get("msg")), received_at)
    return parse_message(body, received_at)


def requested_name(query: Any) -> str:
    """The name a ``/create_workflow`` query asks for (panoptes: ``workflow_id`` or ``name``)."""
    if not isinstance(query, dict):
        return ""
    return str(query.get("workflow_id") or query.get("name") or "").strip()[:255]


def parse_create(body: dict[str, Any], received_at: datetime) -> list[Event]:
    """``/create_workflow`` as recorded: ``{"query", "body", "name"}``, where ``name`` is the
    name the hub chose against the live runs when it recorded the request (absent from events
    of older releases: then the projector chooses it the same way)."""
    requested = requested_name(body.get("query"))
    request_body = body.get("body")
    chosen = body.get("name")
    created = RunCreated(
        at=received_at,
        name=chosen if isinstance(chosen, str) and chosen else requested or None,
        name_locked=bool(requested),
        resolve_name_clash=bool(requested) and not isinstance(chosen, str),
    )
    return [
        created,
        create_info(request_body if isinstance(request_body, dict) else {}, received_at),
    ]


def _job_key(value: Any) -> str | None:
    number = coerce.integer(value)
    if number is not None:
        return str(number)
    key = coerce.text(value, limit=64)
    return key.strip() or None if key is not None else None


def _info(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    text = coerce.text(msg.get("msg")) or ""
    if text.startswith(NOTHING_TO_BE_DONE):
        return [WorkflowOutcome(at=at, status=WorkflowStatus.NO_EXECUTION, completed_at=at)]
    return [Heartbeat(at=at)]


def _progress(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    done = coerce.integer(msg.get("done"), coerce.INT32_MAX)
    total = coerce.integer(msg.get("total"), coerce.INT32_MAX)
    if done is None and total is None:
        return [Heartbeat(at=at)]
    return [WorkflowProgress(at=at, done=done, total=total, decides_status=True)]


def _job_started(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    jobs = msg.get("jobs")
    if not isinstance(jobs, list):
        jobs = [msg.get("jobid")]
    events: list[Event] = []
    for raw_key in jobs:
        key = _job_key(raw_key)
        if key is not None:
            events.append(
                JobUpdate(
                    at=at,
                    key=key,
                    status=JobStatus.RUNNING,
                    starts_attempt=True,
                    fields={"started_at": at},
                )
            )
    return events or [Heartbeat(at=at)]


def _resources(value: Any, safe: coerce.SafeJson) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Resources as stored, plus the requested cpus/memory/time they imply.

    Snakemake 7/8 send a bare list of values without names; it is kept under ``values``.
    """
    if isinstance(value, list):
        return {"values": safe(value)}, {}
    named = coerce.mapping(value)
    if named is None:
        return None, {}
    named = {k: safe(v) for k, v in named.items() if k not in _RESOURCE_NAMES_HIDDEN}
    memory = coerce.scaled(named.get("mem_mib"), 1024 * 1024)
    if memory is None:
        memory = coerce.scaled(named.get("mem_mb"), 1_000_000)
    requested = {
        "memory_bytes": memory,
        "time_ms": coerce.scaled(named.get("runtime"), 60_000),  # runtime is in minutes
    }
    return named, {key: value for key, value in requested.items() if value is not None}


def _tag(wildcards: dict[str, Any] | None) -> str | None:
    if not wildcards:
        return None
    return coerce.text(", ".join(f"{k}={v}" for k, v in wildcards.items()), limit=1000)


def _job_info(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    key = _job_key(msg.get("jobid"))
    if key is None:
        return [Heartbeat(at=at)]
    wildcards = coerce.mapping(msg.get("wildcards"))
    resources, requested = _resources(msg.get("resources"), safe)
    extra = {
        name: safe(msg[name])
        for name in ("reason", "priority", "is_checkpoint", "local", "benchmark")
        if msg.get(name) not in (None, [], "")
    }
    fields: dict[str, Any] = {
        "name": coerce.text(msg.get("name") or msg.get("rule_name"), limit=255),
        "message": coerce.text(msg.get("msg") or msg.get("rule_msg")),
        "inputs": coerce.str_list(msg.get("input")),
        "outputs": coerce.str_list(msg.get("output")),
        "log": coerce.str_list(msg.get("log")),
        "wildcards": safe(wildcards) if wildcards is not None else None,
        "tag": _tag(wildcards),
        "resources": resources,
        "cpus": coerce.integer(msg.get("threads"), coerce.INT32_MAX),
        "command": coerce.text(msg.get("shellcmd")) or None,
        "started_at": at,
        "extra": extra or None,
        **requested,
    }
    return [
        JobUpdate(
            at=at,
            key=key,
            status=JobStatus.RUNNING,
            starts_attempt=True,
            announces=True,
            fields={k: v for k, v in fields.items() if v is not None},
        )
    ]


def benchmark_usage(value: Any) -> dict[str, Any]:
    """Job columns from a Snakemake benchmark measurement as our plugin sends it
    (``s``, ``max_rss`` and ``io_in``/``io_out`` in MB, ``cpu_time`` in seconds)."""
    usage = coerce.mapping(value) or {}

    def number(name: str) -> float | None:
        raw = usage.get(name)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        return float(raw) if math.isfinite(raw) and raw >= 0 else None

    seconds, rss = number("s"), number("max_rss")
    cpu_time, read, written = number("cpu_time"), number("io_in"), number("io_out")
    fields: dict[str, Any] = {
        "realtime_ms": round(seconds * 1000) if seconds is not None else None,
        "peak_rss": round(rss * _MIB) if rss is not None else None,
        "read_bytes": round(read * _MIB) if read is not None else None,
        "write_bytes": round(written * _MIB) if written is not None else None,
        "pcpu": round(100 * cpu_time / seconds, 1) if cpu_time is not None and seconds else None,
    }
    return {k: v for k, v in fields.items() if v is not None and v < coerce.INT64_MAX}


def _job_finished(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    key = _job_key(msg.get("jobid", msg.get("job_id")))
    if key is None:
        return [Heartbeat(at=at)]
    fields = {"completed_at": at, **benchmark_usage(msg.get("benchmark_usage"))}
    return [JobUpdate(at=at, key=key, status=JobStatus.DONE, fields=fields)]


def _job_error(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    outcome = WorkflowOutcome(at=at, status=WorkflowStatus.ERROR, final=False)
    key = _job_key(msg.get("jobid"))
    if key is None:
        return [outcome]
    tails = _log_tails(msg.get("log_tails"))
    fields: dict[str, Any] = {
        "name": coerce.text(msg.get("name") or msg.get("rule_name"), limit=255),
        "completed_at": at,
        "extra": {"log_tails": tails} if tails else None,
        # Our plugin sends the job's own error text as "error"; others only a headline as "msg".
        "error_message": coerce.text(msg.get("error") or msg.get("msg")),
        "inputs": coerce.str_list(msg.get("input")),
        "outputs": coerce.str_list(msg.get("output")),
        "log": coerce.str_list(msg.get("log")),
        "command": coerce.text(msg.get("shellcmd")) or None,
        "exit_code": coerce.integer(msg.get("exit_code"), coerce.INT32_MAX),
    }
    return [
        JobUpdate(
            at=at,
            key=key,
            status=JobStatus.ERROR,
            fields={k: v for k, v in fields.items() if v is not None},
        ),
        outcome,
    ]


def _log_tails(value: Any) -> list[dict[str, Any]]:
    """The last lines of a failed job's log files, as our plugin sends them:
    ``[{"path", "text", "truncated"}]``, bounded here too."""
    tails: list[dict[str, Any]] = []
    for item in value[:_LOG_TAILS_KEPT] if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        path = coerce.text(item.get("path"), limit=4096)
        text = coerce.text(item.get("text"))
        if not path or text is None:
            continue
        truncated = len(text) > _LOG_TAIL_CHARS or item.get("truncated") is True
        tails.append({"path": path, "text": text[-_LOG_TAIL_CHARS:], "truncated": truncated})
    return tails


def config_overrides(command: str | None) -> dict[str, str] | None:
    """The ``--config KEY=VALUE ...`` values of a Snakemake command line, as written."""
    if not command:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    values: dict[str, str] = {}
    taking = False
    for word in words:
        if word in ("--config", "-C"):
            taking = True
        elif word.startswith("--config="):
            taking = True
            word = word.removeprefix("--config=")
            key, sep, value = word.partition("=")
            if sep and key:
                values[key[:255]] = value
        elif word.startswith("-"):
            taking = False
        elif taking:
            key, sep, value = word.partition("=")
            if sep and key:
                values[key[:255]] = value
    return values or None


def default_name(workdir: str | None, command: str | None) -> str | None:
    """A name for a run nobody named: its working directory's name, and the targets if the
    command line starts with them (``snakemake out/a.txt --cores 4`` in ``proj``:
    ``proj: out/a.txt``)."""
    base = PurePath(workdir.rstrip("/")).name if workdir and workdir.strip("/") else ""
    if not base:
        return None
    targets: list[str] = []
    try:
        words = shlex.split(command or "")
    except ValueError:
        words = []
    for word in words[1:]:
        if word.startswith("-"):
            break
        targets.append(word)
    name = f"{base}: {' '.join(targets)}" if targets else base
    return coerce.text(name, limit=255)


def _error(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    text = coerce.text(msg.get("msg")) or ""
    exception = coerce.text(msg.get("exception"), limit=255) or ""
    job_level = text.startswith(_JOB_LEVEL_ERRORS) or exception in _JOB_LEVEL_ERRORS
    first_line = text.strip().splitlines()[0] if text.strip() else exception or "Error"
    if exception and not first_line.startswith(exception):
        first_line = f"{exception}: {first_line}"
    return [
        WorkflowOutcome(
            at=at,
            status=WorkflowStatus.ERROR,
            final=not job_level,
            completed_at=None if job_level else at,
            error_message=coerce.text(first_line, limit=1000),
            error_report=text or None,
            exit_status=None if job_level else FAILED_EXIT_STATUS,
        )
    ]


def _shellcmd(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    command = coerce.text(msg.get("msg") or msg.get("shellcmd"))
    if not command or not command.strip():
        return [Heartbeat(at=at)]
    key = _job_key(msg.get("jobid"))
    if key is not None:
        return [JobUpdate(at=at, key=key, fields={"command": command})]
    return [ShellCommand(at=at, command=command)]


def planned_jobs(msg: dict[str, Any]) -> dict[str, int]:
    """Jobs planned per rule, from ``run_info``: its ``stats`` (our plugin) or the "Job stats"
    table of its text (every generation)."""
    planned: dict[str, int] = {}
    stats = coerce.mapping(msg.get("stats"))
    if stats:
        for rule, count in stats.items():
            number = coerce.integer(count, coerce.INT32_MAX)
            if number is not None and rule != "total":
                planned[coerce.text(rule, limit=255) or rule] = number
        if planned:
            return planned
    for line in (coerce.text(msg.get("msg")) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            planned[parts[0][:255]] = min(int(parts[1]), coerce.INT32_MAX)
    return planned


def _run_info(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    planned = planned_jobs(msg)
    if not planned:
        return [Heartbeat(at=at)]
    # The plan, before any job finished: a run that fails at its first job still shows it.
    return [
        WorkflowProgress(at=at, done=None, total=sum(planned.values())),
        WorkflowInfo(at=at, extra={"planned_jobs": planned}),
    ]


def _workflow_success(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    return [Reconcile(at=at)]


def _workflow_started(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    config = msg.get("config")
    command = coerce.text(msg.get("command"))
    # A logger plugin cannot reach Snakemake's merged config; ours sends where it came from,
    # and the values given on the command line are read from it.
    extra = {
        key: safe(msg[key])
        for key in ("configfiles", "config_md5", "python_version", "platform")
        if msg.get(key) not in (None, [], "")
    }
    overrides = config_overrides(command)
    if overrides:
        extra["config_overrides"] = overrides
    work_dir = coerce.text(msg.get("workdir"))
    name = coerce.text(msg.get("name"), limit=255) or default_name(work_dir, command)
    return [
        WorkflowInfo(
            at=at,
            name=name,
            started_at=at,
            user=coerce.text(msg.get("user"), limit=255),
            host=coerce.text(msg.get("host"), limit=255),
            command_line=command,
            work_dir=work_dir,
            project=coerce.text(msg.get("snakefile")),
            engine_version=coerce.text(msg.get("snakemake_version"), limit=64),
            config=safe(config) if config is not None else None,
            extra=extra or None,
        )
    ]


def _rulegraph(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    graph = coerce.mapping(msg.get("rulegraph"))
    if graph is None:
        return [Heartbeat(at=at)]
    return [WorkflowInfo(at=at, dag=safe(graph))]


def _workflow_finished(msg: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> list[Event]:
    reason = msg.get("reason")
    message = coerce.text(msg.get("message"))
    if reason == "nothing_to_do":
        return [WorkflowOutcome(at=at, status=WorkflowStatus.NO_EXECUTION, completed_at=at)]
    if reason == "interrupted":
        return [
            WorkflowOutcome(
                at=at,
                status=WorkflowStatus.CANCELLED,
                completed_at=at,
                error_message=message or "Interrupted by the user",
                exit_status=FAILED_EXIT_STATUS,
            )
        ]
    if msg.get("success") is True:
        return [Reconcile(at=at)]
    return [
        WorkflowOutcome(
            at=at,
            status=WorkflowStatus.ERROR,
            completed_at=at,
            error_message=message,
            exit_status=FAILED_EXIT_STATUS,
        )
    ]


def create_info(body: dict[str, Any], received_at: datetime) -> WorkflowInfo:
    """Metadata from the body Snakemake 7/8 put on ``GET /create_workflow``."""
    command = coerce.text(body.get("command"))
    overrides = config_overrides(command)
    return WorkflowInfo(
        at=received_at,
        name=default_name(coerce.text(body.get("workdir")), command),
        started_at=received_at,
        command_line=command,
        extra={"config_overrides": overrides} if overrides else None,
        work_dir=coerce.text(body.get("workdir")),
        project=coerce.text(body.get("snakefile")),
    )


_HANDLERS = {
    "info": _info,
    "progress": _progress,
    "job_started": _job_started,
    "job_info": _job_info,
    "job_finished": _job_finished,
    "job_error": _job_error,
    "error": _error,
    "shellcmd": _shellcmd,
    "workflow_success": _workflow_success,
    "workflow_started": _workflow_started,
    "rulegraph": _rulegraph,
    "workflow_finished": _workflow_finished,
    "run_info": _run_info,
}
