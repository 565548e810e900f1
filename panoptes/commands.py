"""Maintenance commands, registered on the app so ``panoptes <command>`` and Flask's test
runner both find them."""

from __future__ import annotations

import time
from datetime import timedelta

import click
from flask import Flask
from flask.cli import with_appcontext


@click.command("reindex")
@with_appcontext
def reindex_command() -> None:
    """Rebuild workflows and jobs from the stored raw events."""
    from . import store

    replayed = store.reindex()
    click.echo(f"Replayed {replayed} raw events; workflows and jobs rebuilt.")


@click.command("prune")
@click.option(
    "--older-than",
    "days",
    required=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Delete runs without any event for this many days.",
)
@with_appcontext
def prune_command(days: float) -> None:
    """Delete old runs with their jobs and raw events (Running runs only once Stale)."""
    from . import store

    deleted = store.prune(timedelta(days=days))
    click.echo(f"Deleted {deleted} runs silent for more than {days:g} days.")


@click.command("wait-db")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep trying.",
)
@with_appcontext
def wait_db_command(timeout: float) -> None:
    """Wait until the database accepts connections (container start-up)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from .extensions import db

    deadline = time.monotonic() + timeout
    while True:
        try:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            click.echo("Database is reachable.")
            return
        except OperationalError as error:
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"database unreachable after {timeout:g}s: {error}"
                ) from None
            time.sleep(1)


@click.group("token")
def token_group() -> None:
    """Access tokens (once one exists, every client needs one)."""


@token_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scope",
    help="Comma-separated rights: read, ingest, launch, admin (default: read,ingest,admin).",
)
@with_appcontext
def token_create(name: str, scope: str | None) -> None:
    """Create a token and print it (only now: the hub keeps its hash)."""
    from sqlalchemy.exc import IntegrityError

    from . import auth, store
    from .launcher import store as launches

    try:
        scopes = auth.parse_scopes(scope) if scope is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scope") from None
    if scopes is not None and not scopes:
        raise click.BadParameter("name at least one right", param_hint="--scope")
    try:
        secret, _token = store.create_token(name)
    except IntegrityError:
        raise click.ClickException(f"a token named {name!r} exists already") from None
    if scopes is not None:
        launches.set_token_scopes(name, scopes)
    click.echo(secret)
    click.echo(f"Token {name!r} created. It is shown only once; store it now.", err=True)


@token_group.command("list")
@with_appcontext
def token_list() -> None:
    """Tokens with their prefix, creation date and state."""
    from sqlalchemy import select

    from .extensions import db
    from .models import ApiToken

    tokens = db.session.scalars(select(ApiToken).order_by(ApiToken.created_at)).all()
    if not tokens:
        click.echo("No tokens: the hub is open unless PANOPTES_TOKEN is set.")
    for token in tokens:
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
        scopes = token.scopes or "read,ingest,admin"
        click.echo(
            f"{token.name}\t{token.prefix}...\tcreated {token.created_at:%Y-%m-%d %H:%M}\t"
            f"{scopes}\t{state}"
        )


@token_group.command("revoke")
@click.argument("name")
@with_appcontext
def token_revoke(name: str) -> None:
    """Revoke a token by name (takes effect within PANOPTES_TOKEN_CACHE_SECONDS)."""
    from . import store

    if not store.revoke_token(name):
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"Token {name!r} revoked.")


def register(app: Flask) -> None:
    """Attach the commands to ``app.cli``."""
    from .launcher import cli as launcher_cli

    for command in (reindex_command, prune_command, wait_db_command, token_group):
        app.cli.add_command(command)
    launcher_cli.register(app)  # the test runner's app.cli, as for the hub's group (cli.py)
