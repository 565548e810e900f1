"""``panoptes notify test``: send a test message through every configured receiver."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from . import deliver
from .message import Message
from .notifier import notifier


@click.group("notify")
def notify_group() -> None:
    """Notifications (PANOPTES_NOTIFY_URLS, [notify] in panoptes.toml)."""


@notify_group.command("test")
@click.option(
    "--url",
    "urls",
    multiple=True,
    help="An Apprise URL to try instead of the configured ones (repeatable).",
)
@with_appcontext
def test_command(urls: tuple[str, ...]) -> None:
    """Send a test message to every receiver and say what happened to each."""
    found = notifier(current_app)
    rules = found.rules if found is not None else ()
    targets = [("--url", url) for url in urls] or [
        (rule.name, url) for rule in rules for url in rule.urls
    ]
    if not targets:
        raise click.ClickException(
            "no notification URL is configured: set PANOPTES_NOTIFY_URLS or add [notify] "
            "to panoptes.toml (or try one with --url)"
        )
    public = current_app.config.get("PUBLIC_URL")
    message = Message(
        "panoptes: test notification",
        "This is a test message from the panoptes hub"
        + (f" at {public}" if public else "")
        + ". Notifications for runs will arrive like this one.",
        "info",
    )
    timeout = float(current_app.config["NOTIFY_TIMEOUT_SECONDS"])
    failed = 0
    for rule, url in targets:
        receiver = deliver.Receiver.of(url)
        outcome = deliver.send(url, message.title, message.body, message.kind, timeout)
        if outcome.delivered:
            click.echo(f"{rule}: {receiver.service} {receiver.shown}: delivered")
        else:
            failed += 1
            click.echo(f"{rule}: {receiver.service} {receiver.shown}: FAILED: {outcome.error}")
    if failed:
        raise click.ClickException(f"{failed} of {len(targets)} receiver(s) failed")
