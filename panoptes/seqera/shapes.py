"""Runs, launches and jobs in the shapes of Seqera Platform's API (field names as its OpenAPI
document has them). Pure functions over rows already loaded: no queries here.

A run launched by the hub is the pair (launch, run): the launch alone until the engine reports,
then both. Snakemake runs take the same shapes: a rule is a process, a job is a task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..launcher.models import CANCELLED, FAILED, FINISHED, LOST, SUCCEEDED, Launch
from ..models import Job, Workflow, utcnow

SUBMITTED, RUNNING = "SUBMITTED", "RUNNING"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "UNKNOWN")
STATUSES = (SUBMITTED, RUNNING, *TERMINAL)

_LAUNCH_OUTCOME = {
    SUCCEEDED: "SUCCEEDED",
    FAILED: "FAILED",
    CANCELLED: "CANCELLED",
    LOST: "UNKNOWN",
}
_RUN_STATUS = {
    "Running": RUNNING,
    "Stale": "UNKNOWN",
    "Done": "SUCCEEDED",
    "No Execution": "SUCCEEDED",
    "Error": "FAILED",
    "Cancelled": "CANCELLED",
}
TASK_STATUS = {
    "Pending": "NEW",
    "Submitted": "SUBMITTED",
    "Running": "RUNNING",
    "Done": "COMPLETED",
    "Error": "FAILED",
    # A task whose errorAction was IGNORE: Nextflow reports it FAILED, and so does Seqera.
    "Ignored": "FAILED",
    "Cached": "CACHED",
    "Aborted": "ABORTED",
}
# Extra fields the Nextflow normaliser keeps on a run, under their Seqera names.
_RUN_EXTRA = (
    "profile",
    "commitId",
    "scriptId",
    "scriptName",
    "configFiles",
    "manifest",
    "projectDir",
    "homeDir",
    "container",
    "repository",
    "containerEngine",
    "scriptFile",
    "launchDir",
)
# Extra fields the Nextflow normaliser keeps on a task: Seqera name -> stored name.
_TASK_EXTRA = {
    "hash": "hash",
    "nativeId": "native_id",
    "executor": "executor",
    "queue": "queue",
    "container": "container",
    "errorAction": "error_action",
    "pmem": "pmem",
    "rss": "rss",
    "vmem": "vmem",
    "peakVmem": "peak_vmem",
    "readBytes": "storage_read_bytes",
    "writeBytes": "storage_write_bytes",
    "disk": "disk_bytes",
    "cloudZone": "cloud_zone",
    "machineType": "machine_type",
    "priceModel": "price_model",
    "scratch": "scratch",
    "env": "env",
}


def when(value: datetime | None) -> str | None:
    """A time as Seqera writes it: ISO 8601 in UTC with ``Z``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(int((end - start).total_seconds() * 1000), 0)


def status(run: Workflow | None, run_status: str | None, launch: Launch | None) -> str:
    """The Seqera status of a run (``run_status``: its status as read, Stale included) and
    of the launch behind it. While the launch's head job runs nothing is terminal: the run's
    own end is told when the engine has exited, as Platform does."""
    if launch is not None and launch.status not in FINISHED:
        return SUBMITTED if run is None else RUNNING
    if run is None or run_status is None:
        return _LAUNCH_OUTCOME.get(launch.status, "UNKNOWN") if launch is not None else "UNKNOWN"
    mapped = _RUN_STATUS.get(run_status, "UNKNOWN")
    if launch is None:
        if run_status == "Error" and run.completed_at is None:
            return RUNNING  # Snakemake keeps going after a failed job until it ends
        return mapped
    # The head job has ended: the engine's report, else what became of the head job.
    if launch.status == CANCELLED and mapped != "SUCCEEDED":
        return "CANCELLED"
    if mapped in ("RUNNING", "UNKNOWN"):
        return _LAUNCH_OUTCOME.get(launch.status, "UNKNOWN")
    return mapped


def _extra(run: Workflow | None) -> Mapping[str, Any]:
    extra = run.extra if run is not None else None
    return extra if isinstance(extra, Mapping) else {}


def _ints(values: Iterable[Any]) -> int:
    return sum(int(value) for value in values if isinstance(value, int | float))


def stats(run: Workflow | None) -> dict[str, Any] | None:
    """``WfStats``: what Nextflow reported at completion, else counts from the job rows."""
    if run is None:
        return None
    stored = run.stats if isinstance(run.stats, Mapping) else {}
    succeeded, failed, cached = run.n_done, run.n_error, run.n_cached
    counted = succeeded + failed + cached
    derived: dict[str, Any] = {
        "succeedCount": succeeded,
        "failedCount": failed,
        "cachedCount": cached,
        "ignoredCount": 0,
        "succeedCountFmt": f"{succeeded:,}",
        "failedCountFmt": f"{failed:,}",
        "cachedCountFmt": f"{cached:,}",
        "ignoredCountFmt": "0",
        "succeedPct": round(100.0 * succeeded / counted, 2) if counted else 0.0,
        "failedPct": round(100.0 * failed / counted, 2) if counted else 0.0,
        "cachedPct": round(100.0 * cached / counted, 2) if counted else 0.0,
        "ignoredPct": 0.0,
    }
    return {**derived, **{k: v for k, v in stored.items() if isinstance(k, str)}}


def workflow(
    run: Workflow | None,
    run_status: str | None,
    launch: Launch | None,
    *,
    error_fallback: str | None = None,
) -> dict[str, Any]:
    """``Workflow``: a run, a launch, or both."""
    extra = _extra(run)
    seqera_status = status(run, run_status, launch)
    terminal = seqera_status in TERMINAL
    submit = launch.submitted_at if launch is not None else (run.created_at if run else None)
    start = run.started_at if run is not None else (launch.started_at if launch else None)
    complete = None
    if terminal:
        complete = (run.completed_at if run is not None else None) or (
            launch.finished_at if launch is not None else None
        )
    end = complete or (utcnow() if start is not None and not terminal else None)
    params = run.params if run is not None and run.params is not None else None
    config_text = None
    if run is not None and isinstance(run.config, str):
        config_text = run.config
    elif run is not None and isinstance(run.config, Mapping) and params is None:
        params = dict(run.config)  # Snakemake's configuration is its parameters
    if params is None and launch is not None:
        params = launch.params
    if config_text is None and launch is not None:
        config_text = launch.config_text
    error_message = run.error_message if run is not None else None
    if seqera_status in ("FAILED", "UNKNOWN") and not error_message:
        error_message = (launch.error if launch is not None else None) or error_fallback
    exit_status = run.exit_status if run is not None else None
    if exit_status is None and launch is not None:
        exit_status = launch.exit_code
    engine = run.engine if run is not None else (launch.engine if launch else "nextflow")
    resume = extra.get("resume")
    return {
        "id": run.id if run is not None else launch.workflow_id if launch else None,
        "submit": when(submit),
        "start": when(start),
        "complete": when(complete),
        "dateCreated": when(submit),
        "lastUpdated": when(
            max(
                (t for t in (run.updated_at if run else None, _launch_updated(launch)) if t),
                default=None,
            )
        ),
        "runName": (run.name if run is not None else None)
        or (launch.run_name if launch is not None else None)
        or (launch.id if launch is not None else ""),
        "sessionId": run.session_id if run is not None else None,
        "profile": extra.get("profile") or (launch.profile if launch is not None else None),
        "workDir": (run.work_dir if run is not None else None)
        or (launch.work_dir if launch is not None else None),
        "commitId": extra.get("commitId"),
        "userName": (run.user if run is not None else None)
        or (launch.requested_by if launch is not None else None),
        "scriptId": extra.get("scriptId"),
        "revision": (run.revision if run is not None else None)
        or (launch.revision if launch is not None else None),
        "commandLine": run.command_line if run is not None else None,
        "projectName": (run.project if run is not None else None)
        or (launch.pipeline if launch is not None else None),
        "scriptName": extra.get("scriptName"),
        "launchId": launch.id if launch is not None else None,
        "status": seqera_status,
        "requiresAttention": False,
        "configFiles": extra.get("configFiles"),
        "params": params if isinstance(params, Mapping) else None,
        "configText": config_text,
        "manifest": extra.get("manifest"),
        "nextflow": (
            {"version": run.engine_version}
            if engine == "nextflow" and run is not None and run.engine_version
            else None
        ),
        "stats": stats(run),
        "errorMessage": error_message,
        "errorReport": run.error_report if run is not None else None,
        "deleted": False,
        **_peaks(run),
        "projectDir": extra.get("projectDir"),
        "homeDir": extra.get("homeDir"),
        "container": extra.get("container"),
        "repository": extra.get("repository"),
        "containerEngine": extra.get("containerEngine"),
        "scriptFile": extra.get("scriptFile"),
        "launchDir": extra.get("launchDir"),
        "duration": _ms(start, end),
        "exitStatus": exit_status,
        "resume": bool(resume) if resume is not None else bool(launch and launch.resume),
        "success": (True if seqera_status == "SUCCEEDED" else False if terminal else None),
        "logFile": None,
        "outFile": None,
        "operationId": launch.slurm_job_id if launch is not None else None,
        "ownerId": None,
        # Not in Seqera's schema: which engine ran it (nextflow, snakemake, ...).
        "engine": engine,
    }


def _peaks(run: Workflow | None) -> dict[str, Any]:
    """The peak load Nextflow reported (0 before, and for other engines)."""
    detail = run.progress_detail if run is not None else None
    detail = detail if isinstance(detail, Mapping) else {}

    def peak(key: str) -> int:
        value = detail.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    return {
        "peakLoadCpus": peak("peakCpus"),
        "peakLoadTasks": peak("peakTasks"),
        "peakLoadMemory": peak("peakMemory"),
    }


def _launch_updated(launch: Launch | None) -> datetime | None:
    if launch is None:
        return None
    times = (launch.finished_at, launch.heartbeat_at, launch.started_at, launch.submitted_at)
    return max((t for t in times if t is not None), default=None)


_LOAD_KEYS = (
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
)
_COUNT_KEYS = ("pending", "submitted", "running", "succeeded", "failed", "cached")
# Job status -> the WorkflowLoad counter it adds to.
_COUNTER = {
    "Pending": "pending",
    "Submitted": "submitted",
    "Running": "running",
    "Done": "succeeded",
    "Error": "failed",
    "Ignored": "failed",
    "Cached": "cached",
}


def _empty_load() -> dict[str, Any]:
    return dict.fromkeys((*_LOAD_KEYS, *_COUNT_KEYS), 0)


def _efficiency(load: Mapping[str, Any]) -> tuple[float, float]:
    cpu_time, cpu_load = load["cpuTime"], load["cpuLoad"]
    memory_req, memory_rss = load["memoryReq"], load["memoryRss"]
    cpu = round(100.0 * cpu_load / cpu_time, 6) if cpu_time else 0.0
    memory = round(100.0 * memory_rss / memory_req, 6) if memory_req else 0.0
    return cpu, memory


def progress(
    run: Workflow | None, groups: Sequence[Mapping[str, Any]], aborted: bool = False
) -> dict[str, Any]:
    """``ProgressData`` from per-(process, status) sums of the job rows (``groups``: name,
    status, n, cpus, memory, rss, cpu_time, cpu_load, reads, writes)."""
    processes: dict[str, dict[str, Any]] = {}
    total = _empty_load()
    for group in groups:
        name = str(group["name"] or "")
        load = processes.setdefault(name, {"process": name, **_empty_load()})
        counter = _COUNTER.get(str(group["status"]))
        n = int(group["n"] or 0)
        for target in (load, total):
            if counter:
                target[counter] += n
            target["cpus"] += int(group["cpus"] or 0)
            target["memoryReq"] += int(group["memory"] or 0)
            target["memoryRss"] += int(group["rss"] or 0)
            target["cpuTime"] += int(group["cpu_time"] or 0)
            target["cpuLoad"] += int(group["cpu_load"] or 0)
            target["readBytes"] += int(group["reads"] or 0)
            target["writeBytes"] += int(group["writes"] or 0)
            if group["status"] == "Running":
                target["loadTasks"] += n
                target["loadCpus"] += int(group["cpus"] or 0)
                target["loadMemory"] += int(group["memory"] or 0)
    for load in (*processes.values(), total):
        load["peakTasks"] = max(load["peakTasks"], load["loadTasks"])
        load["peakCpus"] = max(load["peakCpus"], load["loadCpus"])
        load["peakMemory"] = max(load["peakMemory"], load["loadMemory"])
        load["cpuEfficiency"], load["memoryEfficiency"] = _efficiency(load)
        load["dateCreated"] = when(run.created_at) if run is not None else None
        load["lastUpdated"] = when(run.updated_at) if run is not None else None
    if run is not None:
        # The engine's own counters win where it reports them (Nextflow's WorkflowLoad).
        detail = run.progress_detail if isinstance(run.progress_detail, Mapping) else {}
        for key in (*_LOAD_KEYS, *_COUNT_KEYS):
            value = detail.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = value
        if not groups:
            total.update(
                pending=run.n_pending,
                submitted=run.n_submitted,
                running=run.n_running,
                succeeded=run.n_done,
                failed=run.n_error,
                cached=run.n_cached,
            )
        total["cpuEfficiency"], total["memoryEfficiency"] = _efficiency(total)
    total["cost"] = None
    total["executors"] = _executors(run)
    total["aborted"] = 1 if aborted else 0
    return {
        "workflowProgress": total,
        "processesProgress": sorted(processes.values(), key=lambda load: load["process"]),
        "totalProcesses": len(processes),
    }


def _executors(run: Workflow | None) -> list[str] | None:
    if run is None:
        return None
    detail = run.progress_detail if isinstance(run.progress_detail, Mapping) else {}
    executors = detail.get("executors")
    if isinstance(executors, list):
        return [str(item) for item in executors]
    return ["local"] if run.engine == "snakemake" else None


def task_id(job: Job) -> int:
    """A task's number: the engine's (Nextflow taskId, Snakemake jobid) when it is one, else
    the row's."""
    key = job.job_key
    return int(key) if key.isdigit() and len(key) < 18 else job.pk


def task(job: Job) -> dict[str, Any]:
    """``Task``: a Nextflow task or a Snakemake job."""
    extra = job.extra if isinstance(job.extra, Mapping) else {}
    name = extra.get("task_name") or (f"{job.name} ({job.tag})" if job.tag else job.name)
    module = extra.get("module")
    duration = extra.get("duration_ms")
    if not isinstance(duration, int):
        duration = _ms(job.submitted_at, job.completed_at)
    shaped: dict[str, Any] = {
        "id": job.pk,
        "taskId": task_id(job),
        "status": TASK_STATUS.get(job.status, "NEW"),
        "name": name,
        "process": job.name,
        "tag": job.tag,
        "submit": when(job.submitted_at),
        "start": when(job.started_at),
        "complete": when(job.completed_at),
        "module": module if isinstance(module, list) else [],
        "attempt": job.attempt,
        "script": job.command,
        "workdir": job.work_dir,
        "cpus": job.cpus,
        "memory": job.memory_bytes,
        "time": job.time_ms,
        "exitStatus": job.exit_code,
        "exit": job.exit_code,
        "duration": duration,
        "realtime": job.realtime_ms,
        "pcpu": job.pcpu,
        "peakRss": job.peak_rss,
        "rchar": job.read_bytes,
        "wchar": job.write_bytes,
        "syscr": None,
        "syscw": None,
        "volCtxt": None,
        "invCtxt": None,
        "cost": None,
        "dateCreated": when(job.submitted_at or job.started_at or job.updated_at),
        "lastUpdated": when(job.updated_at),
    }
    for seqera_name, stored in _TASK_EXTRA.items():
        shaped[seqera_name] = extra.get(stored)
    if shaped["nativeId"] is not None:
        shaped["nativeId"] = str(shaped["nativeId"])  # a pid or a scheduler's job id
    return shaped


# -- metrics: per-process quartiles ----------------------------------------------------------

METRIC_COLUMNS = ("pcpu", "peak_rss", "peak_vmem", "realtime_ms", "read_bytes", "write_bytes")


def resource_data(values: Sequence[tuple[float, str]]) -> dict[str, Any] | None:
    """``ResourceData``: mean, min, quartiles and max of (value, task name) pairs, each
    quartile labelled with the task that has it (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values, key=lambda pair: pair[0])
    last = len(ordered) - 1

    def at(fraction: float) -> tuple[float, str]:
        return ordered[round(fraction * last)]

    def number(value: float) -> float | int:
        return int(value) if float(value).is_integer() else round(value, 4)

    q1, q2, q3 = at(0.25), at(0.5), at(0.75)
    mean = sum(value for value, _ in ordered) / len(ordered)
    return {
        "mean": number(round(mean, 4)),
        "min": number(ordered[0][0]),
        "q1": number(q1[0]),
        "q2": number(q2[0]),
        "q3": number(q3[0]),
        "max": number(ordered[-1][0]),
        "minLabel": ordered[0][1],
        "maxLabel": ordered[-1][1],
        "q1Label": q1[1],
        "q2Label": q2[1],
        "q3Label": q3[1],
        "warnings": [],
    }


def metrics(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``WorkflowMetrics`` per process from finished jobs' rows (name, label, cpus, memory,
    time, pcpu, peak_rss, peak_vmem, realtime_ms, read_bytes, write_bytes)."""
    by_process: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for row in rows:
        series = by_process.setdefault(str(row["name"] or ""), {})
        label = str(row["label"])

        def add(key: str, value: Any, series: dict[str, list[tuple[float, str]]] = series) -> None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(key, []).append((float(value), label))  # noqa: B023

        add("cpu", row["pcpu"])
        add("mem", row["peak_rss"])
        add("vmem", row["peak_vmem"])
        add("time", row["realtime_ms"])
        add("reads", row["read_bytes"])
        add("writes", row["write_bytes"])
        cpus, memory, time = row["cpus"], row["memory"], row["time"]
        if isinstance(row["pcpu"], int | float) and cpus:
            add("cpuUsage", row["pcpu"] / cpus)
        if isinstance(row["peak_rss"], int | float) and memory:
            add("memUsage", 100.0 * row["peak_rss"] / memory)
        if isinstance(row["realtime_ms"], int | float) and time:
            add("timeUsage", 100.0 * row["realtime_ms"] / time)
    keys = ("cpu", "mem", "vmem", "time", "reads", "writes", "cpuUsage", "memUsage", "timeUsage")
    return [
        {
            "id": index,
            "process": process,
            **{key: resource_data(series.get(key, [])) for key in keys},
        }
        for index, (process, series) in enumerate(sorted(by_process.items()), start=1)
    ]
