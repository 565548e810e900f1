"""Turn a necroflow run into the hub's engine-neutral events, through necroflow's own hooks.

``necroflow.run`` (what ``DAG.run`` calls) takes three callables this module wraps:

- ``rule_call_runner(call, log_path)`` runs one attempt of a rule call in a worker thread:
  its start is reported there, and its failure when no attempt is left (exit code, error,
  the tail of its ``job.log``);
- ``scheduler(ready, remaining, available)`` is called by the run loop before each round,
  after the plan and after every completion: there the state of every required call is
  read and its changes reported (queued, finished, cached, failed without a runner error);
- ``on_complete(report)`` gets the final report: whatever is still unreported in it is.

Every event is queued on the shared client's :class:`Sender`, which never blocks; nothing
in here may raise into necroflow: an error of the reporter is told once on stderr and the
run goes on unreported.
"""

from __future__ import annotations

import getpass
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from panoptes_hub_client import EventsChannel, Notifier, Sender, normalise_address
from panoptes_hub_client.channels import RUN_ID_PATTERN
from panoptes_hub_client.sender import CloseReport

ENGINE = "necroflow"
# The tail of a failed call's job.log sent with its failure.
LOG_TAIL_LINES = 100
LOG_TAIL_BYTES = 32 * 1024
ERROR_CHARS = 4000
MAX_TAGS = 20
TAG_CHARS = 200
# The hub keeps job ids of at most this many characters.
JOB_ID_CHARS = 64
SPOOL_SUBDIR = Path(".panoptes") / "spool"

Event = dict[str, Any]


def spool_directory(workdir: str | os.PathLike[str]) -> Path:
    """Where a run started in ``workdir`` keeps the events the hub did not take."""
    return Path(workdir) / SPOOL_SUBDIR


def new_run_id() -> str:
    """A fresh id for a run on the hub (the event API's run ids are the client's)."""
    return f"necroflow-{uuid.uuid4().hex}"


def job_id(call: Any) -> str:
    """The hub's id of a rule call: ``<rule>/<start of its provenance hash>``."""
    rule = str(call.rule.__name__)
    digest = str(getattr(call, "provenance_hash", "") or call.relative_path.name)
    head = rule[: JOB_ID_CHARS - 17]
    return f"{head}/{digest[: JOB_ID_CHARS - len(head) - 1]}"


def read_log_tail(
    path: str | os.PathLike[str], lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES
) -> str | None:
    """The last ``lines`` lines of a log file, at most ``limit`` bytes; None if unreadable."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return None
    if len(data) == limit and size > limit:
        data = data.split(b"\n", 1)[-1]  # drop the partial first line
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool | int | float | str):
        return str(value)[:TAG_CHARS]
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))[:TAG_CHARS]
    return None


def tags_of(call: Any) -> dict[str, str]:
    """The call's plain parameters (values given to the rule, its config) as tags."""
    tags: dict[str, str] = {}
    for source in (getattr(call, "input_values", None), getattr(call, "config", None)):
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            text = _scalar(value)
            if text is not None and len(tags) < MAX_TAGS:
                tags[str(key)[:TAG_CHARS]] = text
    return tags


def _utc(stamp: Any) -> float | None:
    """Epoch seconds of a necroflow ISO timestamp, or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def run_stats(call: Any) -> dict[str, Any]:
    """The ``[run]`` table necroflow writes in a completed call's ``.rip/run.toml``."""
    try:
        with open(call.workdir / ".rip" / "run.toml", "rb") as handle:
            table = tomllib.load(handle).get("run")
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


class Reporter:
    """Report one necroflow run; see the module docstring. Thread-safe."""

    def __init__(
        self,
        dag: Any,
        address: str,
        *,
        name: str | None = None,
        token: str | None = None,
        run_id: str | None = None,
        command_line: str | None = None,
        timeout: float = 10.0,
        close_timeout: float = 5.0,
        workdir: str | os.PathLike[str] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.dag = dag
        self.address = normalise_address(address)
        self.name = name
        self.run_id = run_id or new_run_id()
        if not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise ValueError(
                f"run id {self.run_id!r} is not 1-64 characters of A-Z a-z 0-9 _ . - "
                "starting with a letter or digit"
            )
        self.command_line = command_line if command_line is not None else " ".join(sys.argv)
        self.close_timeout = close_timeout
        self.workdir = Path(workdir if workdir is not None else os.getcwd())
        self.notifier = notifier or Notifier()
        directory = spool_directory(self.workdir)
        channel = EventsChannel(ENGINE)
        channel.token_hint = (
            "Set NECROFLOW_PANOPTES_TOKEN (or pass token= / --panoptes-token) to the hub's token."
        )
        self.sender = Sender(
            channel=channel,
            address=self.address,
            run_id=self.run_id,
            spool_directory=lambda: directory,
            token=token,
            timeout=timeout,
            name=name,
            notifier=self.notifier,
        )
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        # Job ids by what was last reported of them: queued, started, done, failed, cached.
        self._reported: dict[str, str] = {}
        self._started_at: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._closed = False

    # -- events -----------------------------------------------------------------------------

    def emit(self, kind: str, when: float | None = None, **fields: Any) -> None:
        """Queue one event (never blocks, never raises)."""
        try:
            event: Event = {
                "event_id": f"{self.run_id}-{next(self._seq)}",
                "type": kind,
                "time": time.time() if when is None else when,
            }
            event.update({key: value for key, value in fields.items() if value is not None})
            self.sender.submit(event)
        except Exception as exc:
            self._fault(exc)

    def _fault(self, exc: BaseException) -> None:
        self.notifier.once(
            "reporter",
            f"reporting to the hub failed ({exc!r}); the pipeline goes on unreported",
        )

    def _job_fields(self, call: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "job_id": job_id(call),
            "step": str(call.rule.__name__),
            "work_dir": str(call.workdir),
        }
        tags = tags_of(call)
        if tags:
            fields["tags"] = tags
        threads = _safe(lambda: call.resources.get("threads"))
        if isinstance(threads, int) and not isinstance(threads, bool):
            fields["resources"] = {"cpus": threads}
        return fields

    def _mark(self, call: Any, state: str) -> bool:
        """Record ``state`` for the call; False if it was already reported as final."""
        key = job_id(call)
        with self._lock:
            previous = self._reported.get(key)
            if previous in ("done", "failed", "cached") or previous == state:
                return False
            self._reported[key] = state
            return True

    def required_calls(self) -> list[Any]:
        """The rule calls this run needs, in the DAG's order."""
        keys = self.dag.required_call_keys
        return [call for key, call in self.dag.calls.items() if key in keys]

    def run_started(self, params: Mapping[str, Any]) -> None:
        """Report the run's start with its steps (rules) and how they depend on each other."""
        try:
            steps: dict[str, set[str]] = {}
            for call in self.required_calls():
                depends = steps.setdefault(str(call.rule.__name__), set())
                depends.update(str(parent.rule.__name__) for parent in call.parent_calls)
            self.emit(
                "run_started",
                name=self.name,
                user=_safe(getpass.getuser),
                host=_safe(socket.gethostname),
                command_line=self.command_line,
                work_dir=str(self.workdir),
                params={
                    "nodes_dir": str(self.dag.nodes_dir),
                    **{k: _plain(v) for k, v in params.items()},
                },
                steps=[
                    {"name": step, "depends_on": sorted(depends - {step})}
                    for step, depends in steps.items()
                ],
            )
        except Exception as exc:
            self._fault(exc)

    def sweep(self, report: Mapping[str, Any] | None = None) -> None:
        """Report what changed in the state of the required calls since the last sweep."""
        try:
            executions = dict(report or {})
            for call in self.required_calls():
                self._sweep_one(call, executions.get(call.relative_path.as_posix()))
        except Exception as exc:
            self._fault(exc)

    def _sweep_one(self, call: Any, execution: Any) -> None:
        state = getattr(call.state, "value", None)
        key = job_id(call)
        with self._lock:
            previous = self._reported.get(key)
        if execution is not None:
            if execution.cached:
                state = "cached"
            elif execution.state == "up_to_date":
                state = "up_to_date"
            elif execution.state in ("failed", "interrupted"):
                state = execution.state
        # Queued once ready to run, as Snakemake reports a job when it schedules it: calls
        # behind a failure never show up as waiting forever.
        if state == "ready" and previous is None:
            if self._mark(call, "queued"):
                self.emit("job_queued", **self._job_fields(call))
        elif state in ("up_to_date", "cached"):
            with self._lock:
                started = key in self._started_at
            if state == "up_to_date" and started:
                if self._mark(call, "done"):
                    self._finished(call, execution)
            elif self._mark(call, "cached"):
                self.emit("job_cached", **self._job_fields(call))
        elif state in ("failed", "interrupted") and self._mark(call, "failed"):
            error = getattr(execution, "error", None) or f"rule call {state}"
            self._failed(call, getattr(execution, "exit_code", None), error)

    def _finished(self, call: Any, execution: Any) -> None:
        key = job_id(call)
        stats = run_stats(call)
        start = _utc(stats.get("started_at")) or self._started_at.get(key)
        end = (
            _utc(stats.get("finished_at"))
            or _utc(getattr(execution, "finished_at", None))
            or time.time()
        )
        usage = {"realtime_ms": int((end - start) * 1000)} if start is not None else None
        self.emit("job_finished", end, usage=usage, **self._job_fields(call))

    def _failed(self, call: Any, exit_code: int | None, error: str) -> None:
        self.emit(
            "job_failed",
            exit_code=exit_code,
            error=error[:ERROR_CHARS],
            log_tail=read_log_tail(call.log_path()),
            **self._job_fields(call),
        )

    # -- necroflow's hooks ---------------------------------------------------------------------

    def wrap_runner(self, runner: Callable[[Any, Path], Any]) -> Callable[[Any, Path], Any]:
        """Wrap ``rule_call_runner``: report each call's start, and its failure once necroflow
        will not try it again."""

        def run_call(call: Any, log_path: Path) -> Any:
            self._attempt_started(call, log_path)
            try:
                return runner(call, log_path)
            except BaseException as exc:
                self._attempt_failed(call, exc)
                raise

        return run_call

    def _attempt_started(self, call: Any, log_path: Path) -> None:
        try:
            key = job_id(call)
            with self._lock:
                attempt = self._attempts.get(key, 0) + 1
                self._attempts[key] = attempt
                self._started_at.setdefault(key, time.time())
                self._reported[key] = "started"
            command = _safe(call.resolve)
            self.emit(
                "job_started",
                command=command if isinstance(command, str) else None,
                log=[str(log_path)],
                attempt=attempt,
                **self._job_fields(call),
            )
        except Exception as exc:
            self._fault(exc)

    def _attempt_failed(self, call: Any, exc: BaseException) -> None:
        try:
            key = job_id(call)
            repeat = _safe(lambda: int(call.rule.repeat)) or 1
            retried = isinstance(exc, subprocess.CalledProcessError) and (
                self._attempts.get(key, 1) < repeat
            )
            if retried:
                return  # necroflow runs it again: the next start is reported
            exit_code = exc.returncode if isinstance(exc, subprocess.CalledProcessError) else None
            if self._mark(call, "failed"):
                self._failed(call, exit_code, f"{type(exc).__name__}: {exc}")
        except Exception as error:
            self._fault(error)

    def wrap_scheduler(self, scheduler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``scheduler``: before each round, report what changed."""

        def schedule(ready: Any, remaining: Any, available_resources: Any) -> Any:
            self.sweep()
            return scheduler(ready, remaining, available_resources)

        # necroflow checks the scheduler's signature: keep it visible.
        schedule.__name__ = getattr(scheduler, "__name__", "schedule")
        return schedule

    def wrap_on_complete(self, on_complete: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        """Wrap ``on_complete``: report the rest from the final report first."""

        def complete(report: Any) -> Any:
            self.sweep(report)
            if on_complete is not None:
                return on_complete(report)
            return None

        return complete

    # -- the end ------------------------------------------------------------------------------

    def finish(self, error: BaseException | None = None, report: Any = None) -> CloseReport:
        """Report the run's end, then give the sender ``close_timeout`` seconds and spool
        the rest. Never raises."""
        try:
            if self._closed:
                return self.sender.close(0)
            self._closed = True
            self.sweep(report if isinstance(report, Mapping) else _report_of(error))
            self._abandon_unfinished()
            self.emit(
                "run_finished",
                success=error is None,
                error=None if error is None else _describe(error)[:ERROR_CHARS],
            )
            result = self.sender.close(self.close_timeout)
            self._tell_leftovers(result)
            return result
        except Exception as exc:
            self._fault(exc)
            return CloseReport()

    def _abandon_unfinished(self) -> None:
        """Calls started but never finished (the run was stopped) end failed."""
        for call in self.required_calls():
            key = job_id(call)
            with self._lock:
                state = self._reported.get(key)
            if state == "started" and self._mark(call, "failed"):
                self._failed(call, None, "the run stopped before this rule call finished")

    def _tell_leftovers(self, report: CloseReport) -> None:
        if not report.spooled:
            return
        paths = " ".join(str(path) for path in report.spool_paths)
        self.notifier.say(
            f"{report.spooled} event(s) not delivered to {self.address} are kept in {paths}; "
            "the next reported run in this directory sends them, or now: "
            f"panoptes send-spool {paths} --address {self.address}"
        )


def _report_of(error: BaseException | None) -> Mapping[str, Any] | None:
    report = getattr(error, "execution_report", None)
    return report if isinstance(report, Mapping) else None


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        parts = "; ".join(_describe(inner) for inner in error.exceptions[:10])
        return f"{error.message}: {parts}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _safe(function: Callable[[], Any]) -> Any:
    try:
        return function()
    except Exception:
        return None


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a run parameter (callables by name)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, bytes):
        return [_plain(v) for v in value]
    return getattr(value, "__name__", None) or type(value).__name__
