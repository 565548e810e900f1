"""Shared fixtures: a fresh database per test, on SQLite or (``--backend postgresql``) on a
throwaway PostgreSQL database; a live hub process for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, inspect, make_url, text, update
from sqlalchemy.engine import URL

from panoptes import create_app, store
from panoptes.config import database_uri
from panoptes.extensions import db
from panoptes.store import projector
from panoptes.store.log import APPENDED

DATA = Path(__file__).parent / "data"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="database the whole suite runs on (postgresql: a throwaway database on the server "
        "of PANOPTES_TEST_POSTGRES_URL, default " + DEFAULT_POSTGRES_URL + ")",
    )
    parser.addoption(
        "--require-postgresql",
        action="store_true",
        help="fail, instead of skipping, when PostgreSQL cannot be reached (CI sets it, or "
        "the environment variable PANOPTES_REQUIRE_POSTGRESQL=1)",
    )


# -- data ------------------------------------------------------------------------------------


def load_json(relative: str) -> Any:
    """A recorded payload from tests/data."""
    return json.loads((DATA / relative).read_text())


def load_jsonl(relative: str) -> list[dict[str, Any]]:
    """A recorded capture: one JSON object per line."""
    return [json.loads(line) for line in (DATA / relative).read_text().splitlines() if line]


def silence(app: Flask, workflow_id: str, for_: timedelta) -> None:
    """Make a run look as if its last event arrived ``for_`` ago (to test Stale)."""
    from panoptes.models import Workflow, utcnow

    with app.app_context():
        db.session.execute(
            update(Workflow).where(Workflow.id == workflow_id).values(updated_at=utcnow() - for_)
        )
        db.session.commit()


# -- PostgreSQL ------------------------------------------------------------------------------


def _server_url() -> URL:
    return make_url(
        database_uri(os.environ.get("PANOPTES_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    )


def _postgres_unavailable(config: pytest.Config) -> str | None:
    """None if PostgreSQL answers, else the reason (or a failure under --require-postgresql)."""
    url = _server_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any driver or network error means "not available"
        reason = (
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)} "
            f"({type(error).__name__}); set PANOPTES_TEST_POSTGRES_URL to run these tests"
        )
        if config.getoption("--require-postgresql") or os.environ.get(
            "PANOPTES_REQUIRE_POSTGRESQL"
        ):
            pytest.fail(reason, pytrace=False)
        return reason
    return None


class PostgresDatabases:
    """Creates throwaway databases on the test server and drops them at the end."""

    def __init__(self) -> None:
        self.server = _server_url()
        self.created: list[str] = []

    def _admin(self) -> Any:
        return create_engine(self.server, isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        name = f"panoptes_test_{uuid.uuid4().hex[:12]}"
        engine = self._admin()
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        engine = self._admin()
        with engine.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases(pytestconfig: pytest.Config) -> Iterator[PostgresDatabases]:
    reason = _postgres_unavailable(pytestconfig)
    if reason:
        pytest.skip(reason)
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """A fresh, empty PostgreSQL database for this test (tests marked ``postgresql``)."""
    return postgres_databases.create()


@pytest.fixture(scope="session")
def suite_postgres_url(pytestconfig: pytest.Config) -> Iterator[str | None]:
    """The database the whole suite shares under ``--backend postgresql`` (else None)."""
    if pytestconfig.getoption("--backend") != "postgresql":
        yield None
        return
    reason = _postgres_unavailable(pytestconfig)
    if reason:
        pytest.fail(reason, pytrace=False)
    databases = PostgresDatabases()
    yield databases.create()
    databases.drop_all()


# -- the app ---------------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path, suite_postgres_url: str | None) -> str:
    """The URL of this test's fresh database."""
    if suite_postgres_url is not None:
        return suite_postgres_url
    return f"sqlite:///{tmp_path / 'hub.db'}"


def _empty_database(url: str) -> None:
    """Empty the shared suite database's tables (once they exist), before a hub starts on it:
    what a hub writes when it starts (its stored secret key) then stays."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if inspect(connection).has_table("workflows"):
                names = ", ".join(table.name for table in db.metadata.sorted_tables)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


def wait_for_projection(app: Flask) -> None:
    """Wait until every event committed so far is applied to runs and jobs (the projector
    runs in this thread when no other holds it), instead of sleeping."""
    assert store.catch_up(app), "the projector did not catch up"


class ProjectedClient(FlaskClient):
    """The test client, reading its own writes: after each request it waits for the
    projector, as a client of a real hub would poll."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        extensions = self.application.extensions
        before = extensions.get(APPENDED, 0)
        response = super().open(*args, **kwargs)
        if extensions.get(APPENDED, 0) != before:
            wait_for_projection(self.application)
        return response


@pytest.fixture
def app_factory(
    database_url: str, suite_postgres_url: str | None
) -> Iterator[Callable[..., Flask]]:
    """Builds hubs on this test's database with extra settings; closes them afterwards.

    The projector thread is off: the test client waits for the projection after each request
    (``ProjectedClient``), and other tests call ``wait_for_projection``."""
    apps: list[Flask] = []

    def make(**settings: Any) -> Flask:
        url = settings.get("SQLALCHEMY_DATABASE_URI", database_url)
        if not apps and url == suite_postgres_url:
            _empty_database(url)  # the suite shares one PostgreSQL database: start this test empty
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": database_url,
                "PROJECTOR_THREAD": False,
                **settings,
            }
        )
        app.test_client_class = ProjectedClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        projector.for_app(app).stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    """A hub on a fresh database (migrated the way production is)."""
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


# -- a live hub process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_projected(url: str, timeout: float = 30.0) -> None:
    """Wait until the hub at ``url`` has applied every stored event (``GET /api/log``)."""
    deadline = time.monotonic() + timeout
    while True:
        state = requests.get(f"{url}/api/log", timeout=10).json()
        if state["pending"] == 0:
            return
        assert time.monotonic() < deadline, f"{url} still has {state['pending']} events to apply"
        time.sleep(0.02)


class LiveHub:
    """``python -m panoptes`` (or another command serving the hub, given with ``command``
    and ``env``; ``{port}`` in it is replaced) as a real process on a free loopback port."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        extra_args: list[str] | None = None,
        *,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command
        self.env = env or {}
        self.ready_path = ready_path  # answers 2xx once the hub serves (/healthz: with tokens)
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        if self.command is not None:
            return [part.replace("{port}", str(self.port)) for part in self.command]
        return [
            sys.executable, "-m", "panoptes", "--host", "127.0.0.1", "--port", str(self.port),
            "--db", self.database_url, *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> LiveHub:
        env = {
            **os.environ,
            **{k: v.replace("{port}", str(self.port)) for k, v in self.env.items()},
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process.wait()
                raise RuntimeError(f"hub exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}{self.ready_path}", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # still starting
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"hub did not answer in {timeout}s:\n{self.log_path.read_text()[-3000:]}"
        )

    def projected(self, timeout: float = 30.0) -> None:
        """Wait until every event this hub stored is visible in runs and jobs."""
        wait_projected(self.url, timeout)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole hub: the gunicorn master and its workers."""
        if self.process is not None:
            children = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
            ).stdout.split()
            self.process.send_signal(signal.SIGKILL)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """A started hub process on its own SQLite database."""
    hub = LiveHub(f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "hub.log").start()
    yield hub
    hub.stop()
