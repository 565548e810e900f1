"""The notifier: every few seconds, queue what is due and deliver it, in a background thread of
each hub process (never in a request), or one step at a time with ``run_once`` (tests).

Each step: (1) find the transitions (``decide``), (2) insert a row per rule and receiver that
wants it, ignoring rows that exist, (3) claim due rows, (4) deliver each through Apprise with a
timeout, outside any transaction, (5) record the outcome; a failure is retried after 1, 2, 4...
times ``PANOPTES_NOTIFY_RETRY_SECONDS``, up to ``PANOPTES_NOTIFY_MAX_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from .. import serializers
from ..config import stale_after
from ..extensions import db
from ..models import Job, Workflow, utcnow
from ..normalize.schema import JobStatus, WorkflowStatus
from . import decide, deliver, outbox
from .message import Message, render
from .models import DeliveryStatus
from .rules import Rule

log = logging.getLogger(__name__)

FAILED_JOBS_TOLD = 5
CLAIM_BATCH = 20
# Claims per step: a backlog is worked off over several steps, so stopping stays prompt.
CLAIMS_PER_STEP = 5
TIDY_EVERY = timedelta(minutes=10)

_starting = threading.Lock()


def _fresh_lock() -> None:
    global _starting
    _starting = threading.Lock()


# A forked gunicorn worker starts its own notifier; a lock held by the parent at the fork
# would never be released in the child.
os.register_at_fork(after_in_child=_fresh_lock)


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did."""

    queued: int
    sent: int
    failed: int


class Notifier:
    """The notifications of one app: its rules, their receivers, the background thread."""

    def __init__(self, app: Flask, rules: Sequence[Rule]) -> None:
        self.app = app
        self.rules = tuple(rules)
        self.events = frozenset(event for rule in self.rules for event in rule.on)
        self._receivers: dict[tuple[str, str], deliver.Receiver] | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._tidied_at: datetime | None = None

    # -- settings ----------------------------------------------------------------------------

    def _setting(self, key: str) -> float:
        return float(self.app.config[f"NOTIFY_{key}"])

    @property
    def timeout(self) -> float:
        return self._setting("TIMEOUT_SECONDS")

    @property
    def lease(self) -> timedelta:
        """How long a claim is exclusive: well beyond a delivery's timeout."""
        return timedelta(seconds=max(60.0, 4 * self.timeout))

    def receivers(self) -> dict[tuple[str, str], deliver.Receiver]:
        """(rule name, receiver id) -> receiver."""
        if self._receivers is None:
            self._receivers = {
                (rule.name, receiver.id): receiver
                for rule in self.rules
                for receiver in map(deliver.Receiver.of, rule.urls)
            }
        return self._receivers

    # -- one step ----------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> Step:
        """Queue what is due as of ``now`` and deliver what can be; the counts."""
        now = now or utcnow()
        with self.app.app_context():
            queued = self._queue(now)
            self._tidy(now)
            sent = failed = 0
            for _ in range(CLAIMS_PER_STEP):
                if not outbox.any_due(now):
                    break
                claimed = outbox.claim(now, self.lease, CLAIM_BATCH)
                if not claimed:
                    break
                for item in claimed:
                    if self._deliver(item, now):
                        sent += 1
                    else:
                        failed += 1
                if self._stop.is_set():
                    break
        return Step(queued, sent, failed)

    def queue(self, now: datetime | None = None) -> int:
        """Only queue what is due as of ``now`` (deliver nothing); the rows given."""
        with self.app.app_context():
            return self._queue(now or utcnow())

    def _queue(self, now: datetime) -> int:
        """Insert a row for every transition, rule and receiver not yet queued."""
        if not self.rules:
            return 0
        found = decide.transitions(self.app.config, self.events, now)
        wanted = [
            (transition, rule)
            for transition in found
            for rule in self.rules
            if rule.wants(transition.event, transition.engine, transition.name)
        ]
        if not wanted:
            db.session.rollback()
            return 0
        have = outbox.existing_keys(t.workflow_id for t, _ in wanted)
        receivers = self.receivers()
        messages: dict[tuple[str, str], Message | None] = {}
        rows = []
        for transition, rule in wanted:
            for (rule_name, receiver_id), receiver in receivers.items():
                key = (transition.workflow_id, transition.key, rule.name, receiver_id)
                if rule_name != rule.name or key in have:
                    continue
                at = (transition.workflow_id, transition.key)
                if at not in messages:
                    messages[at] = transition.message or self._render(transition)
                message = messages[at]
                if message is None:  # the run is gone
                    continue
                rows.append(
                    {
                        "workflow_id": transition.workflow_id,
                        "transition": transition.key,
                        "rule": rule.name,
                        "receiver": receiver_id,
                        "event": transition.event,
                        "service": receiver.service,
                        "title": message.title,
                        "body": message.body,
                        "kind": message.kind,
                        "status": DeliveryStatus.PENDING.value,
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now,
                    }
                )
        return outbox.queue(rows)

    def _tidy(self, now: datetime) -> None:
        """Now and then, forget the notifications of runs that were deleted."""
        if self._tidied_at is not None and now - self._tidied_at < TIDY_EVERY:
            return
        self._tidied_at = now
        outbox.forget_orphans(now - 2 * decide.LOOKBACK)

    def _render(self, transition: decide.Transition) -> Message | None:
        run = db.session.scalars(
            select(Workflow).where(Workflow.id == transition.workflow_id)
        ).first()
        if run is None:
            return None
        stale = stale_after(self.app.config)
        summary = serializers.summary_fields(run, stale)
        failed: list[Job] = []
        if run.n_error and transition.event != WorkflowStatus.DONE:
            failed = list(
                db.session.scalars(
                    select(Job)
                    .where(Job.workflow_pk == run.pk, Job.status == JobStatus.ERROR.value)
                    .order_by(Job.completed_at.desc().nulls_last(), Job.pk.desc())
                    .limit(FAILED_JOBS_TOLD)
                )
            )
        public = self.app.config.get("PUBLIC_URL")
        link = f"{str(public).rstrip('/')}/workflow/{run.id}" if public else None
        return render(
            transition.event,
            run,
            (summary["jobs_done"], summary["jobs_failed"], summary["jobs_total"]),
            failed,
            link,
            stale.after(run.engine),
        )

    def _deliver(self, item: outbox.Claimed, now: datetime) -> bool:
        receiver = self.receivers().get((item.rule, item.receiver))
        if receiver is None:
            # The rule or its URL was removed since this was queued.
            outbox.record(item, now, "this receiver is no longer configured", None)
            return False
        outcome = deliver.send(receiver.url, item.title, item.body, item.kind, self.timeout)
        at = max(now, utcnow())
        if outcome.delivered:
            outbox.record(item, at, None, None)
            return True
        retry_at = None
        if item.attempts < int(self._setting("MAX_ATTEMPTS")):
            delay = self._setting("RETRY_SECONDS") * 2 ** (item.attempts - 1)
            retry_at = at + timedelta(seconds=delay)
        log.warning(
            "notification %s to %s (%s) failed, attempt %d: %s",
            item.title, receiver.shown, item.rule, item.attempts, outcome.error,
        )  # fmt: skip
        outbox.record(item, at, outcome.error, retry_at)
        return False

    # -- the background thread ---------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start this process's notifier thread unless it runs (cheap: called per request)."""
        if self._pid == os.getpid():
            return
        with _starting:
            if self._pid == os.getpid():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, name="panoptes-notifier", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after its current delivery, and wait for it."""
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)
        self._pid = None

    def _loop(self) -> None:
        poll = self._setting("POLL_SECONDS")
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database may be away for a while: try again later
                log.exception("notifier step failed")
            self._stop.wait(poll)


def notifier(app: Any) -> Notifier | None:
    """The app's notifier, if notifications are set up."""
    found = app.extensions.get("panoptes_notify")
    return found if isinstance(found, Notifier) else None
