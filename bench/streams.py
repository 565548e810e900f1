"""The request streams, built from the recorded payloads in ``tests/data``, and the checks that
every event of a stream was stored before its numbers count.

- ``snakemake_stream``: the upstream Snakemake 9 plugin's style, one form POST to
  ``/update_workflow_status`` per event (the panoptes protocol, which panoptes-ui and the hub
  both speak);
- ``tower_stream``: Nextflow's ``-with-tower`` calls (create, begin, progress, complete);
- ``batch_stream``: our plugin's ``POST /api/snakemake/events``.

Each run is one sequence (its requests stay in order); its first request returns the id the
rest of the run uses (``loadgen.ID`` in paths and bodies).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from loadgen import ID, HttpError, Step, get_json

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"
PLACEHOLDER = ID.decode()
# nextflow-turret 0.1.0 silently drops (answers 200, stores nothing) bodies over 100 KB.
TURRET_MAX_BODY = 100_000

Checker = Callable[[str, int, dict[int, str]], list[str]]


@dataclass
class Stream:
    """Requests of one stream plus what a correct server holds afterwards."""

    name: str
    unit: str  # what ``Step.units`` counts: "events" or "task updates"
    sequences: list[list[Step]]
    runs: int
    jobs: int
    units_per_run: int
    requests_per_run: int

    @property
    def units(self) -> int:
        return self.runs * self.units_per_run


def _fixture(relative: str) -> Any:
    return json.loads((DATA / relative).read_text())


def _recorded_job_info() -> dict[str, Any]:
    """A ``job_info`` message exactly as the upstream plugin sent it."""
    for line in (DATA / "snakemake" / "panoptes_success.jsonl").read_text().splitlines():
        record = json.loads(line)
        message = record.get("msg_json") or {}
        if message.get("level") == "job_info" and message.get("shellcmd"):
            return dict(message)
    raise RuntimeError("no job_info with a shell command in panoptes_success.jsonl")


# -- Snakemake: one form POST per event --------------------------------------------------------


def _job_messages(jobs: int) -> list[tuple[str, dict[str, Any]]]:
    """(level, message) of one run: started, progress 0, then per job job_info, job_finished
    and progress, then workflow_success, as the upstream plugin sends them."""
    template = _recorded_job_info()
    messages: list[tuple[str, dict[str, Any]]] = [
        ("info", {"level": "info", "msg": "Workflow started: /home/user/project/Snakefile"}),
        ("progress", {"level": "progress", "done": 0, "total": jobs}),
    ]
    for job in range(jobs):
        sample = f"S{job:05d}"
        info = dict(
            template,
            jobid=job + 1,
            name="make_sample" if job % 2 else "process",
            output=[f"data/{sample}.txt"],
            log=[f"logs/make_sample/{sample}.log"],
            wildcards={"sample": sample},
            shellcmd=f"echo 'raw data for {sample}' > data/{sample}.txt 2> logs/{sample}.log",
            reason=f"Missing output files: data/{sample}.txt",
        )
        messages += [
            ("job_info", info),
            ("job_finished", {"level": "job_finished", "jobid": job + 1}),
            ("progress", {"level": "progress", "done": job + 1, "total": jobs}),
        ]
    messages.append(("workflow_success", {"level": "workflow_success"}))
    return messages


def snakemake_stream(runs: int, jobs: int) -> Stream:
    """``runs`` runs of ``jobs`` jobs, 3 events per job, one form POST per event."""
    timestamp = quote(time.asctime())
    bodies = []
    for _, message in _job_messages(jobs):
        fields = urlencode({"msg": json.dumps(message), "timestamp": timestamp})
        # The id goes in raw: urlencode would escape the placeholder.
        bodies.append(f"{fields}&id={PLACEHOLDER}".encode())
    sequences = []
    for run in range(runs):
        create = Step(
            "GET",
            f"/create_workflow?workflow_id=bench-{uuid.uuid4().hex[:12]}-{run}".encode(),
            capture="id",
        )
        updates = [Step("POST", b"/update_workflow_status", b, FORM, units=1) for b in bodies]
        sequences.append([create, *updates])
    return Stream(
        name="snakemake",
        unit="events",
        sequences=sequences,
        runs=runs,
        jobs=jobs,
        units_per_run=len(bodies),
        requests_per_run=len(bodies) + 1,
    )


# -- our plugin's batch route ----------------------------------------------------------------


def batch_stream(runs: int, jobs: int, batch_size: int = 200) -> Stream:
    """The same runs as events of our plugin, ``batch_size`` per request (its default)."""
    sequences = []
    units = 0
    for run in range(runs):
        run_id = uuid.uuid4().hex
        now = time.time()
        events: list[dict[str, Any]] = [
            {
                "level": "workflow_started",
                "snakefile": "/home/user/project/Snakefile",
                "command": "snakemake --cores 8 --logger panoptes",
                "workdir": "/home/user/project",
                "host": "bench",
                "user": "bench",
                "snakemake_version": "9.27.1",
                "name": f"batch-{run}",
            },
        ]
        for level, message in _job_messages(jobs)[1:-1]:
            if level == "info":
                continue
            events.append(dict(message))
        events.append(
            {"level": "workflow_finished", "success": True, "reason": "success", "message": None}
        )
        for sequence, event in enumerate(events, start=1):
            event["event_id"] = f"{run_id}:{sequence}"
            event["timestamp"] = now + sequence / 1000
        steps = [
            Step("GET", f"/create_workflow?workflow_id=batch-{run_id[:12]}".encode(), capture="id")
        ]
        for start in range(0, len(events), batch_size):
            chunk = events[start : start + batch_size]
            body = json.dumps({"workflow_id": PLACEHOLDER, "events": chunk}).encode()
            steps.append(Step("POST", b"/api/snakemake/events", body, JSON, units=len(chunk)))
        sequences.append(steps)
        units = len(events)
    return Stream(
        name="batch",
        unit="events",
        sequences=sequences,
        runs=runs,
        jobs=jobs,
        units_per_run=units,
        requests_per_run=len(sequences[0]) if sequences else 0,
    )


# -- Nextflow -with-tower --------------------------------------------------------------------


def _task(template: dict[str, Any], task_id: int, status: str) -> dict[str, Any]:
    """A task of the recorded shape; RUNNING without the fields only finished tasks carry."""
    task = copy.deepcopy(template)
    process = "ALIGN" if task_id % 2 else "CALL_VARIANTS"
    digest = uuid.uuid5(uuid.NAMESPACE_OID, str(task_id)).hex
    task.update(
        taskId=task_id,
        status=status,
        hash=f"{digest[:2]}/{digest[2:8]}",
        name=f"{process} (sample{task_id})",
        process=process,
        tag=f"sample{task_id}",
        workdir=f"/scratch/work/{digest[:2]}/{digest[2:32]}",
        script=f"\n    bwa mem ref.fa sample{task_id}_R1.fq sample{task_id}_R2.fq > out.sam\n    ",
    )
    if status != "COMPLETED":
        task["exit"] = 2147483647
        for key in (
            "complete",
            "duration",
            "realtime",
            "pcpu",
            "cpuModel",
            "rchar",
            "wchar",
            "syscr",
            "syscw",
            "readBytes",
            "writeBytes",
            "pmem",
            "vmem",
            "rss",
            "peakVmem",
            "peakRss",
            "volCtxt",
            "invCtxt",
            "errorAction",
        ):
            task.pop(key, None)
    return task


def _half(count: int, index: int) -> int:
    """The share of process ``index`` (1 or 2) of ``count`` tasks split between two."""
    return count // 2 + (count % 2 if index == 1 else 0)


def _progress(template: dict[str, Any], running: int, succeeded: int, total: int) -> dict[str, Any]:
    """Nextflow's WorkflowProgress for the state of the run."""
    progress = copy.deepcopy(template)
    pending = total - running - succeeded
    progress.update(
        pending=pending,
        submitted=0,
        running=running,
        succeeded=succeeded,
        loadCpus=running,
        peakRunning=max(running, 1),
    )
    processes = []
    for index, name in enumerate(("ALIGN", "CALL_VARIANTS"), start=1):
        entry = copy.deepcopy(template["processes"][0])
        entry.update(
            index=index,
            name=name,
            pending=_half(pending, index),
            running=_half(running, index),
            succeeded=_half(succeeded, index),
            terminated=succeeded == total,
        )
        processes.append(entry)
    progress["processes"] = processes
    return progress


def tower_stream(runs: int, tasks: int, tasks_per_call: int) -> Stream:
    """``runs`` runs of ``tasks`` tasks; each task is reported RUNNING, then COMPLETED, in
    progress calls of ``tasks_per_call`` tasks (waves of ``tasks_per_call`` tasks)."""
    modern = "tower/modern"
    create = _fixture(f"{modern}/00_create_request.json")
    begin = _fixture(f"{modern}/01_begin_request.json")
    done = _fixture(f"{modern}/03_progress_request_completed.json")
    complete = _fixture(f"{modern}/05_complete_request_success.json")
    task_template = done["tasks"][0]
    progress_template = done["progress"]
    sequences = []
    calls = 0
    for run in range(runs):
        run_name = f"bench_{uuid.uuid4().hex[:10]}_{run}"
        session = str(uuid.uuid4())
        steps = [
            Step(
                "POST",
                b"/trace/create",
                json.dumps(dict(create, runName=run_name, sessionId=session)).encode(),
                JSON,
                capture="workflowId",
            )
        ]
        workflow = dict(begin["workflow"], runName=run_name, sessionId=session, id=PLACEHOLDER)
        steps.append(
            Step(
                "PUT",
                f"/trace/{PLACEHOLDER}/begin".encode(),
                json.dumps(dict(begin, workflow=workflow)).encode(),
                JSON,
            )
        )
        succeeded = 0
        calls = 0
        for wave in range(0, tasks, tasks_per_call):
            ids = list(range(wave + 1, min(wave + tasks_per_call, tasks) + 1))
            for status in ("RUNNING", "COMPLETED"):
                for start in range(0, len(ids), tasks_per_call):
                    chunk = ids[start : start + tasks_per_call]
                    if status == "COMPLETED":
                        succeeded += len(chunk)
                    running = len(ids) if status == "RUNNING" else len(ids) - len(chunk)
                    body = {
                        "tasks": [_task(task_template, t, status) for t in chunk],
                        "progress": _progress(progress_template, running, succeeded, tasks),
                        "containers": [],
                        "instant": int(time.time() * 1000),
                    }
                    steps.append(
                        Step(
                            "PUT",
                            f"/trace/{PLACEHOLDER}/progress".encode(),
                            json.dumps(body).encode(),
                            JSON,
                            units=len(chunk),
                        )
                    )
                    calls += 1
        final = dict(
            complete["workflow"], runName=run_name, sessionId=session, id=PLACEHOLDER, success=True
        )
        body = dict(
            complete, workflow=final, progress=_progress(progress_template, 0, tasks, tasks)
        )
        steps.append(
            Step("PUT", f"/trace/{PLACEHOLDER}/complete".encode(), json.dumps(body).encode(), JSON)
        )
        sequences.append(steps)
    largest = max((len(s.body) for seq in sequences for s in seq), default=0)
    if largest > TURRET_MAX_BODY:
        raise ValueError(f"a Tower body of {largest} bytes: nextflow-turret would drop it")
    return Stream(
        name=f"tower-{tasks_per_call}",
        unit="task updates",
        sequences=sequences,
        runs=runs,
        jobs=tasks,
        units_per_run=2 * tasks,
        requests_per_run=calls + 3,
    )


# -- correctness: was everything stored? ------------------------------------------------------


def _sqlite(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def check_hub(stream: Stream, database: Path, kind: str, raw_per_run: int) -> Checker:
    """Every run Done with all its jobs Done, and ``raw_per_run`` raw events of ``kind``."""

    def check(host: str, port: int, ids: dict[int, str]) -> list[str]:
        problems = _missing_runs(stream, ids)
        with _sqlite(database) as db:
            raw = dict(
                db.execute(
                    "SELECT workflow_id, count(*) FROM raw_events WHERE kind = ? "
                    "GROUP BY workflow_id",
                    (kind,),
                ).fetchall()
            )
            done = dict(
                db.execute(
                    "SELECT w.id, count(*) FROM jobs j JOIN workflows w ON j.workflow_pk = w.pk "
                    "WHERE j.status = 'Done' GROUP BY w.id"
                ).fetchall()
            )
        for workflow_id in ids.values():
            try:
                workflow = get_json(host, port, f"/api/workflow/{workflow_id}")["workflow"]
            except (OSError, HttpError, KeyError, ValueError) as error:
                problems.append(f"{workflow_id}: {error}")
                continue
            wanted = ("Done", stream.jobs, stream.jobs)
            got = (workflow["status"], workflow["jobs_done"], workflow["jobs_total"])
            if got != wanted:
                problems.append(f"{workflow_id}: status, done, total {got}, not {wanted}")
            if done.get(workflow_id, 0) != stream.jobs:
                problems.append(f"{workflow_id}: {done.get(workflow_id, 0)} Done job rows")
            if raw.get(workflow_id, 0) != raw_per_run:
                problems.append(
                    f"{workflow_id}: {raw.get(workflow_id, 0)} raw {kind} events, not {raw_per_run}"
                )
        return problems

    return check


def check_panoptes_ui(stream: Stream) -> Checker:
    """panoptes-ui keeps no raw events: every job row Done and the run Done at jobs/jobs."""

    def check(host: str, port: int, ids: dict[int, str]) -> list[str]:
        problems = _missing_runs(stream, ids)
        for workflow_id in ids.values():
            try:
                workflow = get_json(host, port, f"/api/workflow/{workflow_id}")["workflow"]
                jobs = get_json(host, port, f"/api/workflow/{workflow_id}/jobs")["jobs"]
            except (OSError, HttpError, KeyError, ValueError) as error:
                problems.append(f"{workflow_id}: {error}")
                continue
            wanted = ("Done", stream.jobs, stream.jobs)
            got = (workflow["status"], workflow["jobs_done"], workflow["jobs_total"])
            if got != wanted:
                problems.append(f"{workflow_id}: status, done, total {got}, not {wanted}")
            finished = sum(1 for job in jobs if job["status"] == "Done")
            if (len(jobs), finished) != (stream.jobs, stream.jobs):
                problems.append(f"{workflow_id}: {len(jobs)} job rows, {finished} Done")
        return problems

    return check


def check_turret(stream: Stream) -> Checker:
    """nextflow-turret keeps counters only: the run complete with every task succeeded."""

    def check(host: str, port: int, ids: dict[int, str]) -> list[str]:
        problems = _missing_runs(stream, ids)
        for workflow_id in ids.values():
            try:
                run = get_json(host, port, f"/api/runs/{workflow_id}")
            except (OSError, HttpError, ValueError) as error:
                problems.append(f"{workflow_id}: {error}")
                continue
            succeeded = (run.get("task_counts") or {}).get("succeeded")
            if not run.get("complete") or succeeded != stream.jobs:
                problems.append(
                    f"{workflow_id}: complete={run.get('complete')}, succeeded={succeeded}"
                )
        return problems

    return check


def check_floor(stream: Stream, database: Path) -> Checker:
    """The floor stores one row per request: every request of the pass stored. Made before
    the pass, so it counts only the rows the pass adds."""

    def count() -> int:
        if not database.exists():
            return 0
        with _sqlite(database) as db:
            return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])

    before = count()

    def check(host: str, port: int, ids: dict[int, str]) -> list[str]:
        problems = _missing_runs(stream, ids)
        stored, sent = count() - before, stream.runs * stream.requests_per_run
        if stored != sent:
            problems.append(f"{stored} of {sent} requests stored")
        return problems

    return check


def check_nothing(stream: Stream) -> Checker:
    """The ceiling stores nothing; only every request must have been answered."""

    def check(host: str, port: int, ids: dict[int, str]) -> list[str]:
        return _missing_runs(stream, ids)

    return check


def _missing_runs(stream: Stream, ids: dict[int, str]) -> list[str]:
    if len(ids) == stream.runs:
        return []
    return [f"{stream.runs - len(ids)} of {stream.runs} runs got no id at create"]
