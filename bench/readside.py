"""The read side: a database with many runs and one very large run, then timed page loads.

Each server's database is filled the same way: a few template runs go in through the server's
own ingestion routes (so every row is one the server itself wrote), then SQL copies those rows
until the database holds ``runs`` runs and one run of ``jobs`` jobs. Copying rows instead of
sending 100,000 more events keeps the set-up to seconds; the pages read the same rows either
way. The filled databases are kept in the cache, keyed on the schema and the sizes.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lag
import loadgen
import streams
from servers import CACHE, HOST, PANOPTES_UI_VERSION, REPO, TURRET_VERSION, Server

TEMPLATE_JOBS = 200  # jobs of the large run sent through the routes; the rest are copies
SMALL_RUN_JOBS = 10  # jobs of each of the other runs


@dataclass
class PageResult:
    """Timings of one page on one server."""

    server: str
    page: str
    path: str
    latencies: list[float] = field(default_factory=list)
    status: int = 0
    size: int = 0
    note: str = ""

    def percentile(self, q: float) -> float:
        result = loadgen.RunResult(latencies=self.latencies)
        return result.percentile(q)


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, bool]]:
    """(column, is the rowid alias) for each column of ``table``."""
    rows = db.execute(f'PRAGMA table_info("{table}")').fetchall()
    return [(row[1], bool(row[5]) and str(row[2]).upper() == "INTEGER") for row in rows]


def clone_rows(
    db: sqlite3.Connection,
    table: str,
    where: str,
    copies: int,
    overrides: dict[str, str],
    params: tuple[object, ...] = (),
    join: str = "",
) -> None:
    """Insert ``copies`` copies of the rows of ``table`` matching ``where`` (as ``t``), with
    ``overrides`` (column -> SQL expression over ``t``, ``n.i`` = 1..copies, and ``join``)."""
    columns = [name for name, rowid in _columns(db, table) if not rowid]
    chosen = ", ".join(overrides.get(name, f't."{name}"') for name in columns)
    names = ", ".join(f'"{name}"' for name in columns)
    db.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) "
        f'INSERT INTO "{table}" ({names}) SELECT {chosen} FROM "{table}" AS t, n {join} '
        f"WHERE {where}",
        params,
    )


def _fill_once(
    cache_name: str,
    target: Path,
    build: Callable[[Path], None],
) -> None:
    """Copy the cached database to ``target``, building it first if needed."""
    cached = CACHE / "read" / cache_name
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        scratch = cached.with_suffix(".building")
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        started = time.monotonic()
        build(scratch)
        built = next(scratch.glob("*.db"))
        with sqlite3.connect(built) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.move(built, cached)
        shutil.rmtree(scratch)
        print(f"built {cached.name} in {time.monotonic() - started:.0f} s", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)


def _schema_key(source: Path) -> str:
    """A digest of the hub's migrations: a new migration means a new cached database."""
    digest = hashlib.sha256()
    for path in sorted((source / "panoptes" / "migrations").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _send(server: Server, stream: streams.Stream) -> dict[int, str]:
    result = loadgen.run(HOST, server.port, stream.sequences, 1)
    if result.errors:
        raise RuntimeError(f"filling {server.name}: {result.error_samples}")
    return result.ids


def _recount_rules(db: sqlite3.Connection) -> None:
    """The per-(rule, status) counts the projector keeps, for the copied jobs too (hubs from
    before the table, as ``--hub-source`` may run, have none)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'rule_counts'").fetchone():
        db.execute("DELETE FROM rule_counts")
        db.execute(
            "INSERT INTO rule_counts (workflow_pk, name, status, jobs)"
            " SELECT workflow_pk, coalesce(name, ''), status, count(*) FROM jobs"
            " GROUP BY workflow_pk, coalesce(name, ''), status"
        )


def fill_hub(
    make: Callable[[Path], Server], target: Path, runs: int, jobs: int, source: Path = REPO
) -> str:
    """Our hub's database (``target``); returns the id of the large run."""
    big_id = "BenchLargeRun"

    def build(folder: Path) -> None:
        server = make(folder)
        server.start()
        try:
            big_ids = _send(server, streams.batch_stream(1, TEMPLATE_JOBS, batch_size=2000))
            small_ids = _send(server, streams.batch_stream(1, SMALL_RUN_JOBS))
            lag.wait_until_projected(HOST, server.port)  # the rows copied below are projected
        finally:
            server.stop()
        with sqlite3.connect(next(folder.glob("*.db"))) as db:
            (big_pk,) = db.execute(
                "SELECT pk FROM workflows WHERE id = ?", (big_ids[0],)
            ).fetchone()
            (small_pk,) = db.execute(
                "SELECT pk FROM workflows WHERE id = ?", (small_ids[0],)
            ).fetchone()
            copies = jobs // TEMPLATE_JOBS - 1
            clone_rows(
                db,
                "jobs",
                "t.workflow_pk = ?",
                copies,
                {"job_key": f"CAST(n.i * {TEMPLATE_JOBS} + CAST(t.job_key AS INTEGER) AS TEXT)"},
                (big_pk,),
            )
            total = (copies + 1) * TEMPLATE_JOBS
            db.execute(
                "UPDATE workflows SET id = ?, name = ?, n_done = ?, progress_done = ?, "
                "progress_total = ? WHERE pk = ?",
                (big_id, big_id, total, total, total, big_pk),
            )
            clone_rows(
                db,
                "workflows",
                "t.pk = ?",
                runs - 2,
                {
                    "id": "'benchclone' || n.i",
                    "name": "t.name || '-' || n.i",
                    "created_at": "datetime(t.created_at, printf('-%d seconds', n.i * 60))",
                    "started_at": "datetime(t.started_at, printf('-%d seconds', n.i * 60))",
                    "updated_at": "datetime(t.updated_at, printf('-%d seconds', n.i * 60))",
                },
                (small_pk,),
            )
            clone_rows(
                db,
                "jobs",
                "t.workflow_pk = ?",
                1,
                {"workflow_pk": "w.pk"},
                (small_pk,),
                join="JOIN workflows AS w ON w.id LIKE 'benchclone%'",
            )
            _recount_rules(db)

    _fill_once(f"hub-{_schema_key(source)}-{runs}-{jobs}.db", target, build)
    return big_id


def fill_panoptes_ui(make: Callable[[Path], Server], target: Path, runs: int, jobs: int) -> str:
    """panoptes-ui's database; returns the id of the large run."""

    def build(folder: Path) -> None:
        server = make(folder)
        server.start()
        try:
            big_ids = _send(server, streams.snakemake_stream(1, TEMPLATE_JOBS))
            small_ids = _send(server, streams.snakemake_stream(1, SMALL_RUN_JOBS))
        finally:
            server.stop()
        with sqlite3.connect(next(folder.glob("*.db"))) as db:
            big, small = int(big_ids[0]), int(small_ids[0])
            copies = jobs // TEMPLATE_JOBS - 1
            clone_rows(
                db,
                "workflow_jobs",
                "t.wf_id = ?",
                copies,
                {"jobid": f"n.i * {TEMPLATE_JOBS} + t.jobid"},
                (big,),
            )
            total = (copies + 1) * TEMPLATE_JOBS
            db.execute("UPDATE workflows SET done = ?, total = ? WHERE id = ?", (total, total, big))
            clone_rows(
                db, "workflows", "t.id = ?", runs - 2, {"name": "t.name || '-' || n.i"}, (small,)
            )
            (name,) = db.execute("SELECT name FROM workflows WHERE id = ?", (small,)).fetchone()
            clone_rows(
                db,
                "workflow_jobs",
                "t.wf_id = ?",
                1,
                {"wf_id": "w.id"},
                (small,),
                join=f"JOIN workflows AS w ON w.name LIKE '{name}-%'",
            )

    _fill_once(f"panoptes-ui-{PANOPTES_UI_VERSION}-{runs}-{jobs}.db", target, build)
    with sqlite3.connect(target) as db:
        (big,) = db.execute(
            "SELECT wf_id FROM workflow_jobs GROUP BY wf_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    return str(big)


def fill_turret(make: Callable[[Path], Server], target: Path, runs: int) -> str:
    """nextflow-turret's database (runs only: it keeps no tasks); the id of the large run."""

    def build(folder: Path) -> None:
        server = make(folder)
        server.start()
        try:
            big_ids = _send(server, streams.tower_stream(1, TEMPLATE_JOBS, 50))
            small_ids = _send(server, streams.tower_stream(1, SMALL_RUN_JOBS, 10))
        finally:
            server.stop()
        with sqlite3.connect(next(folder.glob("*.db"))) as db:
            db.execute(
                "UPDATE runs SET workflow_id = 'dispatcher_BenchLargeRun' WHERE workflow_id = ?",
                (big_ids[0],),
            )
            clone_rows(
                db,
                "runs",
                "t.workflow_id = ?",
                runs - 2,
                {
                    "workflow_id": "t.workflow_id || '-' || n.i",
                    "batch_id": "t.batch_id || '-' || n.i",
                    "run_name": "t.run_name || '-' || n.i",
                },
                (small_ids[0],),
            )

    _fill_once(f"turret-{TURRET_VERSION}-{runs}.db", target, build)
    return "dispatcher_BenchLargeRun"


def time_page(
    server: Server, page: str, path: str, requests: int, budget: float, warmup: int = 2
) -> PageResult:
    """Load ``path`` ``requests`` times one after another (at most ``budget`` seconds)."""
    result = PageResult(server=server.name, page=page, path=path)
    connection = loadgen.Connection(HOST, server.port)
    try:
        started = time.monotonic()
        for _ in range(warmup):
            result.status, body = connection.request("GET", path.encode())
            if time.monotonic() - started > budget / 4:
                break  # a page this slow is warm after one load; keep the budget for timing
        result.size = len(body)
        deadline = time.monotonic() + budget
        for _ in range(requests):
            started = time.perf_counter()
            status, _ = connection.request("GET", path.encode())
            result.latencies.append(time.perf_counter() - started)
            result.status = max(result.status, status)
            if time.monotonic() > deadline:
                result.note = f"stopped after {len(result.latencies)} loads ({budget:.0f} s)"
                break
    finally:
        connection.close()
    return result
