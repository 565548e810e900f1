"""``results.json`` as ``RESULTS.md``: the targets, the tables, how it was measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servers import CEILING, FLOOR

SNAKEMAKE = ("Snakemake, 1 event/request, c=1", "Snakemake, 1 event/request, c=8")
TOWER = ("Tower, 1 task/progress, c=8", "Tower, 50 tasks/progress, c=8")
BATCH = "Batch route, 200 events/request, c=8"
READ_PAGES = ("runs list (API)", "run page (dashboard)")


def _row(results: dict[str, Any], label: str, server: str = "panoptes") -> dict[str, Any] | None:
    for row in results.get("write", []):
        if row["label"] == label and row["server"] == server:
            return row
    return None


def _target(name: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": name, "measured": measured, "met": met}


def _storing_alone(results: dict[str, Any], label: str, key: str, percent: bool) -> str:
    """The store-only floor's value of a ratio (``vs_peer`` or ``of_ceiling``), to show beside
    the hub's: what any server that commits each request reaches in the same run."""
    floor = _row(results, label, FLOOR)
    if not floor or not floor[key]:
        return ""
    return f" (storing alone: {_ratio(floor[key], percent)})"


READ_RUNS = 100_000  # the sizes the read targets are stated at
READ_JOBS = 1_000_000
LAG_P99_MS = 500.0


def _lag_target(results: dict[str, Any], label: str) -> dict[str, Any]:
    row = _row(results, label)
    name = f"Projection lag under {label}: p99 < {LAG_P99_MS:.0f} ms"
    if not row or row.get("lag_p99_ms") is None:
        return _target(name, "not measured", None)
    return _target(
        name,
        f"{_ms(row['lag_p99_ms'])} ms (worst pass; max {_ms(row['lag_max_ms'])} ms)",
        bool(row["lag_p99_ms"] < LAG_P99_MS),
    )


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with what this run measured (``met`` None: not measured)."""
    found = []
    for label in SNAKEMAKE:
        concurrency = label.rsplit("=", 1)[1]
        row = _row(results, label)
        peer = row and row["vs_peer"]
        found.append(
            _target(
                f"Snakemake c={concurrency}: ≥ 6x panoptes-ui's events/s",
                f"{peer:.2f}x{_storing_alone(results, label, 'vs_peer', False)}"
                if peer
                else "not measured",
                None if not peer else bool(peer >= 6 and row and row["ok"]),
            )
        )
        floor = row and row.get("of_floor")
        found.append(
            _target(
                f"Snakemake c={concurrency}: ≥ 85 % of the store-only floor's events/s",
                f"{floor:.0%}" if floor else "not measured",
                None if not floor else bool(floor >= 0.85 and row and row["ok"]),
            )
        )
    for label in TOWER:
        row = _row(results, label)
        peer = row and row["vs_peer"]
        found.append(
            _target(
                f"Tower {label.split(',')[1].strip()}: ≥ 2x nextflow-turret's task updates/s, "
                "every task row stored",
                (f"{peer:.2f}x" if peer else "not measured")
                + ("" if not row else ", all stored" if row["ok"] else ", NOT all stored")
                + (_storing_alone(results, label, "vs_peer", False) if peer else ""),
                None if not peer else bool(peer >= 2 and row and row["ok"]),
            )
        )
    row = _row(results, BATCH)
    found.append(
        _target(
            "Batch route: ≥ 50,000 events/s",
            f"{row['rate']:,.0f} events/s" if row else "not measured",
            None if not row else bool(row["rate"] >= 50_000 and row["ok"]),
        )
    )
    found += [_lag_target(results, label) for label in (*SNAKEMAKE, *TOWER, BATCH)]
    config = results.get("config", {})
    at_size = config.get("read_runs", 0) >= READ_RUNS and config.get("read_jobs", 0) >= READ_JOBS
    pages = {p["page"]: p for p in results.get("read", []) if p["server"] == "panoptes"}
    for page in READ_PAGES:
        entry = pages.get(page)
        measured = "not measured"
        if entry:
            measured = f"{entry['p95_ms']:.0f} ms ({entry['path']})"
            if not at_size:
                measured += (
                    f" at {config.get('read_runs', 0):,} runs and "
                    f"{config.get('read_jobs', 0):,} jobs, not the target's sizes"
                )
        found.append(
            _target(
                f"Read at {READ_RUNS:,} runs and a run of {READ_JOBS:,} jobs, {page}: p95 < 100 ms",
                measured,
                None
                if not entry or not at_size
                else bool(entry["p95_ms"] < 100 and entry["status"] < 300),
            )
        )
    return found


def _target_table(results: dict[str, Any]) -> list[str]:
    """The targets, with the previous run's measurement beside this one's when there is one."""
    before = {t["target"]: t for t in results.get("previous", {}).get("targets", [])}
    if not before:
        return [
            "| target | measured | |",
            "|---|---|---|",
            *(
                f"| {t['target']} | {t['measured']} | {_mark(t['met'])} |"
                for t in results["targets"]
            ),
        ]
    lines = [
        "| target | this run | | previous run | |",
        "|---|---|---|---|---|",
    ]
    for target in results["targets"]:
        old = before.get(target["target"], {"measured": "", "met": None})
        lines.append(
            f"| {target['target']} | {target['measured']} | {_mark(target['met'])} "
            f"| {old['measured']} | {_mark(old['met']) if old['measured'] else ''} |"
        )
    return lines


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def target_lines(results: dict[str, Any]) -> str:
    """The targets as console lines."""
    return "\n".join(
        f"{_mark(t['met']):14} {t['target']}: {t['measured']}" for t in results["targets"]
    )


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: float | None, percent: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:.0%}" if percent else f"{value:.2f}x"


def _write_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| stream | server | units/s (median) | p50 ms | p99 ms | lag p99 ms "
        "| server CPU µs/unit | vs peer | of floor | of ceiling | all stored "
        "| passes (units/s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in results.get("write", []):
        stored = "yes" if row["ok"] else f"**no** ({row['failed_passes']} of {row['passes']})"
        lag = row.get("lag_p99_ms")
        of_floor = row.get("of_floor") if row["server"] not in (FLOOR, CEILING) else None
        lines.append(
            f"| {row['label']} | {row['server']} | {row['rate']:,.0f} | {_ms(row['p50_ms'])} "
            f"| {_ms(row['p99_ms'])} | {_ms(lag) if lag is not None else ''} "
            f"| {row['cpu_us']:,.0f} "
            f"| {_ratio(row['vs_peer']) if row['server'] == 'panoptes' else ''} "
            f"| {_ratio(of_floor, True)} "
            f"| {_ratio(row['of_ceiling'], True) if row['server'] != CEILING else ''} "
            f"| {stored} | {', '.join(f'{r:,.0f}' for r in row['rates'])} |"
        )
    problems = [
        f"- {row['server']}, {row['label']}: {'; '.join(row['problems'])}"
        for row in results.get("write", [])
        if row["problems"]
    ]
    if problems:
        lines += ["", "Passes that did not count (events lost or refused):", "", *problems]
    return lines


def _spread_lines(results: dict[str, Any]) -> list[str]:
    """This run's medians next to the previous run's (``results-previous.json``)."""
    before = {(r["label"], r["server"]): r for r in results["previous"]["write"]}
    lines = [
        f"Spread: the same table's medians in the previous run "
        f"({results['previous']['machine']['date']}, `{results['previous']['command']}`):",
        "",
        "| stream | server | units/s, previous | units/s, this run | change |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results["write"]:
        old = before.get((row["label"], row["server"]))
        if old is None or not old["rate"]:
            continue
        lines.append(
            f"| {row['label']} | {row['server']} | {old['rate']:,.0f} | {row['rate']:,.0f} "
            f"| {row['rate'] / old['rate'] - 1:+.0%} |"
        )
    return lines


def _read_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| page | server | path | status | size KiB | p50 ms | p95 ms | p99 ms | loads |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for page in results.get("read", []):
        lines.append(
            f"| {page['page']} | {page['server']} | `{page['path']}` | {page['status']} "
            f"| {page['kib']:,.0f} | {_ms(page['p50_ms'])} | {_ms(page['p95_ms'])} "
            f"| {_ms(page['p99_ms'])} | {page['n']}{' ' + page['note'] if page['note'] else ''} |"
        )
    return lines


def _plugin_table(plugin: dict[str, Any]) -> list[str]:
    if "error" in plugin:
        return [f"The plugin benchmark failed:\n\n```\n{plugin['error']}\n```"]
    lines = [
        "| variant | wall median s | change | CPU median s | change |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in plugin.get("variants", {}).items():
        lines.append(
            f"| {name} | {values['wall']:.2f} | {values.get('wall_change', 0):+.1%} "
            f"| {values['cpu']:.2f} | {values.get('cpu_change', 0):+.1%} |"
        )
    if plugin.get("hub_check"):
        lines += ["", f"{plugin['hub_check']}."]
    return lines


def _client_lines(check: dict[str, Any]) -> list[str]:
    lines = [
        f"The bare-Flask ceiling answering `{check['path']}` ({check['body_bytes']} byte form "
        "bodies), driven by this harness's Python client and by `wrk` (C, one Lua script):",
        "",
        "| client | c=1 requests/s | c=8 requests/s |",
        "|---|---:|---:|",
        f"| Python client (this harness) | {check.get('python_c1', 0):,.0f} "
        f"| {check.get('python_c8', 0):,.0f} |",
    ]
    if "wrk_c1" in check:
        lines.append(f"| wrk | {check['wrk_c1']:,.0f} | {check.get('wrk_c8', 0):,.0f} |")
    lines += [
        "",
        f"The Python client used {check.get('python_c1_client_cpu', 0):.2f} CPU at c=1 and "
        f"{check.get('python_c8_client_cpu', 0):.2f} CPU at c=8 of the machine's 2 while "
        "driving the fastest server there is here. Where wrk, which needs almost no CPU, "
        "reaches about the same rate, the server is the limit, not the client.",
    ]
    if check.get("wrk_c8"):
        share = check.get("python_c8", 0) / check["wrk_c8"]
        lines.append(
            f"At c=8 the Python client reached {share:.0%} of wrk's rate on the ceiling "
            + (
                "without being saturated itself (see its CPU above): on 2 cores each client "
                "cycle is taken from the server, and this client spends more per request than "
                "wrk. The c=8 ceilings above are therefore low, and the 'of ceiling' ratios at "
                "c=8 flatter every server; ratios between servers are not affected (the hub and "
                "its peers run at a tenth of these rates or less)."
                if share < 0.95
                else "(the client is not the limit)."
            )
        )
    return lines


def _profile_lines(profiles: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for label, kinds in profiles.items():
        for kind, found in kinds.items():
            what = (
                "CPU (the thread holding the GIL)" if kind == "cpu" else "wall time (busy threads)"
            )
            lines += [
                "",
                f"**{label}**, {what}: {found['samples']:,} samples of the hub's workers "
                f"(`{Path(found['raw']).name}`).",
                "",
                "| panoptes function or SQLite call (inclusive) | share "
                "| top frame's package | share |",
                "|---|---:|---|---:|",
            ]
            packages = found["packages"] + [("", 0.0)] * 15
            for (name, share), (package, part) in zip(
                found["functions"][:12], packages, strict=False
            ):
                right = f"{package} | {part:.0%}" if package else " | "
                lines.append(f"| `{name}` | {share:.0%} | {right} |")
    return lines


def markdown(results: dict[str, Any], chart: Path | None, notes: Path) -> str:
    """The whole RESULTS.md."""
    facts = results["machine"]
    config = results["config"]
    lag_interval_ms = config.get("lag_interval_s", 0.02) * 1000
    lines = [
        "# Benchmarks: panoptes against panoptes-ui and nextflow-turret",
        "",
        f"Measured {facts['date']} with `{results['command']}` "
        f"({facts['duration_s'] / 60:.1f} min), on {facts['cpus']} CPUs ({facts['cpu_model']}), "
        f"{facts['memory_gib']} GiB, {facts['platform']}, Python {facts['python']}; "
        f"load average {facts['load_before']:.2f} before, {facts['load_after']:.2f} after.",
        "",
        "## Targets",
        "",
        *_target_table(results),
    ]
    if chart is not None:
        lines += ["", f"![throughput and read latency]({chart.name})"]
    if results.get("write"):
        lines += [
            "",
            "## Ingestion",
            "",
            f"Each pass: {config['runs']} runs of {config['jobs']} jobs (tasks); "
            f"{config['rounds']} passes per server, in alternating order (A B C, C B A). "
            "Units are events (Snakemake, batch) or task updates (Tower: each task is "
            "reported RUNNING then COMPLETED). Medians over the passes; p50/p99 are the "
            "latency of single requests; server CPU is the user+system time of all the "
            "server's processes divided by the units. A pass counts only if the server "
            "stored every event (checked through its API or database right after it). "
            "Two Flask apps run beside the servers under the hub's gunicorn settings: bare "
            "Flask answers a constant (the ceiling; 'of ceiling' is a rate over its rate), "
            "store-only Flask stores each request's body with one SQLite commit, set up as the "
            "hub sets SQLite up (what storing alone allows; `bench/floor_app.py`; 'of floor' "
            "is a rate over its rate). The hub answers once an event is appended to its log and "
            "projects the log afterwards: its pass runs until `GET /api/log` reports nothing "
            "pending, so its rate counts every event as visible through the read API.",
            "",
            "**Projection lag** (hub only; `bench/lag.py`): during each hub pass a thread polls "
            f"`GET /api/log` every {lag_interval_ms:.0f} ms on one keep-alive connection. The "
            "events that appeared between two polls were stored, so acknowledged, after the "
            "earlier poll was sent; they are visible at the latest when a later poll's answer "
            "shows them applied (`appended - pending`, a number the log reaches without gaps "
            "on SQLite). That difference is an upper bound on the 2xx-to-visible lag of each "
            "of them; each event counts once with its bound, so 'lag p99' is an upper bound on "
            "the 99th percentile over all the pass's events (high by at most one interval plus "
            "one request). The column gives the worst pass. The polls cost the hub one small "
            "request per interval (about 0.7 ms of CPU each in-process on this machine: 3.5 % "
            "of one core), charged to its rate.",
            "",
            *_write_table(results),
        ]
    if results.get("previous", {}).get("write") and results.get("write"):
        lines += ["", *_spread_lines(results)]
    if results.get("read"):
        lines += [
            "",
            "## Read side",
            "",
            f"panoptes: a database of {config['read_runs']:,} runs (10 jobs each) plus one run "
            f"of {config['read_jobs']:,} jobs. The peers: "
            f"{config.get('peer_read_runs', config['read_runs']):,} runs plus one run of "
            f"{config.get('peer_read_jobs', config['read_jobs']):,} jobs (nextflow-turret: the "
            "runs only, it keeps no tasks); at the hub's sizes their pages, which load every "
            "row, take minutes a load. Each page is "
            "loaded one after another on one keep-alive connection after up to two "
            f"warm-up loads, at most {config.get('read_requests', 100)} loads or "
            f"{config.get('read_budget', 20):.0f} s per page. panoptes' API pages ask for a "
            "page (`limit=100`; without it the jobs route streams every job, as panoptes-ui's "
            "does); panoptes-ui and nextflow-turret answer with everything at once (they have "
            "no pagination).",
            "",
            *_read_table(results),
        ]
    if results.get("plugin"):
        lines += [
            "",
            "## Logger plugin overhead",
            "",
            f"`bench/plugin_overhead.py --repeat {results['plugin'].get('repeat')} --cores 4`: "
            "a workflow of 200 trivial jobs, with and without `--logger panoptes` (live hub: "
            "`python -m panoptes` on the same machine; stub hub: answers at once, stores "
            "nothing).",
            "",
            *_plugin_table(results["plugin"]),
        ]
    if results.get("client_check"):
        lines += [
            "",
            "## Is the client the bottleneck?",
            "",
            *_client_lines(results["client_check"]),
        ]
    versions = ", ".join(f"{name} {value}" for name, value in facts["versions"].items())
    lines += ["", "## Servers and versions", "", f"Versions: {versions}.", ""]
    for name, note in (results.get("servers") or {}).items():
        lines.append(f"- {name}: {note}")
    lines += [
        "- every server listens on 127.0.0.1 with its database (SQLite) in one scratch folder "
        "on the same disk; one thing runs at a time; nothing is pinned to a CPU.",
    ]
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    if results.get("profiles"):
        lines += ["", "### Profiles sampled in this run", *_profile_lines(results["profiles"])]
    return "\n".join(lines) + "\n"
