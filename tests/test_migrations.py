"""The Alembic migrations build exactly the schema the models describe."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from panoptes.extensions import db
from panoptes.models import RuleCount
from tests.test_store import snapshot


# SQLAlchemy cannot reflect SQLite's expression indexes (the job table's order); the
# comparison leaves such indexes out on both sides.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_upgrade_twice_is_a_no_op(app_factory):
    app_factory()
    app_factory()  # a second process starting on a migrated database


RELEASES = Path(__file__).parent / "data" / "releases"


def _without_new_fields(current: Any, recorded: Any) -> Any:
    """``current`` without the object keys added since ``recorded`` was made: an answer may
    gain fields, never lose or change one."""
    if isinstance(current, dict) and isinstance(recorded, dict):
        return {
            key: _without_new_fields(value, recorded[key])
            for key, value in current.items()
            if key in recorded
        }
    if isinstance(current, list) and isinstance(recorded, list) and len(current) == len(recorded):
        return [_without_new_fields(c, r) for c, r in zip(current, recorded, strict=True)]
    return current


def test_a_database_of_the_0_1_0_release_is_upgraded_in_place_and_reads_back_the_same(
    app_factory, tmp_path
):
    """``release-0.1.0.db`` was written by release 0.1.0 (one event per transaction, no log
    positions), from the recorded captures; its API answers were recorded with it."""
    database = tmp_path / "old.db"
    shutil.copy(RELEASES / "release-0.1.0.db", database)
    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}")
    client = app.test_client()
    recorded = json.loads((RELEASES / "release-0.1.0-answers.json").read_text())
    for path, answer in recorded.items():
        assert _without_new_fields(client.get(path).get_json(), answer) == answer, path
    # Its events count as projected: nothing is applied twice, and new events carry on.
    assert client.get("/api/log").get_json()["pending"] == 0
    snapshot(app)  # the per-(rule, status) counts were filled from its jobs
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RuleCount)) > 0
    nightly = client.get("/create_workflow?workflow_id=nightly").get_json()["id"]
    old_nightly = next(
        w["id"]
        for w in recorded["/api/workflows?limit=1000"]["workflows"]
        if w["name"] == "nightly"
    )
    assert nightly == old_nightly  # the finished run's id is reused, as before the upgrade
    # A rebuild from its log gives the same runs (the statuses of the one restarted aside).
    # Fields whose rules came after 0.1.0 (ignored tasks, exit status and planned jobs of a
    # failed Snakemake run, the name of an unnamed run) are what a rebuild adds.
    later_rules = {"jobs_failed", "jobs_ignored", "jobs_not_run", "exit_status"}
    before = client.get("/api/workflows?limit=1000").get_json()
    assert client.application.test_cli_runner().invoke(args=["reindex"]).exit_code == 0
    after = client.get("/api/workflows?limit=1000").get_json()
    assert after["count"] == before["count"]
    for rebuilt, upgraded in zip(after["workflows"], before["workflows"], strict=True):
        for field in later_rules:
            del rebuilt[field], upgraded[field]
        if upgraded["name"] == upgraded["id"] != rebuilt["name"]:
            # Unnamed: now named after its directory, as the create request gave it.
            assert rebuilt["name"] in json.dumps(recorded)
            rebuilt["name"] = upgraded["name"]
        assert rebuilt == upgraded


def test_an_sqlite_log_whose_newest_events_were_deleted_never_reuses_their_ids(
    app_factory, tmp_path
):
    """Before 0010, ids of deleted newest events came back (the projector had passed them):
    the upgrade starts the log's ids above both what is left and the projector's position."""
    from flask_migrate import upgrade as alembic_upgrade
    from sqlalchemy import text

    from panoptes.migrations_runner import MIGRATIONS_DIR

    url = f"sqlite:///{tmp_path / 'at-0009.db'}"
    old = app_factory(SQLALCHEMY_DATABASE_URI=url, AUTO_MIGRATE=False)
    with old.app_context():
        alembic_upgrade(directory=str(MIGRATIONS_DIR), revision="0009")
        for pk in (1, 2, 3):
            db.session.execute(
                text(
                    "INSERT INTO raw_events (pk, engine, kind, workflow_id, received_at, shard)"
                    " VALUES (:pk, 'nextflow', 'create', 'gone', '2026-12-07 00:00:00', 0)"
                ),
                {"pk": pk},
            )
        db.session.execute(text("UPDATE log_positions SET event_pk = 3"))
        db.session.execute(text("DELETE FROM raw_events WHERE pk > 1"))  # a deleted run's
        db.session.commit()
    client = app_factory(SQLALCHEMY_DATABASE_URI=url).test_client()  # upgrades to the head
    created = client.post("/trace/create", json={"runName": "after"}).get_json()["workflowId"]
    assert client.get(f"/api/workflow/{created}").status_code == 200
