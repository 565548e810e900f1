"""The log on PostgreSQL: commit order, shards and several projectors at once."""

from __future__ import annotations

import threading

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text

from panoptes import store
from panoptes.config import database_uri
from panoptes.extensions import db
from panoptes.models import RawEvent, Workflow
from panoptes.store import projector
from panoptes.store.ids import shard_of
from tests.conftest import wait_for_projection
from tests.test_store import snapshot

pytestmark = pytest.mark.postgresql


@pytest.fixture
def pg_app(app_factory, postgres_url):
    return app_factory(SQLALCHEMY_DATABASE_URI=postgres_url)


def job_info(jobid: int) -> dict:
    return {"level": "job_info", "jobid": jobid, "name": "a", "event_id": str(jobid)}


def test_an_event_committed_after_a_later_numbered_one_is_still_projected(pg_app, postgres_url):
    client = FlaskClient(pg_app)  # the open transaction below holds the projection back
    client.post("/api/snakemake/events", json={"workflow_id": "order1", "events": [job_info(0)]})
    # A transaction appends event 1 of the run and stays open...
    engine = create_engine(database_uri(postgres_url))
    slow = engine.connect()
    slow_transaction = slow.begin()
    slow.execute(  # as the hub appends: holding the shard's append lock until the commit
        select(func.pg_advisory_xact_lock_shared(projector.APPEND_LOCK_CLASS, shard_of("order1")))
    )
    slow.execute(
        text(
            "INSERT INTO raw_events (engine, kind, workflow_id, received_at, dedupe_key, body, "
            "shard) VALUES ('snakemake', 'event', 'order1', now(), '1', :body, :shard)"
        ),
        {"body": '{"level": "job_info", "jobid": 1, "name": "a"}', "shard": shard_of("order1")},
    )
    # ...while event 2, numbered after it, commits and the projector runs.
    client.post("/api/snakemake/events", json={"workflow_id": "order1", "events": [job_info(2)]})
    with pg_app.app_context():
        outcome = projector.run_pass(pg_app)
        assert outcome.blocked and outcome.applied == 0  # event 2 waits behind event 1
    slow_transaction.commit()
    slow.close()
    engine.dispose()
    wait_for_projection(pg_app)
    jobs = client.get("/api/workflow/order1/jobs").get_json()["jobs"]
    assert sorted(job["jobid"] for job in jobs) == ["0", "1", "2"]
    assert client.get("/api/log").get_json()["pending"] == 0


def test_two_projectors_on_one_database_apply_every_event_once(app_factory, postgres_url):
    """Two hub instances, each appending and projecting from threads at once: the tables
    equal a replay of the log from zero, and every counter equals the rows it counts."""
    apps = [app_factory(SQLALCHEMY_DATABASE_URI=postgres_url) for _ in range(2)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def append(app, runs):
        try:
            with app.app_context():
                for batch in range(10):
                    for run in runs:
                        events = [
                            {
                                "level": level,
                                "jobid": batch * 5 + i,
                                "event_id": f"{batch}-{i}-{level}",
                            }
                            for i in range(5)
                            for level in ("job_info", "job_finished")
                        ]
                        store.snakemake_batch(f"run{run}", events)
        except BaseException as error:
            errors.append(error)

    def project(app):
        try:
            while not stop.is_set():
                projector.run_pass(app, limit=7)
        except BaseException as error:
            errors.append(error)

    appenders = [
        threading.Thread(target=append, args=(apps[i % 2], range(i, 12, 3))) for i in range(3)
    ]
    projectors = [threading.Thread(target=project, args=(app,)) for app in apps]
    for thread in (*appenders, *projectors):
        thread.start()
    for thread in appenders:
        thread.join(60)
    stop.set()
    for thread in projectors:
        thread.join(60)
    assert errors == []
    wait_for_projection(apps[0])
    live = snapshot(apps[0])
    assert len(live[0]) == 12 and len(live[1]) == 12 * 50
    assert all(run["n_done"] == 50 for run in live[0].values())
    with apps[0].app_context():
        assert store.reindex() == db.session.scalar(select(func.count()).select_from(RawEvent))
    assert snapshot(apps[0]) == live


def test_events_of_a_run_share_a_shard_and_runs_spread_over_all(pg_app):
    client = pg_app.test_client()
    for run in range(64):
        client.post("/trace/create", json={"workflowId": f"spread{run}", "runName": "r"})
        client.put(f"/trace/spread{run}/heartbeat", json={})
    with pg_app.app_context():
        shards = dict(
            db.session.execute(
                select(RawEvent.workflow_id, func.count(func.distinct(RawEvent.shard))).group_by(
                    RawEvent.workflow_id
                )
            ).all()
        )
        used = db.session.scalar(select(func.count(func.distinct(RawEvent.shard))))
        assert set(shards.values()) == {1} and used == 16
    with pg_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Workflow)) == 64
