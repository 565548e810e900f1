"""Benchmark the hub against panoptes-ui and nextflow-turret, side by side, in one run.

    /work/venv/bin/python bench/run.py            # everything, about 15 minutes
    /work/venv/bin/python bench/run.py --quick    # fewer runs, about 3 minutes
    /work/venv/bin/python bench/run.py --quick --no-peers --streams snakemake,batch

Installs the peers from the package registry into their own virtual environments (under
``~/.cache/panoptes-bench``, or ``PANOPTES_BENCH_CACHE``), starts every server on loopback,
drives the same request streams at each in alternating order (A B C, C B A, ...), checks that
each server stored every event before its numbers count, and writes ``bench/RESULTS.md``,
``bench/results.json`` and ``bench/results.png``. Run it with the Python that has the hub
installed (it starts the hub with that Python's gunicorn).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lag
import loadgen
import readside
import report
import servers
import streams
from profiling import Profiler, summarize
from servers import CACHE, HERE, HOST, REPO, Server

PEER = {"snakemake": "panoptes-ui", "tower": "nextflow-turret"}
CLIENT_PROCESSES = 2
PLUGIN_RESULT_PREFIXES = ("without the plugin", "plugin → live hub", "plugin → stub hub")


@dataclass(frozen=True)
class WriteSpec:
    """One write stream at one concurrency, and the servers it is sent to."""

    label: str
    family: str  # "snakemake", "tower" or "batch"
    concurrency: int
    build: Callable[[int, int], streams.Stream]
    raw_kind: str  # kind of the hub's raw events one unit-carrying request leaves

    def servers(self, peers: bool) -> list[str]:
        names = ["panoptes"]
        if peers and self.family in PEER:
            names.append(PEER[self.family])
        return [*names, servers.FLOOR, servers.CEILING]


WRITE_SPECS = {
    "snakemake": [
        WriteSpec(
            "Snakemake, 1 event/request, c=1", "snakemake", 1, streams.snakemake_stream, "update"
        ),
        WriteSpec(
            "Snakemake, 1 event/request, c=8", "snakemake", 8, streams.snakemake_stream, "update"
        ),
    ],
    "tower": [
        WriteSpec(
            "Tower, 1 task/progress, c=8",
            "tower",
            8,
            lambda runs, jobs: streams.tower_stream(runs, jobs, 1),
            "progress",
        ),
        WriteSpec(
            "Tower, 50 tasks/progress, c=8",
            "tower",
            8,
            lambda runs, jobs: streams.tower_stream(runs, jobs, 50),
            "progress",
        ),
    ],
    "batch": [
        WriteSpec(
            "Batch route, 200 events/request, c=8", "batch", 8, streams.batch_stream, "event"
        ),
    ],
}
ALL_STREAMS = ("snakemake", "tower", "batch", "read", "plugin")


@dataclass
class Pass:
    """One measured pass of one stream on one server."""

    label: str
    server: str
    round: int
    units: int
    requests: int
    wall: float
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per unit
    client_cpu: float  # client CPU seconds over wall seconds (in CPUs)
    ok: bool
    problems: list[str] = field(default_factory=list)
    # The hub only: upper bounds on the lag from 2xx to visible in the API, over the pass's
    # events (``lag.py``); None where not measured.
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    lag_events: int = 0
    lag_unresolved: int = 0


# -- machine ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _venv_version(venv: Path | None, package: str) -> str:
    if venv is None:
        return "not installed"
    answer = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"from importlib.metadata import version; print(version({package!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.stdout.strip() or "unknown"


def machine(peers: dict[str, Path]) -> dict[str, Any]:
    """What this ran on, for the record."""
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": loadgen.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
        "versions": {
            "panoptes-hub": version("panoptes-hub"),
            "flask": version("flask"),
            "gunicorn": version("gunicorn"),
            "sqlalchemy": version("sqlalchemy"),
            "panoptes-ui": _venv_version(peers.get("panoptes-ui"), "panoptes-ui"),
            "nextflow-turret": _venv_version(peers.get("nextflow-turret"), "nextflow-turret"),
            "uvicorn (turret)": _venv_version(peers.get("nextflow-turret"), "uvicorn"),
        },
    }


# -- write streams ----------------------------------------------------------------------------


def _checker(name: str, spec: WriteSpec, stream: streams.Stream, server: Server) -> streams.Checker:
    if name == "panoptes":
        # One raw event per Snakemake event; one per progress request for Tower.
        per_run = stream.units_per_run
        if spec.raw_kind == "progress":
            per_run = sum(1 for step in stream.sequences[0] if step.path.endswith(b"/progress"))
        return streams.check_hub(stream, server.workdir / "hub.db", spec.raw_kind, per_run)
    if name == "panoptes-ui":
        return streams.check_panoptes_ui(stream)
    if name == "nextflow-turret":
        return streams.check_turret(stream)
    if name == servers.FLOOR:
        return streams.check_floor(stream, server.workdir / servers.FLOOR_DATABASE)
    return streams.check_nothing(stream)


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else seconds * 1000  # nan: nothing measured


def measure(spec: WriteSpec, stream: streams.Stream, server: Server, round_number: int) -> Pass:
    """Send ``stream`` to ``server`` once; the pass, checked for correctness."""
    cpu = [0.0]
    check = _checker(server.name, spec, stream, server)  # before: it may count what is there

    def sample() -> None:
        cpu[0] = server.cpu_seconds()

    sampler = lag.LagSampler(HOST, server.port) if server.name == "panoptes" else None
    if sampler is not None:
        sampler.start()
    result = loadgen.run(
        HOST, server.port, stream.sequences, spec.concurrency, CLIENT_PROCESSES, on_start=sample
    )
    lags = lag.LagResult()
    if sampler is not None:
        # The hub answers once an event is stored; the pass runs until every event is also
        # visible through the read API (the projector has applied the log).
        result.wall += lag.wait_until_projected(HOST, server.port)
        lags = sampler.stop()
    used = server.cpu_seconds() - cpu[0]
    problems = [f"{result.errors} failed requests: {result.error_samples}"] if result.errors else []
    if result.units != stream.units:
        problems.append(f"{result.units} of {stream.units} {stream.unit} accepted")
    problems += check(HOST, server.port, result.ids)
    if lags.unresolved_events:
        problems.append(f"{lags.unresolved_events} events not visible {lag.DRAIN_LIMIT_S:.0f} s on")
    return Pass(
        label=spec.label,
        server=server.name,
        round=round_number,
        units=result.units,
        requests=result.requests,
        wall=result.wall,
        rate=result.rate,
        p50_ms=result.percentile(50) * 1000,
        p99_ms=result.percentile(99) * 1000,
        cpu_us=used / max(result.units, 1) * 1e6,
        client_cpu=result.client_cpu / result.wall if result.wall else 0.0,
        ok=not problems,
        problems=problems[:10],
        lag_p50_ms=_ms(lags.percentile(50)) if sampler else None,
        lag_p99_ms=_ms(lags.percentile(99)) if sampler else None,
        lag_max_ms=_ms(lags.percentile(100)) if sampler else None,
        lag_events=lags.events,
        lag_unresolved=lags.unresolved_events,
    )


def summarize_passes(passes: list[Pass]) -> list[dict[str, Any]]:
    """Median per stream and server over the passes that stored everything, with ratios."""
    rows: list[dict[str, Any]] = []
    for label in dict.fromkeys(p.label for p in passes):
        for name in dict.fromkeys(p.server for p in passes if p.label == label):
            mine = [p for p in passes if p.label == label and p.server == name]
            good = [p for p in mine if p.ok] or mine
            rows.append(
                {
                    "label": label,
                    "server": name,
                    "passes": len(mine),
                    "ok": all(p.ok for p in mine),
                    "failed_passes": sum(not p.ok for p in mine),
                    "rate": statistics.median(p.rate for p in good),
                    "rates": [round(p.rate, 1) for p in mine],
                    "p50_ms": statistics.median(p.p50_ms for p in good),
                    "p99_ms": statistics.median(p.p99_ms for p in good),
                    "cpu_us": statistics.median(p.cpu_us for p in good),
                    "client_cpu": statistics.median(p.client_cpu for p in good),
                    "problems": [q for p in mine for q in p.problems][:5],
                    # The worst pass, not the median: the target bounds every load.
                    "lag_p99_ms": _worst(p.lag_p99_ms for p in mine),
                    "lag_p50_ms": _worst(p.lag_p50_ms for p in mine),
                    "lag_max_ms": _worst(p.lag_max_ms for p in mine),
                    "lag_events": sum(p.lag_events for p in mine),
                }
            )
    for row in rows:
        same = {r["server"]: r for r in rows if r["label"] == row["label"]}
        ceiling = same.get(servers.CEILING)
        row["of_ceiling"] = row["rate"] / ceiling["rate"] if ceiling and ceiling["rate"] else None
        floor = same.get(servers.FLOOR)
        row["of_floor"] = row["rate"] / floor["rate"] if floor and floor["rate"] else None
        peer = next((same[n] for n in ("panoptes-ui", "nextflow-turret") if n in same), None)
        row["vs_peer"] = row["rate"] / peer["rate"] if peer and peer["rate"] else None
    return rows


def _worst(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def run_writes(
    families: list[str],
    peers: dict[str, Path],
    work: Path,
    args: argparse.Namespace,
    py_spy: Path | None,
) -> tuple[list[Pass], dict[str, Any], dict[str, str]]:
    """Every write stream on every server, alternating; passes, profiles, server notes."""
    running: dict[str, Server] = {}
    passes: list[Pass] = []
    profiles: dict[str, Any] = {}

    def server(name: str) -> Server:
        if name not in running:
            folder = work / name.replace(" ", "-")
            made = {
                "panoptes": lambda: servers.hub(folder, source=args.hub_source),
                servers.CEILING: lambda: servers.ceiling(folder),
                servers.FLOOR: lambda: servers.floor(folder),
                "panoptes-ui": lambda: servers.panoptes_ui(folder, peers["panoptes-ui"]),
                "nextflow-turret": lambda: servers.turret(folder, peers["nextflow-turret"]),
            }[name]()
            made.start()
            running[name] = made
        return running[name]

    try:
        for family in families:
            for spec in WRITE_SPECS[family]:
                names = spec.servers(bool(peers))
                print(f"\n== {spec.label}: {', '.join(names)}", flush=True)
                warm = spec.build(min(2, args.runs), min(20, args.jobs))
                for name in names:  # load code paths and connections before any timing
                    loadgen.run(HOST, server(name).port, warm.sequences, spec.concurrency)
                for round_number in range(args.rounds):
                    stream = spec.build(args.runs, args.jobs)
                    order = names if round_number % 2 == 0 else names[::-1]
                    for name in order:
                        one = measure(spec, stream, server(name), round_number)
                        passes.append(one)
                        print(
                            f"  round {round_number + 1} {name:16} {one.rate:10,.0f} "
                            f"{stream.unit}/s  p50 {one.p50_ms:7.2f} ms  p99 {one.p99_ms:8.2f} ms"
                            f"  CPU {one.cpu_us:7.0f} µs/unit  "
                            + ("ok" if one.ok else f"NOT STORED: {one.problems[:2]}"),
                            flush=True,
                        )
                if args.profile and py_spy is not None:
                    profiles[spec.label] = profile(spec, server("panoptes"), args, py_spy, work)
    finally:
        notes = {name: s.note for name, s in running.items()}
        for started in running.values():
            started.stop()
    return passes, profiles, notes


def profile(
    spec: WriteSpec, hub: Server, args: argparse.Namespace, py_spy: Path, work: Path
) -> dict[str, Any]:
    """Extra passes on the hub under py-spy (CPU, then wall time); they count for nothing."""
    assert hub.process is not None
    found = {}
    for kind in ("cpu", "wall"):
        raw = work / f"profile-{spec.family}-{spec.concurrency}-{id(spec)}-{kind}.txt"
        stream = spec.build(args.runs, args.jobs)
        with Profiler(py_spy, hub.process.pid, raw, kind):
            time.sleep(0.5)  # let py-spy attach first
            loadgen.run(HOST, hub.port, stream.sequences, spec.concurrency, CLIENT_PROCESSES)
        if raw.exists():
            kept = CACHE / "profiles" / f"{_slug(spec.label)}-{kind}.txt"  # MBs: not in the repo
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw, kept)
            found[kind] = asdict(summarize(kept, kind))
    return found


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


# -- the client check -------------------------------------------------------------------------


def client_check(work: Path, seconds: float) -> dict[str, Any]:
    """Is the Python client the bottleneck? The ceiling server driven by it and by wrk."""
    stream = streams.snakemake_stream(8, 50)
    step = stream.sequences[0][3]  # a job_info form POST
    body = step.body.replace(loadgen.ID, b"1")
    ceiling = servers.ceiling(work / "client-check")
    ceiling.start()
    found: dict[str, Any] = {"path": step.path.decode(), "body_bytes": len(body)}
    try:
        repeated = [[loadgen.Step("POST", step.path, body, step.content_type, units=1)] * 2000]
        for concurrency in (1, 8):
            result = loadgen.run(
                HOST, ceiling.port, repeated * concurrency, concurrency, CLIENT_PROCESSES
            )
            found[f"python_c{concurrency}"] = result.request_rate
            found[f"python_c{concurrency}_client_cpu"] = result.client_cpu / result.wall
        wrk = shutil.which("wrk")
        if wrk:
            script = work / "post.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.headers["Content-Type"] = "{step.content_type.decode()}"\n'
                f"wrk.body = {json.dumps(body.decode())}\n"
            )
            for concurrency in (1, 8):
                answer = subprocess.run(
                    [
                        wrk,
                        "-t",
                        str(min(concurrency, 2)),
                        "-c",
                        str(concurrency),
                        "-d",
                        f"{seconds:.0f}s",
                        "-s",
                        str(script),
                        f"http://{HOST}:{ceiling.port}{step.path.decode()}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                for line in answer.stdout.splitlines():
                    if line.startswith("Requests/sec:"):
                        found[f"wrk_c{concurrency}"] = float(line.split()[1])
    finally:
        ceiling.stop()
    return found


# -- read side --------------------------------------------------------------------------------


def run_reads(
    peers: dict[str, Path], work: Path, args: argparse.Namespace
) -> list[readside.PageResult]:
    """Fill each server's database, then time its list page and its large run's job page."""
    results: list[readside.PageResult] = []
    plans: list[tuple[Server, list[tuple[str, str]]]] = []

    folder = work / "read-panoptes"
    big = readside.fill_hub(
        lambda f: servers.hub(f, source=args.hub_source),
        folder / "hub.db",
        args.read_runs,
        args.read_jobs,
        args.hub_source,
    )
    plans.append(
        (
            servers.hub(folder, source=args.hub_source),
            [
                ("runs list (API)", "/api/workflows"),
                ("run page (dashboard)", f"/workflow/{big}"),
                ("run's jobs (API)", f"/api/workflow/{big}/jobs?limit=100"),
                ("runs list (dashboard)", "/"),
            ],
        )
    )
    if "panoptes-ui" in peers:
        folder = work / "read-panoptes-ui"
        venv = peers["panoptes-ui"]
        big = readside.fill_panoptes_ui(
            lambda f: servers.panoptes_ui(f, venv),
            folder / "panoptes-ui.db",
            args.peer_read_runs,
            args.peer_read_jobs,
        )
        plans.append(
            (
                servers.panoptes_ui(folder, venv),
                [
                    ("runs list (API)", "/api/workflows"),
                    ("run page (dashboard)", f"/workflow/{big}"),
                    ("run's jobs (API)", f"/api/workflow/{big}/jobs"),
                    ("runs list (dashboard)", "/workflows/"),
                ],
            )
        )
    if "nextflow-turret" in peers:
        folder = work / "read-turret"
        venv = peers["nextflow-turret"]
        big = readside.fill_turret(
            lambda f: servers.turret(f, venv), folder / "turret.db", args.peer_read_runs
        )
        plans.append(
            (
                servers.turret(folder, venv),
                [
                    ("runs list (API)", "/api/runs"),
                    ("run page (API; it keeps no jobs)", f"/api/runs/{big}"),
                ],
            )
        )
    for server, pages in plans:
        print(f"\n== read side: {server.name}", flush=True)
        server.start()
        try:
            for page, path in pages:
                found = readside.time_page(server, page, path, args.read_requests, args.read_budget)
                results.append(found)
                print(
                    f"  {page:34} {found.status} {found.size / 1024:9,.0f} KiB  "
                    f"p50 {found.percentile(50) * 1000:8.1f} ms  "
                    f"p95 {found.percentile(95) * 1000:8.1f} ms  n={len(found.latencies)}",
                    flush=True,
                )
        finally:
            server.stop()
    return results


# -- plugin overhead --------------------------------------------------------------------------


def plugin_python(args: argparse.Namespace) -> Path:
    """A Python with Snakemake, our plugin (and the client it shares) and the hub: given, or a
    cached venv kept current."""
    if args.plugin_python:
        return Path(args.plugin_python)
    venv = CACHE / "snakemake"
    python = venv / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="panoptes-bench-src-") as tmp:
        # From a copy: pip would build inside the checkout (build/, *.egg-info).
        source = Path(tmp) / "src"
        shutil.copytree(
            REPO,
            source,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "bench", "tests", "*.db", "__pycache__", ".*_cache", "build"
            ),
        )
        packages = [
            str(source),
            str(source / "integrations" / "client"),
            str(source / "snakemake_logger_plugin"),
        ]
        if not python.exists():
            print(f"creating {venv} (Snakemake, the plugin, the hub)", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            servers.pip_install(python, "snakemake==9.27.1", *packages)
        else:
            # The hub and the plugin as they are now; their dependencies stay.
            servers.pip_install(python, "--no-deps", "--force-reinstall", *packages)
    return python


def run_plugin(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``bench/plugin_overhead.py`` (run from a copy, so its own RESULTS-plugin.md stays)."""
    python = plugin_python(args)
    copy = work / "plugin_overhead.py"
    shutil.copyfile(HERE / "plugin_overhead.py", copy)
    command = [str(python), str(copy), "--repeat", str(args.plugin_repeat), "--cores", "4"]
    print(f"\n== plugin overhead: {' '.join(command)}", flush=True)
    answer = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
    if answer.returncode != 0:
        return {"error": answer.stderr[-2000:] or answer.stdout[-2000:]}
    found: dict[str, Any] = {"repeat": args.plugin_repeat, "variants": {}}
    for line in answer.stdout.splitlines():
        name, _, rest = line.partition(": wall median ")
        if rest:
            wall = float(rest.split(" s")[0])
            cpu = float(rest.split("CPU median ")[1].split(" s")[0])
            found["variants"][name] = {"wall": wall, "cpu": cpu}
        elif "reported runs are on the hub" in line:
            found["hub_check"] = line.split(";")[0]
    base = found["variants"].get("without the plugin")
    for values in found["variants"].values():
        if base:
            values["wall_change"] = values["wall"] / base["wall"] - 1
            values["cpu_change"] = values["cpu"] / base["cpu"] - 1
    print("\n".join(f"  {k}: {v}" for k, v in found["variants"].items()), flush=True)
    return found


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 2 minutes)")
    parser.add_argument("--no-peers", action="store_true", help="the hub (and ceiling) only")
    parser.add_argument(
        "--streams",
        default=",".join(ALL_STREAMS),
        help=f"comma-separated subset of {','.join(ALL_STREAMS)}",
    )
    parser.add_argument("--runs", type=int, help="runs per pass (default 10; quick 8)")
    parser.add_argument("--jobs", type=int, help="jobs (tasks) per run (default 200; quick 25)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="passes per server, alternating order (default 2: A B, B A)",
    )
    parser.add_argument(
        "--read-runs", type=int, help="runs in the hub's read database (100,000; quick 2,000)"
    )
    parser.add_argument(
        "--read-jobs", type=int, help="jobs of its large run (1,000,000; quick 20,000)"
    )
    parser.add_argument(
        "--peer-read-runs",
        type=int,
        help="runs in the peers' read databases (10,000; quick: as --read-runs): at the hub's "
        "sizes their pages take minutes a load",
    )
    parser.add_argument(
        "--peer-read-jobs", type=int, help="jobs of panoptes-ui's large run (100,000)"
    )
    parser.add_argument("--read-requests", type=int, help="loads per page (default 100)")
    parser.add_argument("--read-budget", type=float, help="seconds per page at most (20; quick 8)")
    parser.add_argument(
        "--hub-source",
        type=Path,
        default=REPO,
        help="folder holding the panoptes package to benchmark (default: this checkout)",
    )
    parser.add_argument("--plugin-repeat", type=int, help="plugin runs per variant (3; quick 1)")
    parser.add_argument("--plugin-python", help="a Python with snakemake, the plugin and the hub")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the hub's workers with py-spy during its first passes",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for RESULTS.md, results.json, results.png (default bench/)",
    )
    parser.add_argument(
        "--no-client-check", action="store_true", help="skip checking the client against wrk"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite RESULTS.md and the chart from the last results.json; measure nothing",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' scratch folders")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "runs": 8 if quick else 10,
        "jobs": 25 if quick else 200,
        "read_runs": 2_000 if quick else 100_000,
        "read_jobs": 20_000 if quick else 1_000_000,
        "read_requests": 20 if quick else 100,
        "read_budget": 8.0 if quick else 20.0,
        "plugin_repeat": 1 if quick else 3,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.peer_read_runs is None:
        args.peer_read_runs = min(args.read_runs, 10_000)
    if args.peer_read_jobs is None:
        args.peer_read_jobs = min(args.read_jobs, 100_000)
    args.stream_list = [s for s in args.streams.split(",") if s]
    unknown = set(args.stream_list) - set(ALL_STREAMS)
    if unknown:
        parser.error(f"unknown streams: {', '.join(sorted(unknown))}")
    return args


def write_report(results: dict[str, Any], out: Path, tools: Path | None) -> None:
    """RESULTS.md and, with the tools environment, the chart, from ``results``."""
    chart = None
    if tools is not None and results.get("write"):
        chart = out / "results.png"
        command = [str(tools / "bin" / "python"), str(HERE / "chart.py"),
                   str(out / "results.json"), str(chart)]  # fmt: skip
        subprocess.run(command, check=True)
    (out / "RESULTS.md").write_text(report.markdown(results, chart, HERE / "PROFILES.md"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        # Redraw from the last run (after editing PROFILES.md, say): nothing is measured.
        results = json.loads((args.out / "results.json").read_text())
        results["targets"] = report.targets(results)  # as this version of the report reads them
        previous = args.out / "results-previous.json"
        if previous.exists():
            results["previous"] = json.loads(previous.read_text())
        write_report(results, args.out, CACHE / "tools" if (CACHE / "tools").exists() else None)
        print(report.target_lines(results))
        return 0
    started = time.monotonic()
    peers: dict[str, Path] = {}
    if not args.no_peers:
        peers["panoptes-ui"] = servers.install_panoptes_ui()
        peers["nextflow-turret"] = servers.install_turret()
    tools = None
    if args.profile or not args.no_peers:
        tools = servers.ensure_venv("tools", {"matplotlib": "3.11.2", "py-spy": "0.4.3"})
    py_spy = tools / "bin" / "py-spy" if tools else None
    facts = machine(peers)
    work = Path(tempfile.mkdtemp(prefix="panoptes-bench-", dir=CACHE if CACHE.exists() else None))
    print(f"scratch: {work}", flush=True)
    results: dict[str, Any] = {
        "machine": facts,
        "config": {
            key: getattr(args, key)
            for key in (
                "quick",
                "runs",
                "jobs",
                "rounds",
                "read_runs",
                "read_jobs",
                "peer_read_runs",
                "peer_read_jobs",
                "read_requests",
                "read_budget",
                "plugin_repeat",
            )
        }
        | {"hub_source": str(args.hub_source), "lag_interval_s": lag.INTERVAL_S},
        "command": shlex.join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
    }
    try:
        families = [f for f in ("snakemake", "tower", "batch") if f in args.stream_list]
        if families:
            if not args.no_client_check:
                results["client_check"] = client_check(work, 3 if args.quick else 5)
            passes, profiles, notes = run_writes(families, peers, work, args, py_spy)
            results["passes"] = [asdict(p) for p in passes]
            results["write"] = summarize_passes(passes)
            results["profiles"] = profiles
            results["servers"] = notes
        if "read" in args.stream_list:
            pages = run_reads(peers, work, args)
            results["read"] = [
                {
                    "server": p.server,
                    "page": p.page,
                    "path": p.path,
                    "status": p.status,
                    "kib": p.size / 1024,
                    "n": len(p.latencies),
                    "note": p.note,
                    "p50_ms": p.percentile(50) * 1000,
                    "p95_ms": p.percentile(95) * 1000,
                    "p99_ms": p.percentile(99) * 1000,
                }
                for p in pages
            ]
        if "plugin" in args.stream_list:
            results["plugin"] = run_plugin(args, work)
    finally:
        if not args.keep:
            servers.remove(work)
    facts["load_after"] = os.getloadavg()[0]
    facts["duration_s"] = time.monotonic() - started
    results["targets"] = report.targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    latest = args.out / "results.json"
    if latest.exists():
        # The run before this one, to show the spread between two runs in RESULTS.md.
        shutil.copyfile(latest, args.out / "results-previous.json")
        results["previous"] = json.loads(latest.read_text())
    latest.write_text(
        json.dumps({k: v for k, v in results.items() if k != "previous"}, indent=1, default=str)
        + "\n"
    )
    write_report(results, args.out, tools)
    print(
        f"\n{report.target_lines(results)}\nwrote {args.out / 'RESULTS.md'} "
        f"in {facts['duration_s'] / 60:.1f} min",
        flush=True,
    )
    # A peer that loses events is a finding; the hub, the floor or the ceiling losing one is a
    # failure.
    mine = ("panoptes", servers.FLOOR, servers.CEILING)
    ours = [p for p in results.get("passes", []) if p["server"] in mine]
    return 0 if all(p["ok"] for p in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
