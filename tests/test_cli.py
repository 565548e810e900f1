"""The panoptes command, as a user types it."""

import subprocess
import sys

from sqlalchemy import create_engine, inspect

from panoptes.config import database_uri


def run(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "panoptes", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_help_lists_flags_clients_and_routes():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for text in (
        "--host",
        "--ip",
        "--port",
        "--db",
        "PANOPTES_DATABASE_URL",
        "-with-tower",
        "--wms-monitor",
        "--logger panoptes",
        "/update_workflow_status",
        "/trace/create",
        "/api/workflows",
        "reindex",
        "db",
    ):
        assert text in result.stdout, text


def test_db_upgrade_creates_the_schema_in_a_file(tmp_path):
    target = tmp_path / "hub.db"
    result = run(
        "--db", str(target), "db", "upgrade", env={"PANOPTES_AUTO_MIGRATE": "0", "PATH": ""}
    )
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(database_uri(str(target)))).get_table_names())
    assert {"workflows", "jobs", "raw_events", "alembic_version"} <= tables


def test_database_url_from_the_environment(tmp_path):
    target = tmp_path / "from-env.db"
    env = {"PANOPTES_DATABASE_URL": f"sqlite:///{target}", "PATH": ""}
    assert run("db", "upgrade", env=env).returncode == 0
    result = run("reindex", env=env)
    assert result.returncode == 0, result.stderr
    assert f"panoptes: database sqlite:///{target}" in result.stderr


def test_commands_name_their_database_and_never_make_one_by_mistake(tmp_path):
    """In a directory without a hub, a command says so instead of answering from a new,
    empty database; the one that creates databases says which."""
    env = {"PATH": ""}
    listed = run("token", "list", env=env, cwd=tmp_path)
    assert listed.returncode != 0
    assert f"there is no panoptes database at {tmp_path / '.panoptes.db'}" in listed.stderr
    assert "--db" in listed.stderr and "hub is open" not in listed.stdout
    assert not (tmp_path / ".panoptes.db").exists()
    upgraded = run("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"panoptes: database sqlite:///{tmp_path / '.panoptes.db'}" in upgraded.stderr
    listed = run("token", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "database sqlite:///" in listed.stderr
    # A password in the URL is never printed.
    secret = run(
        "--db", "postgresql://hub:s3cret@127.0.0.1:1/panoptes", "wait-db", "--timeout", "0"
    )
    assert "s3cret" not in secret.stderr + secret.stdout
    assert "postgresql+psycopg://hub:***@127.0.0.1:1/panoptes" in secret.stderr


def test_help_shows_the_hubs_commands_not_flasks(tmp_path):
    result = run("--help", env={"PATH": ""}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:")[1].split("Point your clients")[0]
    names = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert names == {
        "db", "notify", "prune", "reindex", "send-spool", "token", "wait-db",
        "cancel", "launch", "launches", "logs", "worker",
    }  # fmt: skip
    for generic in ("--env-file", "--app", "--debug"):
        assert generic not in result.stdout
    assert not (tmp_path / ".panoptes.db").exists()  # help opens no database


def test_a_taken_port_names_the_option(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--port", str(port), "--db", str(tmp_path / "hub.db"), env={"PATH": ""})
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr and "--port" in result.stderr


def test_bad_setting_is_a_clear_error(tmp_path):
    result = run("reindex", env={"PANOPTES_STALE_HOURS": "soon", "PATH": ""}, cwd=tmp_path)
    assert result.returncode != 0
    assert "PANOPTES_STALE_HOURS='soon' is not a valid float" in result.stderr


def test_the_start_up_line_names_the_url_and_the_database(tmp_path):
    from tests.conftest import LiveHub

    hub = LiveHub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "hub.log").start()
    try:
        log = (tmp_path / "hub.log").read_text()
    finally:
        hub.stop()
    assert f"panoptes: serving {hub.url}/ from the database sqlite:///{tmp_path / 'hub.db'}" in log
