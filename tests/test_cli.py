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
    result = run("reindex", env={"PANOPTES_DATABASE_URL": f"sqlite:///{target}", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert target.exists()


def test_bad_setting_is_a_clear_error(tmp_path):
    result = run("reindex", env={"PANOPTES_STALE_HOURS": "soon", "PATH": ""}, cwd=tmp_path)
    assert result.returncode != 0
    assert "PANOPTES_STALE_HOURS='soon' is not a valid float" in result.stderr
