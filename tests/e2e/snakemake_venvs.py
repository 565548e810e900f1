"""Real Snakemake releases in cached virtual environments, for the end-to-end tests.

Each version gets its own venv (``python -m venv`` + pip from the package index) under
``$PANOPTES_TEST_VENV_CACHE/snakemake-<version>``, by default
``~/.cache/panoptes-tests/snakemake-<version>``: outside the repository, so that a clean checkout
stays clean and later runs reuse it. A marker file written last says a venv is complete; a venv
without it (an interrupted build) or with other requirements is rebuilt. A file lock per version
keeps concurrent test sessions of the same user from building the same venv at once.

A build that fails because the index cannot be reached is reported as *unavailable* (the tests
skip, unless ``PANOPTES_TEST_REQUIRE_SNAKEMAKE=1``); any other failure is a real error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SNAKEMAKE_VERSIONS = ("7.31.1", "7.32.4", "8.30.0")

# What these releases need on Python 3.11 today, beyond ``snakemake==<version>``:
# - 7.x declare ``pulp>=2.0`` without an upper bound; PuLP 2.8 renamed ``list_solvers`` to
#   ``listSolvers``, and 7.x call the old name while building their argument parser, so every
#   command (even ``--version``) dies with an AttributeError. 8.x bound PuLP themselves (<2.9).
EXTRA_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "7.31.1": ("pulp<2.8",),
    "7.32.4": ("pulp<2.8",),
    "8.30.0": (),
}

CACHE_ENV = "PANOPTES_TEST_VENV_CACHE"
REQUIRE_ENV = "PANOPTES_TEST_REQUIRE_SNAKEMAKE"
MARKER = "panoptes-test-venv.json"

# pip's words when the index cannot be reached at all (no network, DNS, proxy); anything else
# that goes wrong in a build is a failure worth seeing, not a reason to skip.
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|ConnectTimeoutError|"
    r"Connection refused|ProxyError|Read timed out|No matching distribution found for snakemake=="
)
# A build that takes longer than this is stuck (a normal cold build takes 1-2 minutes).
BUILD_TIMEOUT = 900.0


def cache_root() -> Path:
    """Where the venvs live: ``$PANOPTES_TEST_VENV_CACHE`` or ``~/.cache/panoptes-tests``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "panoptes-tests"


def requirements(version: str) -> list[str]:
    """The pip requirements of one venv."""
    return [f"snakemake=={version}", *EXTRA_REQUIREMENTS[version]]


@dataclass(frozen=True)
class SnakemakeVenv:
    """A venv with one Snakemake release installed."""

    version: str
    path: Path
    build_seconds: float  # 0.0 when it came from the cache

    @property
    def snakemake(self) -> Path:
        """The ``snakemake`` console script (what a user types, so the recorded command line is
        the real one)."""
        return self.path / "bin" / "snakemake"


@dataclass(frozen=True)
class Unavailable:
    """Why a venv could not be had: ``offline`` (skip) or a real build error (fail)."""

    version: str
    offline: bool
    reason: str


class BuildError(Exception):
    """A step of a venv build failed; ``output`` is what it printed."""

    def __init__(self, step: str, output: str) -> None:
        super().__init__(step)
        self.step = step
        self.output = output


def _marker_content(version: str) -> dict[str, object]:
    # The base interpreter is part of the key: a venv links to it and breaks without it.
    return {
        "requirements": requirements(version),
        "python": sys.version,
        "base": getattr(sys, "_base_executable", sys.executable),
    }


def _is_complete(venv: Path, version: str) -> bool:
    marker = venv / MARKER
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if recorded != _marker_content(version):
        return False
    # The cache can outlive the interpreter it was built from: ask the venv itself.
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('snakemake'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return check.returncode == 0 and check.stdout.strip() == version


def _run(step: str, command: list[str]) -> None:
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(step, result.stdout)


def _check_entry_point(venv: Path, version: str) -> None:
    # The real entry point, not just an import: missing pins show up here (7.x with a new PuLP
    # fail while building their argument parser).
    result = subprocess.run(
        [str(venv / "bin" / "snakemake"), "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or result.stdout.strip() != version:
        raise BuildError("snakemake --version", result.stdout)


def _build(venv: Path, version: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    _run("python -m venv", [sys.executable, "-m", "venv", str(venv)])
    _run(
        "pip install",
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            # Offline, fail in seconds instead of pip's long default retries.
            "--retries",
            "2",
            "--timeout",
            "60",
            *requirements(version),
        ],
    )
    _check_entry_point(venv, version)
    (venv / MARKER).write_text(json.dumps(_marker_content(version), indent=2) + "\n")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(version: str, root: Path | None = None) -> SnakemakeVenv | Unavailable:
    """The venv of ``version``, from the cache or freshly built (blocking)."""
    root = root if root is not None else cache_root()
    venv = root / f"snakemake-{version}"
    with _locked(root / f"snakemake-{version}.lock"):
        if _is_complete(venv, version):
            return SnakemakeVenv(version, venv, 0.0)
        started = time.monotonic()
        try:
            _build(venv, version)
        except BuildError as error:
            shutil.rmtree(venv, ignore_errors=True)
            lines = error.output.strip().splitlines()
            if _UNREACHABLE.search(error.output):
                # One line for a skip reason: pip's last error says which requirement.
                last = next((line for line in reversed(lines) if line.startswith("ERROR")), "")
                return Unavailable(
                    version, True, f"snakemake {version}: package index not reachable ({last})"
                )
            tail = "\n".join(lines[-25:])
            return Unavailable(
                version, False, f"snakemake {version}: {error.step} failed in {venv}:\n{tail}"
            )
        except subprocess.TimeoutExpired as error:
            shutil.rmtree(venv, ignore_errors=True)
            return Unavailable(version, False, f"snakemake {version}: {error}")
        return SnakemakeVenv(version, venv, time.monotonic() - started)


class VenvBuilder:
    """Builds the venvs a test session needs in parallel, on first demand.

    Builds are subprocess-bound (downloads, one C extension for 7.x), so a few threads cut a
    cold start to about the time of the slowest build instead of the sum.
    """

    def __init__(self, versions: Iterable[str], root: Path | None = None) -> None:
        self.versions = list(dict.fromkeys(versions))
        self.root = root
        self._executor: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[SnakemakeVenv | Unavailable]] = {}

    def get(self, version: str) -> SnakemakeVenv | Unavailable:
        """The venv of ``version`` (starting every build on the first call)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, len(self.versions)), thread_name_prefix="snakemake-venv"
            )
        for wanted in (*self.versions, version):
            if wanted not in self._futures:
                self._futures[wanted] = self._executor.submit(ensure_venv, wanted, self.root)
        return self._futures[version].result()

    def close(self) -> None:
        """Wait for builds under way (a half-built venv would be rebuilt anyway)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
