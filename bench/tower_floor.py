"""The floor of storing Tower progress calls in the hub's SQLite schema, without the hub.

    python bench/tower_floor.py [--runs 20] [--tasks-per-call 50]

For each recorded-shape progress call of the Tower stream (``streams.tower_stream``): parse
the body, insert its text as the raw event, upsert one row per task with the values as they
come (no status rules, no type conversions, one ``executemany``), update the run's progress,
commit. No Flask, no SQLAlchemy at run time, no gunicorn. Whatever the hub does per task update
costs at least this much on this machine; bench/PROFILES.md compares it with the budget a
target leaves.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path

import streams

from panoptes import create_app
from panoptes.migrations_runner import upgrade

_UPSERT = """
INSERT INTO jobs (workflow_pk, job_key, status, attempt, name, tag, submitted_at, started_at,
    completed_at, exit_code, command, work_dir, cpus, memory_bytes, realtime_ms, pcpu, peak_rss,
    extra, updated_at)
VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_pk, job_key) DO UPDATE SET status = excluded.status,
    completed_at = excluded.completed_at, exit_code = excluded.exit_code,
    realtime_ms = excluded.realtime_ms, pcpu = excluded.pcpu, peak_rss = excluded.peak_rss,
    extra = excluded.extra, updated_at = excluded.updated_at
"""
_STATUS = {"RUNNING": "Running", "COMPLETED": "Done"}
_NOW = "2026-11-22 06:00:00.000000"


def _database(folder: Path) -> tuple[sqlite3.Connection, int]:
    """A migrated hub database with one run; the connection and the run's key."""
    settings = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'hub.db'}",
        "SECRET_KEY": secrets.token_hex(32),
    }
    upgrade(create_app(settings))
    connection = sqlite3.connect(folder / "hub.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # as the hub sets it
    connection.execute(
        "INSERT INTO workflows (id, engine, name, status, name_locked, created_at, started_at,"
        " updated_at, n_pending, n_submitted, n_running, n_done, n_error, n_cached, n_aborted)"
        " VALUES ('floor', 'nextflow', 'floor', 'Running', 0, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0)",
        (_NOW, _NOW, _NOW),
    )
    (run_pk,) = connection.execute("SELECT pk FROM workflows WHERE id = 'floor'").fetchone()
    return connection, run_pk


def measure(runs: int, tasks_per_call: int) -> tuple[int, float]:
    """Task updates stored and seconds taken."""
    stream = streams.tower_stream(runs, 200, tasks_per_call)
    calls = [
        (run, step.body)
        for run, sequence in enumerate(stream.sequences)
        for step in sequence
        if step.path.endswith(b"/progress")
    ]
    with tempfile.TemporaryDirectory() as scratch:
        connection, run_pk = _database(Path(scratch))
        stored = 0
        started = time.perf_counter()
        for run, raw in calls:
            body = json.loads(raw)
            rows = [
                (
                    run_pk,
                    f"{run}:{task['taskId']}",
                    _STATUS.get(task["status"], "Pending"),
                    task.get("process"),
                    task.get("tag"),
                    task.get("submit"),
                    task.get("start"),
                    task.get("complete"),
                    task.get("exit"),
                    task.get("script"),
                    task.get("workdir"),
                    task.get("cpus"),
                    task.get("memory"),
                    task.get("realtime"),
                    task.get("pcpu"),
                    task.get("peakRss"),
                    json.dumps({"hash": task.get("hash"), "native_id": task.get("nativeId")}),
                    _NOW,
                )
                for task in body["tasks"]
            ]
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO raw_events (engine, kind, workflow_id, received_at, body)"
                " VALUES ('nextflow', 'progress', 'floor', ?, ?)",
                (_NOW, raw.decode()),
            )
            connection.executemany(_UPSERT, rows)
            connection.execute(
                "UPDATE workflows SET progress_detail = ?, updated_at = ? WHERE pk = ?",
                (json.dumps(body["progress"]), _NOW, run_pk),
            )
            connection.execute("COMMIT")
            stored += len(rows)
        elapsed = time.perf_counter() - started
        (jobs,) = connection.execute("SELECT count(*) FROM jobs").fetchone()
        connection.close()
    if jobs != runs * stream.jobs:
        raise RuntimeError(f"{jobs} job rows stored, {runs * stream.jobs} expected")
    return stored, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks-per-call", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many passes")
    args = parser.parse_args()
    passes = [measure(args.runs, args.tasks_per_call) for _ in range(args.repeat)]
    stored, elapsed = min(passes, key=lambda p: p[1])
    print(
        f"{stored} task updates in {args.tasks_per_call}-task calls: "
        f"{elapsed / stored * 1e6:.1f} µs per task update (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
