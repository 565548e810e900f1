"""Nextflow ``-with-tower`` trace bodies to schema events.

``parse(kind, body, received_at)`` with kind one of ``create``, ``begin``, ``progress``,
``heartbeat``, ``complete``. See ../shared/protocols/TOWER.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import coerce
from .schema import (
    Event,
    Heartbeat,
    JobStatus,
    JobUpdate,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)

KINDS = ("create", "begin", "progress", "heartbeat", "complete")
# Java's Integer.MAX_VALUE: the task has not finished.
EXIT_NOT_FINISHED = 2**31 - 1

_TASK_STATUS = {
    "NEW": JobStatus.PENDING,
    "SUBMITTED": JobStatus.SUBMITTED,
    "RUNNING": JobStatus.RUNNING,
    "COMPLETED": JobStatus.DONE,
    "FAILED": JobStatus.ERROR,
    "ABORTED": JobStatus.ABORTED,
    "CACHED": JobStatus.CACHED,
}
# Task keys kept in the job's ``extra`` column, under snake_case names.
_TASK_EXTRA = {
    "name": "task_name",
    "hash": "hash",
    "nativeId": "native_id",
    "executor": "executor",
    "queue": "queue",
    "container": "container",
    "errorAction": "error_action",
    "hostname": "hostname",
    "duration": "duration_ms",
    "pmem": "pmem",
    "rss": "rss",
    "vmem": "vmem",
    "peakVmem": "peak_vmem",
    "readBytes": "storage_read_bytes",
    "writeBytes": "storage_write_bytes",
    "disk": "disk_bytes",
    "cpuModel": "cpu_model",
    "cloudZone": "cloud_zone",
    "machineType": "machine_type",
    "priceModel": "price_model",
    "module": "module",
    "scratch": "scratch",
    "env": "env",
}
_WORKFLOW_EXTRA = (
    "launchDir",
    "projectDir",
    "scriptFile",
    "scriptName",
    "scriptId",
    "repository",
    "commitId",
    "profile",
    "configFiles",
    "container",
    "containerEngine",
    "resume",
    "stubRun",
    "outputDir",
    "homeDir",
    "manifest",
    "wave",
    "fusion",
)


def parse(kind: str, body: Any, received_at: datetime) -> list[Event]:
    """Events for one trace request. Never raises on a dict body."""
    if not isinstance(body, dict):
        return [Heartbeat(at=received_at)]
    safe = coerce.json_safe
    at = coerce.epoch_millis(body.get("instant")) or received_at
    if kind == "create":
        return [_create_info(body, at, safe)]
    events: list[Event] = []
    workflow = body.get("workflow")
    if kind in ("begin", "complete") and isinstance(workflow, dict):
        events.append(_workflow_info(workflow, body, at, safe))
    if kind == "progress":
        tasks = body.get("tasks")
        if isinstance(tasks, list):
            events.extend(update for t in tasks if (update := _task(t, at, safe)) is not None)
    progress = _progress(body.get("progress"), at, safe)
    if progress is not None:
        events.append(progress)
    if kind == "complete":
        events.append(_outcome(workflow if isinstance(workflow, dict) else {}, body, at, safe))
    return events or [Heartbeat(at=at)]


def _create_info(body: dict[str, Any], at: datetime, safe: coerce.SafeJson) -> WorkflowInfo:
    extra = {key: safe(body[key]) for key in ("repository",) if body.get(key) is not None}
    return WorkflowInfo(
        at=at,
        name=coerce.text(body.get("runName"), limit=255),
        started_at=at,
        project=coerce.text(body.get("projectName"), limit=1000),
        session_id=coerce.text(body.get("sessionId"), limit=64),
        extra=extra or None,
    )


def _workflow_info(
    workflow: dict[str, Any], body: dict[str, Any], at: datetime, safe: coerce.SafeJson
) -> WorkflowInfo:
    nextflow = coerce.mapping(workflow.get("nextflow")) or {}
    manifest = coerce.mapping(workflow.get("manifest")) or {}
    extra = {
        key: safe(workflow[key])
        for key in _WORKFLOW_EXTRA
        if workflow.get(key) not in (None, [], {})
    }
    process_names = body.get("processNames")
    if isinstance(process_names, list):
        extra["processNames"] = coerce.str_list(process_names)
    params = workflow.get("params")
    return WorkflowInfo(
        at=at,
        name=coerce.text(workflow.get("runName"), limit=255),
        started_at=coerce.iso_datetime(workflow.get("start")),
        user=coerce.text(workflow.get("userName"), limit=255),
        command_line=coerce.text(workflow.get("commandLine")),
        work_dir=coerce.text(workflow.get("workDir")),
        project=coerce.text(
            workflow.get("projectName") or manifest.get("name") or workflow.get("repository"),
            limit=1000,
        ),
        revision=coerce.text(workflow.get("revision") or workflow.get("commitId"), limit=255),
        engine_version=coerce.text(nextflow.get("version"), limit=64),
        session_id=coerce.text(workflow.get("sessionId"), limit=64),
        params=safe(params) if params is not None else None,
        config=coerce.text(workflow.get("configText")),
        dag=safe(body["dag"]) if isinstance(body.get("dag"), dict) else None,
        extra=extra or None,
    )


def task_status(raw_status: Any, error_action: Any) -> JobStatus | None:
    """The job status for a Tower task status. A task that ended with an ``errorAction``
    failed; Nextflow's ``IGNORE`` says the run carries on without it: Ignored."""
    status = _TASK_STATUS.get(raw_status) if isinstance(raw_status, str) else None
    if status in (JobStatus.DONE, JobStatus.ERROR) and error_action:
        return JobStatus.IGNORED if error_action == "IGNORE" else JobStatus.ERROR
    return status


def _task(task: Any, at: datetime, safe: coerce.SafeJson) -> JobUpdate | None:
    if not isinstance(task, dict):
        return None
    get = task.get
    task_id = coerce.integer(get("taskId"))
    if task_id is None:
        return None
    exit_code = coerce.integer(get("exit"), coerce.INT32_MAX)
    if exit_code == EXIT_NOT_FINISHED:
        exit_code = None
    extra = {}
    for key, name in _TASK_EXTRA.items():
        value = get(key)
        if value is not None and value != "" and value != []:
            extra[name] = safe(value)
    fields: dict[str, Any] = {
        "name": coerce.text(get("process"), limit=255),
        "tag": coerce.text(get("tag"), limit=255),
        "submitted_at": coerce.iso_datetime(get("submit")),
        "started_at": coerce.iso_datetime(get("start")),
        "completed_at": coerce.iso_datetime(get("complete")),
        "exit_code": exit_code,
        "command": coerce.text(get("script")),
        "work_dir": coerce.text(get("workdir")),
        "attempt": coerce.integer(get("attempt"), coerce.INT32_MAX),
        "cpus": coerce.integer(get("cpus"), coerce.INT32_MAX),
        "memory_bytes": coerce.integer(get("memory")),
        "time_ms": coerce.integer(get("time")),
        "realtime_ms": coerce.integer(get("realtime")),
        "pcpu": coerce.number(get("pcpu")),
        "peak_rss": coerce.integer(get("peakRss")),
        "read_bytes": coerce.integer(get("rchar")),
        "write_bytes": coerce.integer(get("wchar")),
        "extra": extra or None,
    }
    return JobUpdate(
        at=at,
        key=str(task_id),
        status=task_status(get("status"), get("errorAction")),
        fields={k: v for k, v in fields.items() if v is not None},
    )


def _progress(progress: Any, at: datetime, safe: coerce.SafeJson) -> WorkflowProgress | None:
    if not isinstance(progress, dict):
        return None
    counts = {
        key: coerce.integer(progress.get(key), coerce.INT32_MAX) or 0
        for key in ("pending", "submitted", "running", "succeeded", "cached", "failed", "retries")
    }
    total = (
        counts["pending"]
        + counts["submitted"]
        + counts["running"]
        + counts["succeeded"]
        + counts["cached"]
        + counts["failed"]
        - counts["retries"]
    )
    return WorkflowProgress(
        at=at,
        done=counts["succeeded"] + counts["cached"],
        total=max(total, 0),
        detail=safe(progress),
    )


def final_counts(stats: Any) -> tuple[int, int] | None:
    """(total, done) from ``workflow.stats`` at the end of a run: every task that ended
    (succeeded, cached, failed, ignored) and those that succeeded or were cached."""
    if not isinstance(stats, dict):
        return None
    counts = {
        key: coerce.integer(stats.get(key), coerce.INT32_MAX)
        for key in ("succeedCount", "cachedCount", "failedCount", "ignoredCount")
    }
    if all(value is None for value in counts.values()):
        return None
    done = (counts["succeedCount"] or 0) + (counts["cachedCount"] or 0)
    return done + (counts["failedCount"] or 0) + (counts["ignoredCount"] or 0), done


def _outcome(
    workflow: dict[str, Any], body: dict[str, Any], at: datetime, safe: coerce.SafeJson
) -> WorkflowOutcome:
    success = workflow.get("success") is True
    return WorkflowOutcome(
        at=at,
        status=WorkflowStatus.DONE if success else WorkflowStatus.ERROR,
        completed_at=coerce.iso_datetime(workflow.get("complete")) or at,
        error_message=None if success else coerce.text(workflow.get("errorMessage")),
        error_report=None if success else coerce.text(workflow.get("errorReport")),
        exit_status=coerce.integer(workflow.get("exitStatus"), coerce.INT32_MAX),
        stats=safe(workflow["stats"]) if isinstance(workflow.get("stats"), dict) else None,
        metrics=safe(body["metrics"]) if isinstance(body.get("metrics"), list) else None,
        final_counts=final_counts(workflow.get("stats")),
    )
