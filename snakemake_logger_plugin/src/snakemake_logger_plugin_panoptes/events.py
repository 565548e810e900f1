"""Turn Snakemake 9 log records into plain JSON events for the hub, and judge the outcome.

Records reach a logger plugin with their data as extra attributes that are live Snakemake
objects (``ResourceList``, ``uuid.UUID``, enums, ``Job``); everything here copies them into
plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` values on the emitting
thread, so the sender thread never touches a Snakemake object.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

JSONValue = Any
"""A value made only of dict, list, str, int, float, bool and None."""

Event = dict[str, JSONValue]
"""One message for the hub: ``event_id``, ``level``, ``timestamp`` and level-specific keys."""

# Event-less log lines worth forwarding (as ``info``), matched by prefix. They carry state the
# hub needs and that no LogEvent conveys: an empty DAG, a retry, a user interruption, the end
# of a failed run, and where the full log is.
NOTHING_TO_BE_DONE = "Nothing to be done"
RESTART_PREFIX = "Trying to restart job"
INTERRUPT_PREFIXES = (
    # JobScheduler.schedule() on KeyboardInterrupt / SystemExit (Ctrl-C).
    "Terminating processes on user request",
    # JobScheduler on SIGTERM: a graceful stop after the running jobs.
    "Will exit after finishing currently running jobs",
    # snakemake.exceptions.format_exception_to_string() for a KeyboardInterrupt.
    "Cancelling snakemake on user request",
)
FORWARDED_LINE_PREFIXES = (
    NOTHING_TO_BE_DONE,
    RESTART_PREFIX,
    *INTERRUPT_PREFIXES,
    "Exiting because a job execution failed",
    "Complete log(s):",
)

# Resource names Snakemake adds for its own scheduling; they are not requested resources.
HIDDEN_RESOURCES = frozenset({"_cores", "_nodes"})

_MAX_DEPTH = 32

# In a RuleException's text: "Command '...' returned non-zero exit status 3."
_EXIT_STATUS = re.compile(r"returned non-zero exit status (-?\d+)")

# A failed job's log files are sent with its job_error, each cut to its last lines, so the
# hub can tell why it failed without access to the files.
LOG_TAIL_LINES = 100
LOG_TAIL_BYTES = 32 * 1024
LOG_TAIL_FILES = 8


# Columns of a Snakemake benchmark file kept as the job's usage (numbers; "NA" is skipped).
BENCHMARK_COLUMNS = ("s", "max_rss", "max_vms", "io_in", "io_out", "mean_load", "cpu_time")


def read_benchmark(path: Path) -> dict[str, JSONValue] | None:
    """The last measurement of a ``benchmark:`` file (Snakemake writes one line per repeat):
    seconds, peak memory in MB, I/O in MB, CPU load and time. None when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[:1000]
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = lines[0].split("\t")
    values = lines[-1].split("\t")
    usage: dict[str, JSONValue] = {}
    for name, raw in zip(header, values, strict=False):
        if name not in BENCHMARK_COLUMNS:
            continue
        try:
            number = float(raw)
        except ValueError:
            continue
        if math.isfinite(number):
            usage[name] = number
    return usage or None


def log_tail(
    path: Path, max_lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_BYTES
) -> dict[str, JSONValue] | None:
    """The end of one log file: at most ``max_lines`` lines and ``max_bytes`` bytes, with
    whether anything was cut. None when the file cannot be read (not written, a directory)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(size - max_bytes, 0))
            data = handle.read(max_bytes)
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    truncated = size > max_bytes
    if truncated and lines:
        lines = lines[1:]  # the first line read is most likely cut in the middle
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
        truncated = True
    return {"path": str(path), "text": "\n".join(lines), "truncated": truncated}


def to_plain(value: Any, _depth: int = 0) -> JSONValue:
    """Copy ``value`` into plain JSON-serialisable Python values.

    Mappings become dicts with string keys, other iterables (lists, tuples, sets, Snakemake
    ``Namedlist``s) become lists, enums their value, UUIDs and paths strings, non-finite
    floats strings; anything else becomes ``str(value)``. Never raises on odd input.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return to_plain(value.value, _depth + 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        # str subclasses (Snakemake's IOFile, AnnotatedString) become plain str.
        return str(value)
    if _depth >= _MAX_DEPTH:
        return _safe_str(value)
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {_key(k): to_plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _safe_str(value)


def named_to_dict(value: Any, *, hide: frozenset[str] = frozenset()) -> dict[str, JSONValue]:
    """Return a mapping or a Snakemake ``Namedlist`` as a plain ``{name: value}`` dict.

    ``Namedlist`` (``ResourceList``, ``Wildcards``) is a list whose items also have names;
    its ``items()`` yields the named ones. Names in ``hide`` are left out; anything that is
    neither gives an empty dict.
    """
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping) or callable(getattr(value, "items", None)):
        items = value.items()
    else:
        return {}
    result: dict[str, JSONValue] = {}
    for name, item in items:
        key = _key(name)
        if key not in hide:
            result[key] = to_plain(item)
    return result


def resources_to_dict(resources: Any) -> dict[str, JSONValue]:
    """Return a job's resources by name, without Snakemake's own ``_cores``/``_nodes``."""
    return named_to_dict(resources, hide=HIDDEN_RESOURCES)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else _safe_str(key)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break emit()
        return f"<unprintable {type(value).__name__}>"


def _attr(record: logging.LogRecord, name: str, default: Any = None) -> Any:
    return getattr(record, name, default)


def _as_list(value: Any) -> list[JSONValue]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    plain = to_plain(value)
    return plain if isinstance(plain, list) else [plain]


def _jobid(value: Any) -> JSONValue:
    """Job ids are ints in Snakemake 9; keep anything else as a plain value."""
    return to_plain(value)


def record_message(record: logging.LogRecord) -> str:
    """Return the record's message text; never raises (a bad %-format gives the raw msg)."""
    try:
        return record.getMessage()
    except Exception:  # a malformed %-format in somebody's log call
        return _safe_str(record.msg)


class RecordConverter:
    """Convert records to hub events, numbering them ``<run id>:<sequence>``.

    The ids are assigned once, here, and travel with the event into the spool file, so a
    batch re-sent after a hub crash or from a spool carries the same ids and the hub can
    drop the duplicates.
    """

    def __init__(self, run_id: str, *, name: str | None = None) -> None:
        self.run_id = run_id
        self.name = name
        self._seq = 0
        # SHELLCMD carries no jobid; Snakemake logs it right after the JOB_INFO of its job.
        self._last_job_info: JSONValue = None
        # Snakemake logs a failed job's error text (ERROR, RuleException) just before its
        # JOB_ERROR, which has neither the text nor the exit status; kept to join them.
        self._rule_errors: deque[str] = deque(maxlen=16)
        self.workdir: str | None = None
        # Benchmark files of running jobs, read when they finish.
        self._benchmarks: dict[str, str] = {}

    def convert(self, record: logging.LogRecord) -> list[Event]:
        """Return the events for one record (usually zero or one)."""
        event = _attr(record, "event")
        level = str(to_plain(event)) if event is not None else None
        body: dict[str, JSONValue] | None
        if level is None:
            body = self._plain_line(record)
        else:
            # One `_on_<level>` method per LogEvent sent; other events have none.
            builder = getattr(self, f"_on_{level}", None)
            body = builder(record) if builder is not None else None
        if level != "shellcmd" and level != "job_info":
            self._last_job_info = None
        if body is None:
            return []
        return [self._stamp(body, record)]

    def _stamp(self, body: dict[str, JSONValue], record: logging.LogRecord) -> Event:
        return self.make_event(body, float(record.created))

    def make_event(self, body: dict[str, JSONValue], timestamp: float) -> Event:
        """Number an event: records' events, and those the plugin makes (``workflow_finished``)."""
        self._seq += 1
        return {"event_id": f"{self.run_id}:{self._seq}", "timestamp": timestamp, **body}

    # -- one builder per LogEvent ---------------------------------------------------------

    def _plain_line(self, record: logging.LogRecord) -> dict[str, JSONValue] | None:
        text = record_message(record)
        stripped = text.lstrip()
        if stripped.startswith(FORWARDED_LINE_PREFIXES):
            return {"level": "info", "msg": text}
        return None

    def _on_workflow_started(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        cwd = to_plain(_attr(record, "cwd"))
        if isinstance(cwd, str):
            self.workdir = cwd
        snakefile = _attr(record, "snakefile_main")
        if snakefile is None:
            # Before 9.x the Snakefile was in `snakefile`; in 9.27 that attribute points at
            # Snakemake's own workflow.py, so it is only a fallback.
            snakefile = _attr(record, "snakefile")
        return {
            "level": "workflow_started",
            "snakefile": to_plain(snakefile),
            "command": to_plain(_attr(record, "cmd")),
            "workdir": cwd,
            "host": to_plain(_attr(record, "host")),
            "user": to_plain(_attr(record, "user")),
            # The merged config lives on the Workflow object, which a logger plugin cannot
            # reach; the config files and Snakemake's digest of the config are sent instead.
            "config": None,
            "configfiles": _as_list(_attr(record, "configfiles")),
            "config_md5": to_plain(_attr(record, "config_md5")),
            "snakemake_version": to_plain(_attr(record, "snakemake_version")),
            "name": self.name,
            "snakemake_run_id": to_plain(_attr(record, "workflow_id")),
            "started": to_plain(_attr(record, "datetime")),
            "platform": to_plain(_attr(record, "platform")),
            "python_version": to_plain(_attr(record, "python_version")),
            "basedir": to_plain(_attr(record, "basedir")),
        }

    def _on_rulegraph(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        graph = to_plain(_attr(record, "rulegraph"))
        if not isinstance(graph, dict):
            graph = {"nodes": [], "links": []}
        return {"level": "rulegraph", "rulegraph": graph}

    def _on_run_info(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        stats = to_plain(_attr(record, "stats"))
        return {
            "level": "run_info",
            "msg": record_message(record),
            "stats": stats if isinstance(stats, dict) else {},
        }

    def _on_progress(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        return {
            "level": "progress",
            "done": to_plain(_attr(record, "done")),
            "total": to_plain(_attr(record, "total")),
        }

    def _on_job_started(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        return {"level": "job_started", "jobs": _as_list(_attr(record, "jobs"))}

    def _on_job_info(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        jobid = _jobid(_attr(record, "jobid"))
        self._last_job_info = jobid
        benchmark = to_plain(_attr(record, "benchmark"))
        if isinstance(benchmark, list):
            benchmark = benchmark[0] if benchmark else None
        if isinstance(benchmark, str) and benchmark and len(self._benchmarks) < 100_000:
            self._benchmarks[str(jobid)] = benchmark
        return {
            "level": "job_info",
            "jobid": jobid,
            "name": to_plain(_attr(record, "rule_name")),
            "msg": to_plain(_attr(record, "rule_msg")),
            "input": _as_list(_attr(record, "input")),
            "output": _as_list(_attr(record, "output")),
            "log": _as_list(_attr(record, "log")),
            "wildcards": named_to_dict(_attr(record, "wildcards")),
            "resources": resources_to_dict(_attr(record, "resources")),
            "threads": to_plain(_attr(record, "threads")),
            "priority": to_plain(_attr(record, "priority")),
            "reason": to_plain(_attr(record, "reason")),
            "shellcmd": to_plain(_attr(record, "shellcmd")),
            "is_checkpoint": bool(_attr(record, "is_checkpoint", False)),
            "local": bool(_attr(record, "local", False)),
            "benchmark": to_plain(_attr(record, "benchmark")),
        }

    def _on_shellcmd(self, record: logging.LogRecord) -> dict[str, JSONValue] | None:
        command = _attr(record, "shellcmd")
        if command is None:
            # Snakemake logs "Shell command: None" for rules without a shell command.
            return None
        text = to_plain(command)
        if not isinstance(text, str) or not text.strip():
            return None
        jobid = _attr(record, "jobid")
        return {
            "level": "shellcmd",
            "jobid": _jobid(jobid) if jobid is not None else self._last_job_info,
            "msg": text,
        }

    def _on_job_finished(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        # Snakemake 9 spells it job_id on this one event only.
        jobid = _attr(record, "job_id")
        if jobid is None:
            jobid = _attr(record, "jobid")
        body: dict[str, JSONValue] = {"level": "job_finished", "jobid": _jobid(jobid)}
        benchmark = self._benchmarks.pop(str(_jobid(jobid)), None)
        if benchmark is not None:
            usage = read_benchmark(self._absolute(benchmark))
            if usage is not None:
                body["benchmark_usage"] = usage
        return body

    def _absolute(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else Path(self.workdir or ".").absolute() / path

    def _on_job_error(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        rule_msg = _attr(record, "rule_msg")
        shellcmd = to_plain(_attr(record, "shellcmd"))
        error = self._take_rule_error(shellcmd if isinstance(shellcmd, str) else None)
        exit_code = _EXIT_STATUS.search(error) if error else None
        return {
            "level": "job_error",
            "jobid": _jobid(_attr(record, "jobid")),
            "name": to_plain(_attr(record, "rule_name")),
            "msg": to_plain(rule_msg) if rule_msg else record_message(record),
            "input": _as_list(_attr(record, "input")),
            "output": _as_list(_attr(record, "output")),
            "log": _as_list(_attr(record, "log")),
            "shellcmd": to_plain(_attr(record, "shellcmd")),
            "conda_env": to_plain(_attr(record, "conda_env")),
            "container_img": to_plain(_attr(record, "container_img")),
            "aux": to_plain(_attr(record, "aux")) or {},
            "error": error,
            "exit_code": int(exit_code.group(1)) if exit_code else None,
            "log_tails": self._log_tails(_as_list(_attr(record, "log"))),
        }

    def _log_tails(self, logs: list[JSONValue]) -> list[JSONValue]:
        """The last lines of a failed job's log files, by absolute path."""
        tails: list[JSONValue] = []
        for name in logs[:LOG_TAIL_FILES]:
            if not isinstance(name, str) or not name:
                continue
            tail = log_tail(self._absolute(name))
            if tail is not None:
                tails.append(tail)
        return tails

    def _take_rule_error(self, shellcmd: str | None) -> str | None:
        """The error text of this job: the latest one quoting its shell command, else the
        latest one if nothing else is waiting (jobs failing at once may interleave)."""
        command = shellcmd.strip() if shellcmd else ""
        for index in range(len(self._rule_errors) - 1, -1, -1):
            if command and command in self._rule_errors[index]:
                text = self._rule_errors[index]
                del self._rule_errors[index]
                return text
        if len(self._rule_errors) == 1:
            return self._rule_errors.pop()
        return None

    def _on_error(self, record: logging.LogRecord) -> dict[str, JSONValue]:
        text = record_message(record)
        exception = to_plain(_attr(record, "exception"))
        if exception == "RuleException":
            self._rule_errors.append(text)
        return {"level": "error", "msg": text, "exception": exception}


# -- outcome ------------------------------------------------------------------------------

REASON_SUCCESS = "success"
REASON_FAILURE = "failure"
REASON_NOTHING_TO_DO = "nothing_to_do"
REASON_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Outcome:
    """How the run ended, as sent in ``workflow_finished``."""

    success: bool
    reason: str
    message: str | None

    def as_body(self) -> dict[str, JSONValue]:
        """Return the ``workflow_finished`` event body (without id and timestamp)."""
        return {
            "level": "workflow_finished",
            "success": self.success,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass
class OutcomeTracker:
    """Infer the outcome of a run from its events; Snakemake sends no end-of-run event.

    - An ``error`` whose exception is not ``RuleException`` ends the run (``WorkflowError``
      after failed jobs, a Snakefile error, ...). ``RuleException`` errors belong to one job
      and may be followed by a successful retry.
    - A ``job_error`` counts as a failure only if the same jobid never finishes afterwards
      (retries reuse the jobid).
    - Interruption lines (Ctrl-C, SIGTERM) win over the failure they cause.
    """

    failed_jobs: dict[str, str] = field(default_factory=dict)
    running_jobs: dict[str, JSONValue] = field(default_factory=dict)
    final_error: str | None = None
    last_job_error: str | None = None
    nothing_to_do: bool = False
    interrupted: str | None = None
    events_seen: int = 0

    def observe(self, event: Event) -> None:
        """Update the verdict with one converted event."""
        self.events_seen += 1
        level = event.get("level")
        if level == "job_info":
            self.running_jobs[str(event.get("jobid"))] = event.get("jobid")
        elif level == "job_error":
            key = str(event.get("jobid"))
            text = event.get("msg") or f"job {key} failed"
            self.failed_jobs[key] = str(text)
            self.last_job_error = str(text)
            self.running_jobs.pop(key, None)
        elif level == "job_finished":
            key = str(event.get("jobid"))
            self.failed_jobs.pop(key, None)
            self.running_jobs.pop(key, None)
        elif level == "error":
            if event.get("exception") != "RuleException":
                self.final_error = str(event.get("msg") or event.get("exception") or "error")
            else:
                self.last_job_error = str(event.get("msg") or "RuleException")
        elif level == "info":
            text = str(event.get("msg") or "").lstrip()
            if text.startswith(NOTHING_TO_BE_DONE):
                self.nothing_to_do = True
            elif text.startswith(INTERRUPT_PREFIXES):
                self.interrupted = text

    def unreported_finished_jobs(self, outcome: Outcome) -> list[JSONValue]:
        """Jobs that must have finished although no ``job_finished`` was seen.

        Only a successful run tells: every job it started has finished. This covers a
        Snakemake that does not log finished jobs at all (``--quiet progress``) when
        :func:`keep_progress_records` could not make it.
        """
        if outcome.reason != REASON_SUCCESS:
            return []
        return list(self.running_jobs.values())

    def verdict(self, exc_type: type[BaseException] | None = None) -> Outcome:
        """Return the outcome; ``exc_type`` is the exception unwinding Snakemake, if any."""
        if self.interrupted is not None:
            return Outcome(False, REASON_INTERRUPTED, self.interrupted)
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            return Outcome(False, REASON_INTERRUPTED, "Interrupted by the user (KeyboardInterrupt)")
        if self.final_error is not None:
            return Outcome(False, REASON_FAILURE, self.final_error)
        if self.failed_jobs:
            jobs = ", ".join(sorted(self.failed_jobs))
            return Outcome(False, REASON_FAILURE, self.last_job_error or f"Failed jobs: {jobs}")
        if self.nothing_to_do:
            return Outcome(True, REASON_NOTHING_TO_DO, None)
        return Outcome(True, REASON_SUCCESS, None)
