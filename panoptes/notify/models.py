"""The notifications table: one row per run, transition, rule and receiver.

The unique key is what makes a notification happen once: every worker and hub instance derives
the same transition key from the same settled state and inserts with ``ON CONFLICT DO
NOTHING``. Rows hold the rendered message, so a retry sends what was decided, and never the
receiver's URL (it may carry a secret): ``receiver`` is a digest of it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, BigId


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    __tablename__ = "notifications"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The run's public id, not its primary key: ``panoptes reindex`` rebuilds the runs with
    # new keys, and a notification already sent must stay sent.
    workflow_id: Mapped[str] = mapped_column(String(64))
    transition: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(64))
    receiver: Mapped[str] = mapped_column(String(32))
    # What a person sees: the event (Error, Stale, launch_failed...) and the kind of receiver.
    event: Mapped[str] = mapped_column(String(32))
    service: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    # Apprise's notification type: info, success, warning, failure.
    kind: Mapped[str] = mapped_column(String(16))

    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    # When the row may next be claimed: the back-off after a failure, or the end of the lease
    # of the notifier delivering it now. None once sent or given up.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint(
            "workflow_id", "transition", "rule", "receiver", name="uq_notifications_key"
        ),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )
