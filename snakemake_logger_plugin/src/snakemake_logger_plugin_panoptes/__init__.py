"""Snakemake 9 logger plugin reporting runs to a panoptes hub.

``snakemake --logger panoptes --logger-panoptes-address http://127.0.0.1:5000``

Events are converted on Snakemake's logging thread and delivered by a background sender
(``sender.py``) in batches, with retries, a bounded buffer spilling to
``.snakemake/panoptes/`` and a bounded wait at exit; see ``events.py`` for what is sent.
"""

import os
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from logging import LogRecord
from typing import TYPE_CHECKING, Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from .events import OutcomeTracker, RecordConverter
from .snakemake_compat import keep_progress_records, quiet_about_progress

if TYPE_CHECKING:
    from .sender import CloseReport, Notifier, Sender

__all__ = ["LogHandler", "LogHandlerSettings"]

# Field annotations must stay typing.Optional[...]: the plugin registry derives argparse types
# from them and does not understand `X | None`, so this module avoids postponed annotations.


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    """Settings of the panoptes logger (``--logger-panoptes-<field>``)."""

    address: Optional[str] = field(
        default=None,
        metadata={
            "help": "URL of the panoptes hub, e.g. http://127.0.0.1:5000.",
            "required": True,
        },
    )
    token: Optional[str] = field(
        default=None,
        metadata={
            "help": "Bearer token for the hub, if it requires one. Prefer the environment "
            "variable SNAKEMAKE_LOGGER_PANOPTES_TOKEN, which keeps it out of the command line.",
            "env_var": True,
        },
    )
    workflow_id: Optional[str] = field(
        default=None,
        metadata={
            "help": "A stable id of your choosing for this workflow on the hub "
            "(re-running with the same id reuses the hub's entry). Default: the hub picks one.",
        },
    )
    name: Optional[str] = field(
        default=None,
        metadata={
            "help": "A human-readable run name shown by the hub. "
            "Default: the working directory's name."
        },
    )
    assigned_id: Optional[str] = field(
        default=None,
        metadata={
            "help": "A run id the hub has already assigned (the hub's launcher sets it): "
            "events go to that run without registering a new one. Default: none.",
        },
    )
    timeout: float = field(
        default=10.0,
        metadata={"help": "Seconds to wait for the hub on each HTTP request (default: 10)."},
    )
    batch_size: int = field(
        default=200,
        metadata={"help": "Maximum number of events sent in one request (default: 200)."},
    )
    # A short interval keeps the hub live and, above all, leaves little to deliver when
    # Snakemake exits (the hub's time to store the last batch is what close() waits for).
    flush_interval: float = field(
        default=0.25,
        metadata={
            "help": "Seconds an event may wait for others to share its request: the delay "
            "before the hub shows it (default: 0.25)."
        },
    )
    buffer_limit: int = field(
        default=10_000,
        metadata={
            "help": "Events kept in memory while the hub is unreachable; beyond that they are "
            "spilled to a file in .snakemake/panoptes/, never dropped (default: 10000)."
        },
    )
    close_timeout: float = field(
        default=5.0,
        metadata={
            "help": "Seconds Snakemake's exit may wait for the last events to be delivered; "
            "what is left is kept in .snakemake/panoptes/ and sent later (default: 5)."
        },
    )


_DEFAULTS = LogHandlerSettings()


class LogHandler(LogHandlerBase):
    """Send Snakemake's events to a panoptes hub without ever blocking or failing the run."""

    settings: LogHandlerSettings

    def __post_init__(self) -> None:
        # Runs inside Snakemake's start-up, where an exception would abort the workflow:
        # problems with the settings are reported and the plugin stands down instead.
        settings = self.settings if self.settings is not None else LogHandlerSettings()
        self.settings = settings
        self.run_id = str(uuid.uuid4())
        self.converter = RecordConverter(self.run_id, name=settings.name)
        self.outcome = OutcomeTracker()
        self.sender: Optional[Sender] = None
        self._closed = False
        self._notifier: Optional[Notifier] = None
        # A dry run reports nothing at all: not to the hub, not to a spool file.
        self._enabled = not bool(getattr(self.common_settings, "dryrun", False))
        self._address: Optional[str] = None
        if self._enabled:
            self._enabled = self._setup_sender(settings)
        if self._enabled and quiet_about_progress(getattr(self.common_settings, "quiet", None)):
            try:
                keep_progress_records()
            except Exception as exc:  # Snakemake's internals moved: finished jobs get inferred
                if self._notifier is not None:
                    self._notifier.say(f"cannot keep progress records under --quiet: {exc!r}")

    def _setup_sender(self, settings: LogHandlerSettings) -> bool:
        # Imported here: every logger plugin package is imported on every `snakemake` call,
        # and the HTTP stack is only needed when this logger is actually selected.
        from .client import normalise_address
        from .sender import Notifier, Sender

        self._notifier = Notifier()
        try:
            self._address = normalise_address(settings.address or "")
        except ValueError:
            self._notifier.say(
                f"--logger-panoptes-address {settings.address!r} is not an http(s) URL; "
                "nothing will be reported to a hub for this run"
            )
            return False
        self.sender = Sender(
            address=self._address,
            run_id=self.run_id,
            token=settings.token or None,
            timeout=_positive(settings.timeout, _DEFAULTS.timeout),
            requested_workflow_id=settings.workflow_id or None,
            name=settings.name or None,
            assigned_workflow_id=settings.assigned_id or None,
            batch_size=int(_positive(settings.batch_size, _DEFAULTS.batch_size)),
            flush_interval=_positive(settings.flush_interval, _DEFAULTS.flush_interval),
            buffer_limit=int(_positive(settings.buffer_limit, _DEFAULTS.buffer_limit)),
            workdir=self._workdir,
            notifier=self._notifier,
        )
        return True

    def _workdir(self) -> str:
        return self.converter.workdir or os.getcwd()

    def emit(self, record: LogRecord) -> None:
        """Convert the record to plain data and queue it for the sender; never raises."""
        try:
            if not self._enabled or self._closed or self.sender is None:
                return
            for event in self.converter.convert(record):
                self.outcome.observe(event)
                self.sender.submit(event)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Nothing to do: delivery is asynchronous and ``close()`` does the final flush."""

    def close(self) -> None:
        """Report the outcome, give the sender ``close_timeout`` seconds, spool the rest."""
        try:
            if not self._closed:
                self._closed = True
                self._finish()
        except Exception as exc:  # close() runs during Snakemake's shutdown: never raise
            sys.stderr.write(f"[panoptes] error while closing the logger: {exc!r}\n")
        finally:
            super().close()

    def _finish(self) -> None:
        sender = self.sender
        if not self._enabled or sender is None or self.outcome.events_seen == 0:
            return
        # Snakemake stops its loggers while a KeyboardInterrupt unwinds through its API
        # context manager, so the exception being handled tells an interruption apart.
        exc_type = sys.exc_info()[0]
        outcome = self.outcome.verdict(exc_type)
        now = time.time()
        for jobid in self.outcome.unreported_finished_jobs(outcome):
            body = {"level": "job_finished", "jobid": jobid, "inferred": True}
            sender.submit(self.converter.make_event(body, now))
        sender.submit(self.converter.make_event(outcome.as_body(), now))
        close_timeout = max(0.0, float(self.settings.close_timeout))
        report = sender.close(close_timeout)
        self._tell_leftovers(report)

    def _tell_leftovers(self, report: "CloseReport") -> None:
        if self._notifier is None or not report.spooled:
            return
        paths = " ".join(shlex.quote(str(path)) for path in report.spool_paths)
        # Runnable where Snakemake runs: this Python has the hub client the plugin uses.
        command = (
            f"{shlex.quote(sys.executable)} -m panoptes_hub_client send-spool {paths} "
            f"--address {shlex.quote(self._address or '')}"
        )
        if self.settings.token:
            from_environment = os.environ.get("SNAKEMAKE_LOGGER_PANOPTES_TOKEN")
            command += (
                ' --token "$SNAKEMAKE_LOGGER_PANOPTES_TOKEN"'
                if from_environment == self.settings.token
                else " --token YOUR_TOKEN"
            )
        self._notifier.say(
            f"{report.spooled} event(s) not delivered to {self._address} are kept in {paths}; "
            f"the next run with --logger panoptes in this directory sends them, or now: {command}"
        )

    @property
    def writes_to_stream(self) -> bool:
        """The plugin prints nothing through Snakemake's stream."""
        return False

    @property
    def writes_to_file(self) -> bool:
        """Spool files are not log files for Snakemake's 'Complete log(s)' list."""
        return False

    @property
    def has_filter(self) -> bool:
        """Own filtering: the hub gets every event whatever ``--quiet`` says."""
        return True

    @property
    def has_formatter(self) -> bool:
        """Records are converted to data, not formatted."""
        return False

    @property
    def needs_rulegraph(self) -> bool:
        """The hub shows the rule graph."""
        return True


def _positive(value: Optional[float], default: float) -> float:
    """``value`` if it is a positive number, else ``default``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return value
    return default
