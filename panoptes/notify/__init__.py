"""Notifications through Apprise (e-mail, Slack, Matrix, Teams, ntfy, webhooks...) when a run
fails, finishes or goes silent.

``rules`` (who wants what), ``decide`` (what is due, from the runs' settled state),
``message`` (what it says), ``deliver`` (Apprise), ``outbox`` (the notifications table),
``notifier`` (the loop), ``cli`` (``panoptes notify test``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import cli, outbox, rules
from .models import Notification
from .notifier import Notifier, Step, notifier

__all__ = ["Notification", "Notifier", "Step", "init_app", "notifier", "start"]


def init_app(app: Flask) -> Notifier:
    """Read the rules (a bad one stops start-up), add ``panoptes notify`` and the run page's
    list, and arrange for the notifier thread to run in every serving process (not under
    TESTING: tests call ``run_once``)."""
    notifier_ = Notifier(app, rules.load(app.config))
    for (rule, _), receiver in notifier_.receivers().items():
        if not receiver.valid:
            raise rules.RuleError(
                f"rule {rule!r}: {receiver.shown} is not a URL Apprise understands "
                "(see its list of services)"
            )
    app.extensions["panoptes_notify"] = notifier_
    app.cli.add_command(cli.notify_group)
    app.context_processor(_template_helpers)
    if notifier_.rules and not app.config.get("TESTING"):
        # Started lazily, so a process that forks workers after building the app (the
        # ``panoptes`` command) runs it in each worker, not in the parent. gunicorn's
        # post_worker_init starts it too, so an idle hub still notifies.
        app.before_request(notifier_.ensure_started)
    return notifier_


def start(app: Any) -> None:
    """Start the app's notifier thread in this process, if it has rules and is not TESTING
    (gunicorn's post_worker_init calls this)."""
    found = notifier(app)
    if found is not None and found.rules and not app.config.get("TESTING"):
        found.ensure_started()


def _template_helpers() -> dict[str, Any]:
    return {"run_notifications": outbox.for_run}
