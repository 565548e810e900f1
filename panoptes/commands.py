"""Maintenance commands, registered on the app so ``panoptes <command>`` and Flask's test
runner both find them."""

from __future__ import annotations

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


def register(app: Flask) -> None:
    """Attach the commands to ``app.cli``."""
    app.cli.add_command(reindex_command)
