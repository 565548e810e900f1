"""Executors: start a head job, follow it, stop it. ``local`` runs it as a child process in
a process group of its own; ``slurm`` submits it with ``sbatch`` and follows it with
``squeue`` (the exit code comes from a file the job script writes)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import IO, Protocol

from .argv import LAUNCH_ID_VARIABLE, HeadJob, inherited_environment
from .queues import Queue

SLURM_TIMEOUT = 30.0  # seconds for one sbatch/squeue/scancel call


class ExecutorError(RuntimeError):
    """A head job could not be started."""


class Head(Protocol):
    """A started head job."""

    def poll(self) -> int | None:
        """Its exit code once it has ended, else None."""

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM to the whole process group, or ``scancel``)."""

    def kill(self) -> None:
        """Stop it now (SIGKILL, or ``scancel --signal=KILL``) with every process it left."""

    @property
    def handles(self) -> dict[str, str | int]:
        """What the launch records to reach it later (process group, SLURM job id)."""


def processes_of(launch_id: str) -> list[int]:
    """Pids of this machine's processes started for a launch (they carry its id in their
    environment, whatever process group they moved to)."""
    marker = f"{LAUNCH_ID_VARIABLE}={launch_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_everything(launch_id: str, pgid: int | None) -> None:
    """SIGKILL a launch's process group and every process of it that left the group."""
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in processes_of(launch_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class LocalHead:
    """A head job running here, in its own session and process group."""

    def __init__(self, job: HeadJob, launch_id: str, log: IO[bytes]) -> None:
        self.launch_id = launch_id
        try:
            self.process = subprocess.Popen(
                job.argv,
                cwd=job.cwd,
                env={**inherited_environment(), **job.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise ExecutorError(f"cannot start {job.argv[0]}: {error}") from None
        self.pgid = self.process.pid

    @property
    def handles(self) -> dict[str, str | int]:
        return {"pgid": self.pgid}

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None and code < 0:
            return 128 - code  # killed by a signal: the shell's convention
        return code

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGTERM)

    def kill(self) -> None:
        kill_everything(self.launch_id, self.pgid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _slurm(*argv: str) -> str:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=SLURM_TIMEOUT,
            check=False,
            # sbatch hands its environment to the job (--export=ALL): never the hub's secrets.
            env=inherited_environment(),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ExecutorError(f"{argv[0]} failed: {error}") from None
    if done.returncode != 0:
        raise ExecutorError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def sbatch_script(job: HeadJob, queue: Queue, launch_id: str) -> str:
    """The batch script of a head job: SLURM options, the environment, then the argv (each
    element quoted) with its exit code kept in a file."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name=panoptes-{launch_id}"]
    lines.append(f"#SBATCH --output={job.log_path}")
    lines.append(f"#SBATCH --chdir={job.cwd}")
    for option, value in (
        ("partition", queue.slurm_partition),
        ("account", queue.slurm_account),
        ("time", queue.slurm_time),
        ("mem", queue.slurm_mem),
        ("cpus-per-task", queue.slurm_cpus),
    ):
        if value is not None:
            lines.append(f"#SBATCH --{option}={value}")
    for name, value in job.env.items():
        lines.append(f"export {name}={shlex.quote(value)}")
    exit_file = shlex.quote(str(job.folder / "exit_code"))
    lines.append(" ".join(shlex.quote(part) for part in job.argv) + " &")
    # The engine runs as a child so that scancel's SIGTERM reaches it and it can finish.
    lines.append("child=$!")
    lines.append("trap 'kill -TERM \"$child\" 2>/dev/null' TERM")
    lines.append('wait "$child"; code=$?')
    lines.append('if kill -0 "$child" 2>/dev/null; then wait "$child"; code=$?; fi')
    lines.append(f'echo "$code" > {exit_file}')
    lines.append('exit "$code"')
    return "\n".join(lines) + "\n"


class SlurmHead:
    """A head job submitted to SLURM."""

    def __init__(self, job: HeadJob, queue: Queue, launch_id: str) -> None:
        self.folder = job.folder
        script = job.folder / "head.sbatch"
        descriptor = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(sbatch_script(job, queue, launch_id))
        output = _slurm("sbatch", "--parsable", "--export=ALL", str(script))
        self.job_id = output.strip().split(";")[0]
        if not self.job_id:
            raise ExecutorError("sbatch answered without a job id")

    @property
    def handles(self) -> dict[str, str | int]:
        return {"slurm_job_id": self.job_id}

    def poll(self) -> int | None:
        try:
            state = _slurm("squeue", "--noheader", "--jobs", self.job_id, "--format=%T").strip()
        except ExecutorError:
            state = ""  # squeue refuses ids it has forgotten: the job has ended
        if state and state not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"):
            return None
        exit_file = self.folder / "exit_code"
        try:
            return int(exit_file.read_text().strip())
        except (OSError, ValueError):
            return 137 if state in ("CANCELLED", "TIMEOUT", "NODE_FAIL", "") else 1

    def terminate(self) -> None:
        with contextlib.suppress(ExecutorError):
            _slurm("scancel", "--signal=TERM", "--full", self.job_id)

    def kill(self) -> None:
        with contextlib.suppress(ExecutorError):
            _slurm("scancel", self.job_id)


def cancel_slurm_job(job_id: str) -> None:
    """Cancel a SLURM job whose worker is gone."""
    with contextlib.suppress(ExecutorError):
        _slurm("scancel", job_id)
