"""Draw ``results.json`` as ``results.png``: throughput per stream and server, and read latency.

Run by ``bench/run.py`` with the Python of the bench tools environment (matplotlib is a
dependency of the benchmark only, not of the hub)::

    ~/.cache/panoptes-bench/tools/bin/python bench/chart.py bench/results.json bench/results.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here
import matplotlib.pyplot as plt

COLOURS = {
    "panoptes": "#2b6cb0",
    "panoptes-ui": "#dd6b20",
    "nextflow-turret": "#38a169",
    "store-only Flask": "#718096",
    "bare Flask": "#a0aec0",
}


def _bars(axis: Any, labels: list[str], series: dict[str, list[float | None]], unit: str) -> None:
    """Horizontal grouped bars, one group per label, one bar per server."""
    height = 0.8 / max(len(series), 1)
    for slot, (server, values) in enumerate(series.items()):
        positions = [i + slot * height for i in range(len(labels))]
        shown = [v or 0.0 for v in values]
        bars = axis.barh(
            positions, shown, height=height, label=server, color=COLOURS.get(server, "#718096")
        )
        for bar, value in zip(bars, values, strict=True):
            if value:
                axis.text(
                    bar.get_width() * 1.05,
                    bar.get_y() + height / 2,
                    f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
                    va="center",
                    fontsize=7,
                )
    axis.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))])
    axis.set_yticklabels(labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel(unit, fontsize=8)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.grid(axis="x", alpha=0.3)


def draw(results: dict[str, Any], out: Path) -> None:
    """Two panels: write streams (units per second) and read pages (p95 in ms)."""
    summaries = results["write"]
    labels = list(dict.fromkeys(s["label"] for s in summaries))
    present = {s["server"] for s in summaries}
    servers = [name for name in COLOURS if name in present]
    series: dict[str, list[float | None]] = {name: [] for name in servers}
    for label in labels:
        for name in servers:
            found = [s for s in summaries if s["label"] == label and s["server"] == name]
            series[name].append(found[0]["rate"] if found and found[0]["ok"] else None)
    pages = results.get("read", [])
    page_labels = list(dict.fromkeys(p["page"] for p in pages))
    page_servers = [name for name in COLOURS if name in {p["server"] for p in pages}]
    read_series: dict[str, list[float | None]] = {name: [] for name in page_servers}
    for label in page_labels:
        for name in page_servers:
            found = [p for p in pages if p["page"] == label and p["server"] == name]
            read_series[name].append(found[0]["p95_ms"] if found else None)

    rows = 2 if pages else 1
    figure, axes = plt.subplots(
        rows, 1, figsize=(11, 3 + 0.55 * len(labels) + 0.45 * len(pages)), squeeze=False
    )
    axes = [row[0] for row in axes]
    _bars(axes[0], labels, series, "events or task updates per second (log scale; higher wins)")
    axes[0].set_title("Ingestion, same machine, same run", fontsize=10)
    if pages:
        _bars(axes[1], page_labels, read_series, "p95 latency, ms (log scale; lower wins)")
        axes[1].axvline(100, color="#e53e3e", linestyle="--", linewidth=1)
        config = results["config"]
        axes[1].set_title(
            f"Read side: panoptes {config['read_runs']:,} runs, one run of "
            f"{config['read_jobs']:,} jobs; peers "
            f"{config.get('peer_read_runs', config['read_runs']):,} runs, "
            f"{config.get('peer_read_jobs', config['read_jobs']):,} jobs"
            " (dashed: the 100 ms target)",
            fontsize=10,
        )
    figure.suptitle(f"panoptes benchmark, {results['machine']['date']}", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
