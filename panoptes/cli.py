"""The ``panoptes`` command: with no sub-command it starts the hub."""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup

from . import config as configuration
from . import create_app

ROUTES_HELP = """\b
Point your clients at http://HOST:PORT:
  Snakemake 9   snakemake --logger panoptes --logger-panoptes-address URL
  Snakemake 7/8 snakemake --wms-monitor URL
  Nextflow      TOWER_ACCESS_TOKEN=anything nextflow run ... -with-tower URL

\b
Routes:
  /                                  dashboard
  GET  /api/service-info             liveness (Snakemake 7/8)
  GET  /create_workflow              register a Snakemake run
  POST /update_workflow_status       one Snakemake event
  POST /api/snakemake/events         a batch of Snakemake events (our plugin)
  POST /trace/create, PUT /trace/ID/{begin,progress,heartbeat,complete}
                                     Nextflow Tower protocol (also under /api)
  GET  /api/workflows                runs of both engines
  GET  /api/workflow/ID[/jobs|/job/JOBID]
  PUT  /api/workflow/ID  POST /api/workflow/ID/cancel  DELETE /api/workflow/ID
  DELETE /api/workflows/all
  POST /api/launches, GET /api/launches[/ID[/log]]
  POST /api/launches/ID/{cancel,relaunch}
                                     launch pipelines (token with the launch right)
  GET  /openapi.json, /docs          the API description
"""


def _app_from_cli() -> Flask:
    params = click.get_current_context().find_root().params
    overrides: dict[str, Any] = {}
    if params.get("db"):
        overrides["SQLALCHEMY_DATABASE_URI"] = configuration.database_uri(params["db"])
    if params.get("threads") and not os.environ.get("PANOPTES_LIVE_MAX_STREAMS"):
        overrides["LIVE_MAX_STREAMS"] = max(1, params["threads"] // 2)
    if params.get("config"):
        overrides["CONFIG"] = params["config"]
    if params.get("host") and params.get("port"):
        overrides["LISTEN_URL"] = f"http://{params['host']}:{params['port']}"
    if not os.environ.get("PANOPTES_SECRET_KEY"):
        # One key per start, shared by the workers forked from here: sessions end with the hub.
        overrides["SECRET_KEY"] = secrets.token_hex(32)
    return create_app(overrides)


@click.group(
    cls=FlaskGroup,
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

    prepare_metrics_dir()  # before the app imports prometheus_client

    app = _app_from_cli()
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


@main.command("send-spool")
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
