"""The worker: claims queued launches, runs their head jobs, keeps their logs in the database,
heartbeats, honours cancels, and marks the launches of vanished workers ``lost``.

One thread claims and heartbeats; each launch it runs has a thread of its own that follows
the head job. Several workers, on several machines, share one database.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from flask import Flask

from .. import store as runs
from . import argv, executors
from . import store as launches
from .models import Launch
from .queues import Queue

logger = logging.getLogger(__name__)
LOG_CHUNK_CHARACTERS = 64 * 1024


def hub_url(config: dict[str, object] | object) -> str | None:
    """The address handed to the engines: PUBLIC_URL, else where this hub listens."""
    getter = getattr(config, "get", None)
    if getter is None:
        return None
    value = getter("PUBLIC_URL") or getter("LISTEN_URL")
    return str(value).rstrip("/") if value else None


class LogPump:
    """Moves what a head job wrote to its log file into the database, in order, whole
    characters only."""

    def __init__(self, path: Path, launch_id: str) -> None:
        self.path = path
        self.launch_id = launch_id
        self.position = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pump(self, final: bool = False) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.position)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        self.position += len(data)
        text = self.decoder.decode(data, final=final)
        for start in range(0, len(text), LOG_CHUNK_CHARACTERS):
            launches.append_log(self.launch_id, text[start : start + LOG_CHUNK_CHARACTERS])

    def note(self, message: str) -> None:
        """A line of the worker's own in the log."""
        launches.append_log(self.launch_id, f"[panoptes] {message}\n")


class Worker:
    """Runs the launches of ``queues`` until ``stop`` is set."""

    def __init__(self, app: Flask, queues: Sequence[Queue], hub: str) -> None:
        self.app = app
        self.queues = list(queues)
        self.hub = hub
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stop = threading.Event()
        self.poll = float(app.config["LAUNCH_POLL_SECONDS"])
        self.lost_after = timedelta(seconds=float(app.config["LAUNCH_LOST_SECONDS"]))
        self.grace = float(app.config["LAUNCH_CANCEL_GRACE_SECONDS"])
        self._cancels: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- the claiming thread -------------------------------------------------------------

    def run(self) -> None:
        """Work until ``stop`` is set. Launches still running then are left to their head
        jobs: another worker marks them lost and stops what it can reach."""
        with self.app.app_context():
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception:  # a database hiccup must not end the worker
                    logger.exception("launch worker %s: tick failed", self.worker_id)
                self.stop.wait(self.poll)

    def tick(self) -> None:
        """One round: heartbeat and pass on cancels, reap lost launches, claim new ones."""
        with self._lock:
            finished = [lid for lid, thread in self._threads.items() if not thread.is_alive()]
            for launch_id in finished:
                del self._threads[launch_id]
                self._cancels.pop(launch_id, None)
        for launch_id, cancel in launches.heartbeat(self.worker_id):
            event = self._cancels.get(launch_id)
            if cancel and event is not None:
                event.set()
        for lost in launches.mark_lost(self.lost_after):
            self._reap(lost)
        for queue in self.queues:
            while not self.stop.is_set():
                claimed = launches.claim(queue.name, queue.max_active, self.worker_id, self.host)
                if claimed is None:
                    break
                self._start(claimed, queue)

    def _reap(self, launch: Launch) -> None:
        """Stop what is left of a lost launch, if this worker can reach it."""
        logger.warning("launch %s is lost: %s", launch.id, launch.error)
        with contextlib.suppress(Exception):
            launches.append_log(launch.id, f"[panoptes] lost: {launch.error}\n")
        reached = False
        if launch.slurm_job_id:
            executors.cancel_slurm_job(launch.slurm_job_id)
            reached = True
        elif launch.host == self.host:
            executors.kill_everything(launch.id, launch.pgid)
            reached = True
        if reached:
            runs.cancel(launch.workflow_id)

    def _start(self, claimed: tuple[Launch, str], queue: Queue) -> None:
        launch, token = claimed
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._follow,
            args=(launch, token, queue, cancel),
            name=f"launch-{launch.id}",
            daemon=True,
        )
        with self._lock:
            self._cancels[launch.id] = cancel
            self._threads[launch.id] = thread
        thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the launch threads (tests, shutdown)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    # -- one launch ------------------------------------------------------------------------

    def _follow(self, launch: Launch, token: str, queue: Queue, cancel: threading.Event) -> None:
        with self.app.app_context():
            try:
                self._run(launch, token, queue, cancel)
            except Exception as error:
                logger.exception("launch %s failed in the worker", launch.id)
                with contextlib.suppress(Exception):
                    launches.append_log(launch.id, f"[panoptes] worker error: {error!r}\n")
                    launches.finished(launch.id, launches.FAILED, None, f"worker error: {error}")

    def _run(self, launch: Launch, token: str, queue: Queue, cancel: threading.Event) -> None:
        try:
            job = argv.build(launch, queue, self.hub, token)
        except (ValueError, OSError) as error:
            launches.append_log(launch.id, f"[panoptes] cannot start: {error}\n")
            launches.finished(launch.id, launches.FAILED, None, str(error))
            return
        pump = LogPump(job.log_path, launch.id)
        pump.note(f"worker {self.worker_id} starts on queue {queue.name} ({queue.executor})")
        pump.note("argv: " + " ".join(job.argv))
        head: executors.Head
        try:
            if queue.executor == "slurm":
                job.log_path.touch()
                head = executors.SlurmHead(job, queue, launch.id)
            else:
                with job.log_path.open("ab") as log:
                    head = executors.LocalHead(job, launch.id, log)
        except executors.ExecutorError as error:
            pump.note(f"cannot start: {error}")
            launches.finished(launch.id, launches.FAILED, None, str(error))
            return
        handles = head.handles
        launches.started(
            launch.id,
            pgid=int(handles["pgid"]) if "pgid" in handles else None,
            slurm_job_id=str(handles["slurm_job_id"]) if "slurm_job_id" in handles else None,
        )
        code, cancelled = self._wait(head, pump, cancel)
        pump.pump(final=True)
        if queue.executor == "local":
            executors.kill_everything(launch.id, None)  # nothing of it may outlive it
        if cancelled:
            pump.note("cancelled")
            launches.finished(launch.id, launches.CANCELLED, code)
            runs.cancel(launch.workflow_id)
        else:
            pump.note(f"exit code {code}")
            status = launches.SUCCEEDED if code == 0 else launches.FAILED
            launches.finished(launch.id, status, code, None if code == 0 else f"exit code {code}")

    def _wait(
        self, head: executors.Head, pump: LogPump, cancel: threading.Event
    ) -> tuple[int | None, bool]:
        """Follow the head job to its end; the exit code, and whether it was cancelled."""
        terminated_at: float | None = None
        killed = False
        while True:
            code = head.poll()
            pump.pump()
            if code is not None:
                return code, terminated_at is not None
            if cancel.is_set() and terminated_at is None:
                pump.note("cancel requested: stopping the head job")
                head.terminate()
                terminated_at = time.monotonic()
            elif (
                terminated_at is not None
                and not killed
                and time.monotonic() - terminated_at >= self.grace
            ):
                pump.note(f"still running {self.grace:g}s after SIGTERM: killing it")
                head.kill()
                killed = True
            if cancel.is_set():
                time.sleep(min(self.poll, 0.2))  # stopping: look again soon
            else:
                cancel.wait(self.poll)
