"""The ``panoptes`` command: with no sub-command it starts the hub."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup
from flask_migrate.cli import db as migrate_group
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import commands as maintenance
from . import config as configuration
from . import create_app
from .launcher import cli as launcher_cli
from .notify import cli as notify_cli

ROUTES_HELP = """\b
Point your clients at http://HOST:PORT:
  Snakemake 9   snakemake --logger panoptes --logger-panoptes-address URL
  Snakemake 7/8 snakemake --wms-monitor URL
  Nextflow      TOWER_ACCESS_TOKEN=anything nextflow run ... -with-tower URL
  Any engine    POST URL/api/events (docs/EVENTS.md); necroflow: panoptes-necroflow

\b
Routes:
  /                                  dashboard
  GET  /api/service-info             liveness (Snakemake 7/8)
  GET  /create_workflow              register a Snakemake run
  POST /update_workflow_status       one Snakemake event
  POST /api/snakemake/events         a batch of Snakemake events (our plugin)
  POST /trace/create, PUT /trace/ID/{begin,progress,heartbeat,complete}
                                     Nextflow Tower protocol (also under /api)
  POST /api/events                   a batch of any engine's events
  GET  /api/log                      events stored but not yet projected
  GET  /api/workflows                runs of every engine
  GET  /api/workflow/ID[/jobs|/job/JOBID]
  PUT  /api/workflow/ID  POST /api/workflow/ID/cancel  DELETE /api/workflow/ID
  DELETE /api/workflows/all
  POST /api/launches, GET /api/launches[/ID[/log]]
  POST /api/launches/ID/{cancel,relaunch}
                                     launch pipelines (token with the launch right)
  GET  /openapi.json, /docs          the API description
"""


_COMMAND_KEY = "panoptes.command"
# Commands that may make a database where there is none (the hub, migrations, and waiting for
# one at a container's start); the others refuse to, so one typed in the wrong directory does
# not quietly answer from a new, empty database.
_CREATES_DATABASE = frozenset({None, "db", "wait-db"})


def shown_url(url: str) -> str:
    """A database URL fit to print: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist (None: it exists, or not SQLite)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def _database_url(params: dict[str, Any]) -> str:
    """The database the command works on, as the app will resolve it."""
    if params.get("db"):
        return configuration.database_uri(params["db"])
    return str(configuration.load(None)["SQLALCHEMY_DATABASE_URI"])


def _app_from_cli() -> Flask:
    root = click.get_current_context().find_root()
    params = root.params
    url = _database_url(params)
    command = root.meta.get(_COMMAND_KEY, root.invoked_subcommand)
    missing = _missing_sqlite_file(url)
    if missing is not None and command not in _CREATES_DATABASE:
        raise click.ClickException(
            f"there is no panoptes database at {missing}. Name the hub's with --db or "
            "PANOPTES_DATABASE_URL (or create this one with `panoptes db upgrade`)."
        )
    if command is not None:
        click.echo(f"panoptes: database {shown_url(url)}", err=True)
    overrides: dict[str, Any] = {}
    if params.get("db"):
        overrides["SQLALCHEMY_DATABASE_URI"] = url
    if params.get("threads") and not os.environ.get("PANOPTES_LIVE_MAX_STREAMS"):
        overrides["LIVE_MAX_STREAMS"] = max(1, params["threads"] // 2)
    if params.get("config"):
        overrides["CONFIG"] = params["config"]
    if params.get("host") and params.get("port"):
        overrides["LISTEN_URL"] = f"http://{params['host']}:{params['port']}"
    return create_app(overrides)


class HubGroup(FlaskGroup):
    """Flask's command group without its generic parts (``run``, ``shell``, ``routes``,
    ``--app``, ``--env-file``, ``--debug``): the hub has its own way to start and settings."""

    _FLASK_OPTIONS = frozenset({"app", "env_file", "debug"})

    def __init__(self, **extra: Any) -> None:
        super().__init__(add_default_commands=False, **extra)
        self.params = [p for p in self.params if p.name not in self._FLASK_OPTIONS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # Remembered before anything loads the app, which then knows what it is for.
        ctx.find_root().meta[_COMMAND_KEY] = cmd_name
        return super().get_command(ctx, cmd_name)

    def _load_plugin_commands(self) -> None:
        """Commands installed extensions register (``flask.commands`` entry points) are not
        the hub's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # The hub's commands are all on the group: listing them never opens a database.
        return sorted(click.Group.list_commands(self, ctx))


def _check_port_free(host: str, port: int) -> None:
    """Refuse a taken port with the option to change it, before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is taken (another hub?): choose another with "
                    f"--port, e.g. --port {port + 1}."
                ) from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None


@click.group(
    cls=HubGroup,
    create_app=_app_from_cli,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
    invoke_without_command=True,
    epilog=ROUTES_HELP,
    context_settings={"max_content_width": 100},
)
@click.option(
    "--host", "--ip", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--db",
    envvar="PANOPTES_DATABASE_URL",
    help="SQLite file path or SQLAlchemy URL (env PANOPTES_DATABASE_URL; default .panoptes.db).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Configuration file with the launch queues (env PANOPTES_CONFIG; default "
    "./panoptes.toml).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes.",
)
@click.option(
    "--threads",
    default=16,
    show_default=True,
    type=click.IntRange(2, 1024),
    help="Threads per worker (live pages hold one each).",
)
@click.pass_context
def main(
    ctx: click.Context,
    host: str,
    port: int,
    db: str | None,
    config: str | None,
    workers: int,
    threads: int,
) -> None:
    """panoptes: one live monitor for Snakemake and Nextflow runs.

    Without a command, start the hub (gunicorn, threaded workers) with a launch worker for
    the configured queues.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .launcher.inprocess import LOCK_SETTING
    from .server import prepare_metrics_dir, serve

    _check_port_free(host, port)
    prepare_metrics_dir()  # before the app imports prometheus_client

    app = _app_from_cli()
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"panoptes: serving http://{shown_host}:{port}/ from the database "
        f"{shown_url(app.config['SQLALCHEMY_DATABASE_URI'])}",
        err=True,
    )
    # One lock file per start: the hub process holding it runs the launch worker.
    descriptor, lock = tempfile.mkstemp(prefix="panoptes-launch-worker-")
    os.close(descriptor)
    app.config[LOCK_SETTING] = lock
    master = os.getpid()
    try:
        serve(app, host=host, port=port, workers=workers, threads=threads)
    finally:
        # gunicorn's workers unwind through here too when they exit: only the master may
        # remove the file, or a worker started later would lock another one.
        if os.getpid() == master:
            os.unlink(lock)


for _command in (
    maintenance.reindex_command,
    maintenance.prune_command,
    maintenance.wait_db_command,
    maintenance.token_group,
    notify_cli.notify_group,
    migrate_group,
    *launcher_cli.COMMANDS,
):
    main.add_command(_command)


@main.command("send-spool", with_appcontext=False)  # a client command: no database
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--address", required=True, help="URL of the hub, e.g. http://127.0.0.1:5000.")
@click.option(
    "--token",
    envvar=["SNAKEMAKE_LOGGER_PANOPTES_TOKEN", "NECROFLOW_PANOPTES_TOKEN"],
    help="Access token, if the hub needs one.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds per HTTP request.",
)
def send_spool_command(
    paths: tuple[str, ...], address: str, token: str | None, timeout: float
) -> None:
    """Send events an engine integration could not deliver: its spool files (the Snakemake
    plugin's .snakemake/panoptes/*.jsonl, the necroflow integration's .panoptes/spool/*.jsonl).

    Each file is deleted once the hub has everything; re-sending is safe (events carry ids).
    """
    try:
        from panoptes_hub_client import HubError, SpoolBusy, send_spool
    except ImportError:
        raise click.ClickException(
            "send-spool needs the hub client: python -m pip install ./integrations/client"
        ) from None
    failed = 0
    for path in paths:
        try:
            sent = send_spool(path, address, token=token, timeout=timeout)
        except (HubError, SpoolBusy, FileNotFoundError, ValueError) as error:
            failed += 1
            click.echo(f"{path}: not sent: {error}", err=True)
        else:
            click.echo(f"{path}: {sent} event(s) delivered.")
    if failed:
        raise click.ClickException(f"{failed} of {len(paths)} spool file(s) were not sent")
