"""``panoptes worker``, ``launch``, ``launches``, ``cancel`` and ``logs``: the launcher from a
shell on any machine that reaches the hub's database."""

from __future__ import annotations

import getpass
import json
import signal
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from pydantic import ValidationError

from ..extensions import db
from . import store as launches
from .api import LaunchIn, launch_json, submit
from .queues import configured
from .worker import Worker, hub_url


@click.command("worker")
@click.option("--queue", "queue_names", multiple=True, help="Queue to serve (default: all).")
@click.option("--hub", help="Hub address handed to the engines (default PANOPTES_PUBLIC_URL).")
@with_appcontext
def worker_command(queue_names: tuple[str, ...], hub: str | None) -> None:
    """Run launches of the configured queues until stopped (SIGTERM or Ctrl-C)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    queues = configured(app.config)
    if not queues:
        raise click.ClickException("no queue is configured (see panoptes.toml.example)")
    unknown = [name for name in queue_names if name not in queues]
    if unknown:
        raise click.ClickException(f"no queue named {', '.join(unknown)}")
    chosen = [queues[name] for name in queue_names] if queue_names else list(queues.values())
    address = (hub or hub_url(app.config) or "").rstrip("/")
    if not address:
        raise click.ClickException("give the hub's address: --hub URL or PANOPTES_PUBLIC_URL")
    worker = Worker(app, chosen, address)

    def stop(_signum: int, _frame: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(
        f"Worker {worker.worker_id} serving {', '.join(q.name for q in chosen)}; hub {address}",
        err=True,
    )
    db.session.remove()
    worker.run()


@click.command("launch")
@click.argument("engine", type=click.Choice(["snakemake", "nextflow"]))
@click.argument("pipeline")
@click.option("--revision", "-r")
@click.option("--profile")
@click.option("--params", "params_json", help="Parameters as a JSON object.")
@click.option("--config-file", type=click.File("r"), help="Configuration text from a file.")
@click.option("--work-dir")
@click.option("--name", "run_name")
@click.option("--queue")
@click.argument("args", nargs=-1)
@with_appcontext
def launch_command(
    engine: str,
    pipeline: str,
    revision: str | None,
    profile: str | None,
    params_json: str | None,
    config_file: Any,
    work_dir: str | None,
    run_name: str | None,
    queue: str | None,
    args: tuple[str, ...],
) -> None:
    """Queue a launch; prints its id. Extra ARGS after -- go to the engine."""
    from ..errors import ApiError

    try:
        params = json.loads(params_json) if params_json else None
        data = LaunchIn(
            engine=engine,
            pipeline=pipeline,
            revision=revision,
            profile=profile,
            params=params,
            config=config_file.read() if config_file else None,
            work_dir=work_dir,
            run_name=run_name,
            queue=queue,
            args=list(args),
        )
        launch = submit(data, f"cli:{getpass.getuser()}")
    except (ValueError, ValidationError) as error:
        raise click.ClickException(str(error)) from None
    except ApiError as error:
        raise click.ClickException(error.message) from None
    click.echo(launch.id)
    click.echo(f"Queued on {launch.queue}; run id {launch.workflow_id}.", err=True)


@click.command("launches")
@click.option("--status", help="Comma-separated statuses.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def launches_command(status: str | None, limit: int, as_json: bool) -> None:
    """The latest launches."""
    rows, _total = launches.listing(status=[s for s in (status or "").split(",") if s], limit=limit)
    for row in rows:
        if as_json:
            click.echo(json.dumps(launch_json(row)))
        else:
            click.echo(
                f"{row.id}\t{row.status}\t{row.engine}\t{row.queue}\t{row.workflow_id}\t"
                f"{row.submitted_at:%Y-%m-%d %H:%M:%S}\t{row.pipeline}"
            )


@click.command("cancel")
@click.argument("launch_id")
@with_appcontext
def cancel_command(launch_id: str) -> None:
    """Cancel a launch (a queued one is dropped, a running one stopped)."""
    launch = launches.request_cancel(launch_id)
    if launch is None:
        raise click.ClickException(f"no launch {launch_id!r}")
    click.echo(f"{launch.id}: {launch.status}, cancel requested.")


@click.command("logs")
@click.argument("launch_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the launch ends.")
@with_appcontext
def logs_command(launch_id: str, follow: bool) -> None:
    """Print a launch's log."""
    offset = 0
    poll = float(current_app.config["LAUNCH_POLL_SECONDS"])
    while True:
        db.session.expire_all()
        launch = launches.get(launch_id)
        if launch is None:
            raise click.ClickException(f"no launch {launch_id!r}")
        text, offset = launches.read_log(launch, offset)
        if text:
            click.echo(text, nl=False)
        if not follow or launch.status in launches.FINISHED:
            return
        db.session.rollback()
        time.sleep(poll)


COMMANDS = (worker_command, launch_command, launches_command, cancel_command, logs_command)


def register(app: Flask) -> None:
    """Attach the launcher's commands to ``app.cli``."""
    for command in COMMANDS:
        app.cli.add_command(command)
