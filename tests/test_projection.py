"""The log and its projection: batches of any size, live or replayed, give the same tables."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, func, select, update

from panoptes import store
from panoptes.extensions import db
from panoptes.models import Job, LogPosition, RawEvent, Workflow
from panoptes.store import projector
from tests.conftest import wait_for_projection
from tests.replay import flask_sender, replay_http_capture, replay_tower, replay_wms_run
from tests.test_store import snapshot


def send_a_mixed_log(client):
    """Every protocol, duplicates, retries, people's actions and a reused run name."""
    send = flask_sender(client)
    replay_http_capture("snakemake/panoptes_failure.jsonl", send)
    replay_http_capture("snakemake/legacy_success.jsonl", send)
    replay_wms_run("snakemake/snakemake8_wms/run_success.json", send)
    nextflow_id, _ = replay_tower("nf-tower/workflow_multitasks", send)
    client.put(f"/api/workflow/{nextflow_id}", json={"name": "renamed by a person"})
    reused = client.get("/create_workflow?workflow_id=nightly").get_json()["id"]
    client.post(f"/api/workflow/{reused}/cancel")
    client.get("/create_workflow?workflow_id=nightly")  # reuses the finished run's id
    client.get("/create_workflow?workflow_id=nightly")  # a live clash: a suffixed sibling
    batched = client.get("/create_workflow").get_json()["id"]
    events = [
        {"level": "job_info", "jobid": 1, "name": "a"},
        {"level": "shellcmd", "msg": "echo a"},
        {"level": "job_error", "jobid": 1, "name": "a", "msg": "exit 1"},
        {"level": "job_info", "jobid": 1, "name": "a"},
        {"level": "job_finished", "jobid": 1},
    ]
    for _ in range(2):  # the whole batch sent twice
        client.post(
            "/api/snakemake/events",
            json={
                "workflow_id": batched,
                "events": [dict(e, event_id=str(i)) for i, e in enumerate(events)],
            },
        )
    client.post(
        "/api/events",
        json={
            "run_id": "generic-1",
            "engine": "necroflow",
            "events": [
                {"event_id": "1", "type": "run_started", "name": "g"},
                {"event_id": "2", "type": "job_started", "job_id": "x", "step": "s"},
                {"event_id": "3", "type": "job_finished", "job_id": "x"},
                {"event_id": "4", "type": "run_finished", "success": True},
            ],
        },
    )


def project_from_zero(app, batch_size):
    """Forget the projection and apply the whole log again, ``batch_size`` events a batch,
    through the live path (one transaction per batch)."""
    with app.app_context():
        db.session.execute(delete(Job))
        db.session.execute(delete(Workflow))
        db.session.execute(update(LogPosition).values(event_pk=0))
        db.session.commit()
    while projector.run_pass(app, limit=batch_size).applied:
        pass


def test_live_projection_batches_of_any_size_and_replay_give_identical_tables(app, client):
    send_a_mixed_log(client)  # projected live, request by request
    live = snapshot(app)
    assert len(live[0]) == 8 and len(live[1]) > 30
    for batch_size in (1, 2, 3, 7, 50, 10_000):
        project_from_zero(app, batch_size)
        assert snapshot(app) == live, batch_size
    with app.app_context():
        app.config["PROJECTOR_BATCH_SIZE"] = 4
        replayed = store.reindex()
        assert replayed == db.session.scalar(select(db.func.count()).select_from(RawEvent))
    assert snapshot(app) == live


def test_an_acknowledged_event_is_in_the_log_before_it_is_projected(app):
    from flask.testing import FlaskClient

    plain = FlaskClient(app)  # does not wait for the projector
    created = plain.post("/trace/create", json={"runName": "r", "sessionId": "s"})
    workflow_id = created.get_json()["workflowId"]
    with app.app_context():
        assert db.session.scalar(select(RawEvent.kind)) == "create"
        assert db.session.scalar(select(Workflow.id)) is None  # not yet projected
    assert plain.get("/api/log").get_json() == {"appended": 1, "pending": 1}
    wait_for_projection(app)
    assert plain.get("/api/log").get_json() == {"appended": 1, "pending": 0}
    assert plain.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["name"] == "r"


@pytest.mark.parametrize(
    "path",
    [
        "/api/workflow/{id}",
        "/api/workflow/{id}/jobs",
        "/api/stream?workflow_id={id}",
        "/workflow/{id}",
        "/seqera/workflow/{id}",
    ],
)
def test_a_run_just_created_can_be_read_before_the_projector_reaches_it(app, path):
    from flask.testing import FlaskClient

    plain = FlaskClient(app)  # does not wait for the projector
    created = plain.post("/trace/create", json={"runName": "r", "sessionId": "s"})
    workflow_id = created.get_json()["workflowId"]
    assert plain.get("/api/log").get_json()["pending"] == 1
    assert plain.get(path.format(id=workflow_id)).status_code == 200
    # and an id no one created is still unknown
    assert plain.get(path.format(id="nosuchrun")).status_code == 404


def test_the_projector_thread_applies_events_without_being_asked(app_factory):
    app = app_factory(PROJECTOR_THREAD=True)
    from flask.testing import FlaskClient

    plain = FlaskClient(app)
    workflow_id = plain.post("/trace/create", json={"runName": "threaded"}).get_json()["workflowId"]
    for _ in range(500):  # bounded: 5 s at most
        if plain.get("/api/log").get_json()["pending"] == 0:
            break
        projector.for_app(app)._wake.wait(0.01)
    assert plain.get(f"/api/workflow/{workflow_id}").status_code == 200


@pytest.mark.parametrize("kind", ["rename", "cancel"])
def test_a_persons_action_on_a_deleted_run_changes_nothing(app, client, kind):
    workflow_id = client.get("/create_workflow").get_json()["id"]
    with app.app_context():
        from panoptes.store.log import hub_action

        hub_action(workflow_id, kind, {"name": "x"})
        db.session.execute(delete(Workflow))  # gone before the projector gets to the action
        db.session.commit()
    wait_for_projection(app)
    with app.app_context():
        assert db.session.scalar(select(Workflow.id)) is None


def test_an_event_of_another_engine_that_slips_through_is_skipped(app, client):
    workflow_id = client.post("/trace/create", json={"runName": "nf"}).get_json()["workflowId"]
    with app.app_context():
        from panoptes.store.log import Entry, append, appended
        from panoptes.store.transactions import writing

        entry = Entry(
            "snakemake",
            "event",
            workflow_id,
            {"level": "job_info", "jobid": 1, "name": "a"},
            store.log.utcnow(),
        )
        with writing() as connection:
            append(connection, [entry])
        appended([entry])
    wait_for_projection(app)
    run = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert run["engine"] == "nextflow" and run["jobs_total"] == 0
    assert client.get("/api/log").get_json()["pending"] == 0


def test_json_text_of_a_body_is_stored_as_received(app, client):
    body = b'{"runName":  "spaced",  "x": [1.50]}'
    client.post("/trace/create", data=body, content_type="application/json")
    with app.app_context():
        stored = db.session.scalar(select(db.cast(RawEvent.body, db.Text)))
    assert stored == body.decode() and json.loads(stored)["runName"] == "spaced"


def test_events_after_deleting_the_newest_run_are_still_projected(app, client):
    """Deleting a run deletes its raw events; when they were the newest, the log's next
    events must still get ids above the projector's position (SQLite would reuse them)."""
    doomed = client.post("/trace/create", json={"runName": "doomed"}).get_json()["workflowId"]
    assert client.post(f"/api/workflow/{doomed}/cancel").status_code == 200
    assert client.delete(f"/api/workflow/{doomed}").status_code == 204
    kept = client.post("/trace/create", json={"runName": "kept"}).get_json()["workflowId"]
    assert client.get(f"/api/workflow/{kept}").status_code == 200
    assert client.get("/api/log").get_json()["pending"] == 0
    with app.app_context():
        pks = list(db.session.scalars(select(RawEvent.pk)))
        position = db.session.scalar(select(func.max(LogPosition.event_pk)))
        assert pks and min(pks) > 2 and position == max(pks)  # ids 1 and 2 are never reused
