"""Sampling the hub's workers with py-spy while a stream runs, and summing the samples up.

py-spy attaches from outside (no change to the hub, nothing loaded into it), so the profile is
of the server exactly as measured. Two kinds of profile:

- ``cpu``: only the thread holding the interpreter lock is sampled (``--gil``): where the
  workers' CPU time goes;
- ``wall``: every thread that is not idle: also where requests *wait* (for SQLite's write lock,
  for instance), which CPU samples cannot show.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 250  # per second; py-spy's default of 100 gives too few samples in a short pass
# Leaf frames of threads that wait for work: gthread's pool and poller, queues, conditions.
IDLE = frozenset(
    {
        "_worker",
        "EpollSelector.select",
        "Condition.wait",
        "Event.wait",
        "SimpleQueue.get",
        "ThreadWorker.wait_for_and_dispatch_events",
    }
)
# SQLAlchemy frames whose time is spent inside SQLite's C code (sqlite3 releases no frame).
SQLITE_CALLS = frozenset(
    {
        "do_execute",
        "do_executemany",
        "do_commit",
        "do_rollback",
        "Cursor.execute",
        "Connection.commit",
        "_sqlite_on_begin",
    }
)


@dataclass
class Profile:
    """Where the sampled workers spent their time."""

    kind: str  # "cpu" or "wall"
    samples: int
    functions: list[tuple[str, float]]  # panoptes function -> share of samples on the stack
    packages: list[tuple[str, float]]  # package of the top frame -> share of samples
    raw: str


class Profiler:
    """``with Profiler(py_spy, pid, out, kind):`` samples ``pid`` and its children meanwhile."""

    def __init__(self, py_spy: Path, pid: int, out: Path, kind: str = "cpu") -> None:
        self.command = [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            str(SAMPLE_RATE),
            "--nonblocking",
            "--output",
            str(out),
        ]
        if kind == "cpu":
            self.command.append("--gil")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        # py-spy writes its output when interrupted.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _split(frame: str) -> tuple[str, str]:
    """``function (path/to/file.py:123)`` -> (function, path/to/file.py)."""
    function, _, where = frame.partition(" (")
    return function, where.rsplit(":", 1)[0].rstrip(")")


def _package(function: str, path: str) -> str:
    if function in SQLITE_CALLS:
        return "sqlite3 (C code, called by SQLAlchemy)"
    top = path.split("/", 1)[0]
    return top.removesuffix(".py") or "?"


def summarize(raw: Path, kind: str, top: int = 20) -> Profile:
    """Shares of samples per panoptes function (inclusive) and per package (top frame)."""
    functions: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_split(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames or frames[-1][0] in IDLE:
            continue
        count = int(count_text)
        samples += count
        packages[_package(*frames[-1])] += count
        seen = set()
        for function, path in frames:
            if path.startswith("panoptes/") or function in SQLITE_CALLS:
                name = f"{function} ({path})" if function not in SQLITE_CALLS else function
                if name not in seen:
                    seen.add(name)
                    functions[name] += count
    share = max(samples, 1)
    return Profile(
        kind=kind,
        samples=samples,
        functions=[(name, n / share) for name, n in functions.most_common(top)],
        packages=[(name, n / share) for name, n in packages.most_common(12)],
        raw=str(raw),
    )
