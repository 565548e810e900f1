"""The benchmark harness still runs and its correctness checks pass against the hub.

Not a timed test: it sends a few tiny streams through ``bench/run.py`` (no peers, no plugin
run, a small read database) and asserts that every pass was checked and stored everything, so
the harness cannot rot between benchmark runs. Targets live in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent


def test_quick_harness_against_the_hub_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--no-peers",
        "--no-client-check", "--streams", "snakemake,tower,batch,read",
        "--runs", "2", "--jobs", "5", "--rounds", "1",
        "--read-runs", "20", "--read-jobs", "400", "--read-requests", "2", "--out", str(out),
    ]  # fmt: skip
    # Its own cache: the filled read database must not land in the user's.
    env = {**os.environ, "PANOPTES_BENCH_CACHE": str(tmp_path / "cache")}
    answer = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    passes = results["passes"]
    labels = {p["label"] for p in passes}
    assert len(labels) == 5, labels  # Snakemake c=1 and c=8, Tower 1 and 50, batch
    assert {p["server"] for p in passes} == {"panoptes", "store-only Flask", "bare Flask"}
    failed = [(p["label"], p["server"], p["problems"]) for p in passes if not p["ok"]]
    assert not failed
    assert all(p["units"] > 0 and p["rate"] > 0 for p in passes)
    # The projection lag is sampled during every hub pass, and only there; every event the
    # sampler saw appended was seen applied.
    hub = [p for p in passes if p["server"] == "panoptes"]
    assert all(p["lag_events"] > 0 and p["lag_unresolved"] == 0 for p in hub)
    assert all(0 < p["lag_p50_ms"] <= p["lag_p99_ms"] <= p["lag_max_ms"] for p in hub)
    assert all(p["lag_p99_ms"] is None for p in passes if p["server"] != "panoptes")
    pages = {page["page"]: page for page in results["read"]}
    assert {"runs list (API)", "run page (dashboard)"} <= set(pages)
    assert all(page["status"] == 200 and page["n"] == 2 for page in pages.values())
    report = (out / "RESULTS.md").read_text()
    assert "## Targets" in report
    targets = {t["target"]: t for t in results["targets"]}
    floor = targets["Snakemake c=1: ≥ 85 % of the store-only floor's events/s"]
    assert floor["met"] is not None and floor["measured"].endswith("%")
    lags = [t for name, t in targets.items() if name.startswith("Projection lag under ")]
    assert len(lags) == 5 and all(t["met"] is not None for t in lags)
    # A read database smaller than the targets' is reported, never counted as met or missed.
    reads = [t for name, t in targets.items() if name.startswith("Read at 100,000 runs")]
    assert len(reads) == 2 and all(t["met"] is None for t in reads)
    assert all("not the target's sizes" in t["measured"] for t in reads)


def test_lag_percentiles_count_each_event_once_with_its_group_bound() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import lag
    finally:
        sys.path.remove(str(REPO / "bench"))
    found = lag.LagResult(groups=[(0.5, 1), (0.01, 98), (0.2, 1)])
    assert found.percentile(50) == 0.01
    assert found.percentile(99) == 0.2  # the 99th of 100 events: the second-largest group
    assert found.percentile(100) == 0.5
    found.unresolved_events = 2  # events never seen visible count as the latest of all
    assert found.percentile(99) == float("inf")
    assert lag.LagResult().percentile(99) != lag.LagResult().percentile(99)  # nan: no events


def test_tower_floor_stores_every_task_and_reports_its_cost() -> None:
    command = [
        sys.executable, str(REPO / "bench" / "tower_floor.py"),
        "--runs", "1", "--repeat", "1",
    ]  # fmt: skip
    answer = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    assert answer.stdout.startswith("400 task updates in 50-task calls: ")
    assert "µs per task update" in answer.stdout
