"""``panoptes launch``, ``launches``, ``cancel``, ``logs`` and ``token create --scope``."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from panoptes.extensions import db
from panoptes.launcher import store as launches
from panoptes.models import ApiToken


def test_launch_list_cancel_and_logs(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(QUEUES={"local": {"executor": "local"}})
    runner = app.test_cli_runner()
    queued = runner.invoke(
        args=["launch", "nextflow", "hello", "--params", '{"a": 1}', "--", "-with-trace"]
    )
    assert queued.exit_code == 0, queued.output
    launch_id = queued.stdout.strip()
    with app.app_context():
        launch = launches.get(launch_id)
        assert launch is not None and launch.params == {"a": 1}
        assert launch.args == ["-with-trace"] and launch.requested_by.startswith("cli:")
        launches.append_log(launch_id, "line one\n")
    listed = runner.invoke(args=["launches"])
    assert launch_id in listed.output and "queued" in listed.output
    assert runner.invoke(args=["logs", launch_id]).output == "line one\n"
    cancelled = runner.invoke(args=["cancel", launch_id])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    followed = runner.invoke(args=["logs", "-f", launch_id])  # ends: the launch has ended
    assert followed.exit_code == 0 and followed.output == "line one\n"
    assert runner.invoke(args=["cancel", "Lnothing"]).exit_code != 0


def test_launch_refuses_bad_input(app_factory: Callable[..., Flask]) -> None:
    runner = app_factory().test_cli_runner()
    off = runner.invoke(args=["launch", "nextflow", "hello"])
    assert off.exit_code != 0 and "panoptes.toml" in off.output
    app = app_factory(QUEUES={"local": {}})
    bad = app.test_cli_runner().invoke(args=["launch", "nextflow", "hello", "--params", "[1]"])
    assert bad.exit_code != 0


def test_token_rights_are_stored_and_listed(app_factory: Callable[..., Flask]) -> None:
    app = app_factory()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["token", "create", "l", "--scope", "launch,read"]).exit_code == 0
    assert runner.invoke(args=["token", "create", "old"]).exit_code == 0
    with app.app_context():
        scopes = dict(db.session.execute(select(ApiToken.name, ApiToken.scopes)).all())
    assert scopes == {"l": "read,launch", "old": None}
    listing = runner.invoke(args=["token", "list"]).output
    assert "read,launch" in listing and "read,ingest,admin" in listing


def test_worker_needs_queues_and_a_hub_address(app_factory: Callable[..., Flask]) -> None:
    runner = app_factory().test_cli_runner()
    assert "no queue" in runner.invoke(args=["worker"]).output
    runner = app_factory(QUEUES={"local": {}}).test_cli_runner()
    assert "--hub" in runner.invoke(args=["worker"]).output
    assert "no queue named" in runner.invoke(args=["worker", "--queue", "gpu"]).output
