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
    pages = {page["page"]: page for page in results["read"]}
    assert {"runs list (API)", "run page (dashboard)"} <= set(pages)
    assert all(page["status"] == 200 and page["n"] == 2 for page in pages.values())
    report = (out / "RESULTS.md").read_text()
    assert "## Targets" in report
    assert "(storing alone: " in report  # the floor's share beside the ceiling target


def test_tower_floor_stores_every_task_and_reports_its_cost() -> None:
    command = [
        sys.executable, str(REPO / "bench" / "tower_floor.py"),
        "--runs", "1", "--repeat", "1",
    ]  # fmt: skip
    answer = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-3000:]
    assert answer.stdout.startswith("400 task updates in 50-task calls: ")
    assert "µs per task update" in answer.stdout
