"""The servers under test: installing the peers, starting and stopping each server, and
reading the CPU time its processes used.

Every server listens on loopback only. Gunicorn servers (the hub, panoptes-ui, the bare Flask
ceiling) all take their settings from the hub's own ``panoptes/gunicorn_conf.py`` (the other
two through ``gunicorn_same.py``, which leaves out the hub's hooks), so they run with exactly the
same settings: gthread, workers and threads from the environment, access log on.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from loadgen import HttpError, get

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The hub's settings without its hooks, for the ceiling and panoptes-ui (see the file).
GUNICORN_SAME = HERE / "gunicorn_same.py"
CACHE = Path(os.environ.get("PANOPTES_BENCH_CACHE", Path.home() / ".cache" / "panoptes-bench"))
HOST = "127.0.0.1"
WORKERS = 2
THREADS = 16
START_TIMEOUT = 90.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The ceiling (ceiling_app.py) answers a constant; the floor (floor_app.py) also stores each
# request with one commit.
CEILING = "bare Flask"
FLOOR = "store-only Flask"
FLOOR_DATABASE = "floor.db"

PANOPTES_UI_VERSION = "1.6.2"
TURRET_VERSION = "0.1.0"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: fields are counted after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


@dataclass
class Server:
    """One server process (and its workers) serving on ``HOST:port``."""

    name: str
    command: list[str]
    workdir: Path
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    note: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> None:
        """Start and wait until ``ready_path`` answers 2xx."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        # The hub's gunicorn settings read these; the other gunicorn servers get them too.
        env.update(
            PANOPTES_BIND=f"{HOST}:{self.port}",
            PANOPTES_WORKERS=str(WORKERS),
            PANOPTES_THREADS=str(THREADS),
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "metrics"),
        )
        (self.workdir / "metrics").mkdir(exist_ok=True)
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                status, _ = get(HOST, self.port, self.ready_path)
                if status < 300:
                    return
            except (OSError, HttpError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGTERM the server (gunicorn stops its workers), SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes (master and live workers)."""
        assert self.process is not None
        return sum(_process_cpu(pid) for pid in _descendants(self.process.pid))

    def worker_pids(self) -> list[int]:
        """The server's processes below the master (gunicorn workers), or the server itself."""
        assert self.process is not None
        pids = _descendants(self.process.pid)
        return pids[1:] or pids


# -- installing the peers ---------------------------------------------------------------------


def pip_install(python: Path, *args: str) -> None:
    """``pip install`` into the environment of ``python``; its chatter only on failure."""
    answer = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed:\n{answer.stderr[-3000:]}")


def _installed(venv: Path, package: str) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    answer = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.stdout.strip() if answer.returncode == 0 else None


def ensure_venv(name: str, requirements: dict[str, str], root: Path = CACHE) -> Path:
    """A virtual environment under ``root`` holding ``requirements`` (name -> version),
    created or completed from the package registry when needed."""
    venv = root / name
    missing = {p: v for p, v in requirements.items() if _installed(venv, p) != v}
    if not missing:
        return venv
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing {', '.join(f'{p}=={v}' for p, v in missing.items())} into {venv}")
    pip_install(venv / "bin" / "python", *(f"{p}=={v}" for p, v in missing.items()))
    return venv


def _site_packages(venv: Path) -> Path:
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / python / "site-packages"


def install_panoptes_ui(root: Path = CACHE) -> Path:
    """panoptes-ui and, for running it the same way as the hub, our gunicorn version."""
    return ensure_venv(
        "panoptes-ui",
        {"panoptes-ui": PANOPTES_UI_VERSION, "gunicorn": version("gunicorn")},
        root,
    )


def install_turret(root: Path = CACHE) -> Path:
    """nextflow-turret, with the two folders its published packages lack."""
    venv = ensure_venv("nextflow-turret", {"nextflow-turret": TURRET_VERSION}, root)
    # 0.1.0 mounts server/static and loads server/templates at start; the wheel ships
    # neither, and the app refuses to start without them. Empty folders are enough for the
    # trace endpoints and the JSON API.
    server = _site_packages(venv) / "nextflow_turret" / "server"
    for folder in ("static", "templates"):
        (server / folder).mkdir(exist_ok=True)
    return venv


# -- the servers ------------------------------------------------------------------------------


def hub(workdir: Path, python: str = sys.executable, source: Path = REPO) -> Server:
    """Our hub, exactly as documented: gunicorn with ``panoptes/gunicorn_conf.py``, SQLite.

    ``source`` is the folder holding the ``panoptes`` package to run (a scratch copy with a
    change to try, for instance); it goes first on the import path.
    """
    database = workdir / "hub.db"
    return Server(
        name="panoptes",
        command=[
            python,
            "-m",
            "gunicorn",
            "-c",
            "python:panoptes.gunicorn_conf",
            "panoptes:create_app()",
        ],
        workdir=workdir,
        ready_path="/healthz",
        env={
            "PANOPTES_DATABASE_URL": f"sqlite:///{database}",
            "PANOPTES_SECRET_KEY": secrets.token_hex(32),
            "PYTHONPATH": str(source),
        },
        note=f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, SQLite",
    )


def _same_gunicorn(python: str, app: str, *args: str) -> list[str]:
    """The command serving ``app`` under the hub's gunicorn settings (``gunicorn_same.py``)."""
    return [python, "-m", "gunicorn", "-c", str(GUNICORN_SAME), *args, app]


def ceiling(workdir: Path, python: str = sys.executable) -> Server:
    """A Flask app answering a constant, under the hub's gunicorn settings."""
    return Server(
        name=CEILING,
        command=_same_gunicorn(python, "ceiling_app:app", "--pythonpath", str(HERE)),
        workdir=workdir,
        ready_path="/",
        note=f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, no database",
    )


def floor(workdir: Path, python: str = sys.executable) -> Server:
    """A Flask app storing each request with one SQLite commit, under the hub's gunicorn
    settings (``floor_app.py``)."""
    return Server(
        name=FLOOR,
        command=_same_gunicorn(python, "floor_app:app", "--pythonpath", str(HERE)),
        workdir=workdir,
        ready_path="/",
        env={"FLOOR_DATABASE": str(workdir / FLOOR_DATABASE), "PYTHONPATH": str(REPO)},
        note=f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, SQLite, one row a request",
    )


def panoptes_ui(workdir: Path, venv: Path) -> Server:
    """panoptes-ui's WSGI app (``panoptes.app:app``) under the hub's gunicorn settings."""
    database = workdir / "panoptes-ui.db"
    return Server(
        name="panoptes-ui",
        command=_same_gunicorn(str(venv / "bin" / "python"), "panoptes.app:app"),
        workdir=workdir,
        ready_path="/api/service-info",
        # Its own default URL carries check_same_thread=False, needed under threads.
        env={"PANOPTES_DB_URL": f"sqlite:///{database}?check_same_thread=False"},
        note=f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, SQLite",
    )


def turret(workdir: Path, venv: Path) -> Server:
    """nextflow-turret as it ships: its ``turret`` command (uvicorn, one process).

    Its run state lives in the memory of its one process (SQLite is written through and read
    only at start), so several workers would each see a part of the runs: one process is the
    only correct way to run it.
    """
    return Server(
        name="nextflow-turret",
        command=[
            str(venv / "bin" / "turret"),
            "--host",
            HOST,
            "--port",
            "{port}",
            "--db",
            str(workdir / "turret.db"),
            "--log-dir",
            str(workdir / "logs"),
            "--work-dir",
            str(workdir),
        ],
        workdir=workdir,
        ready_path="/user-info",
        note="its own `turret` command: uvicorn, 1 process (its state is in-process)",
    )


def remove(path: Path) -> None:
    """Delete a scratch folder."""
    shutil.rmtree(path, ignore_errors=True)
