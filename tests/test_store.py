"""The single writer: raw events, transactions, reindex."""

import json
from collections import Counter

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Text, cast, func, inspect, select

from panoptes import store
from panoptes.extensions import db
from panoptes.models import Job, LogPosition, RawEvent, RuleCount, Workflow
from panoptes.store import projector
from tests.conftest import wait_for_projection
from tests.replay import flask_sender, replay_http_capture, replay_tower, replay_wms_run


def snapshot(app):
    """Every column of every workflow and job, keyed by public ids (pks may differ), and the
    per-(rule, status) counts, checked against the jobs they count."""
    with app.app_context():
        workflows = {}
        for workflow in db.session.scalars(select(Workflow)):
            row = {c.key: getattr(workflow, c.key) for c in inspect(Workflow).column_attrs}
            row.pop("pk")
            workflows[workflow.id] = row
        jobs = {}
        for job, workflow_id in db.session.execute(
            select(Job, Workflow.id).join(Workflow, Job.workflow_pk == Workflow.pk)
        ):
            row = {c.key: getattr(job, c.key) for c in inspect(Job).column_attrs}
            row.pop("pk")
            row.pop("workflow_pk")
            jobs[(workflow_id, job.job_key)] = row
        rule_counts = {
            (workflow_id, name, status): count
            for workflow_id, name, status, count in db.session.execute(
                select(Workflow.id, RuleCount.name, RuleCount.status, RuleCount.jobs)
                .join(Workflow, RuleCount.workflow_pk == Workflow.pk)
                .where(RuleCount.jobs != 0)
            )
        }
        counted = Counter((w, job["name"] or "", job["status"]) for (w, _), job in jobs.items())
        assert rule_counts == dict(counted)
        return workflows, jobs, rule_counts


def test_reindex_rebuilds_exactly_the_same_state(app, client, runner):
    send = flask_sender(client)
    replay_http_capture("snakemake/panoptes_success.jsonl", send)
    replay_http_capture("snakemake/panoptes_failure.jsonl", send)
    replay_http_capture("snakemake/legacy_success.jsonl", send)
    replay_wms_run("snakemake/snakemake8_wms/run_success.json", send)
    replay_tower("nf-tower/workflow_failed", send, workflow_id="FailedRun1")
    nextflow_id, _ = replay_tower("modern", send, prefix="/api")
    client.put(f"/api/workflow/{nextflow_id}", json={"name": "renamed by a person"})
    reused = client.get("/create_workflow?workflow_id=nightly").get_json()["id"]
    client.post(
        "/update_workflow_status",
        data={
            "msg": json.dumps({"level": "job_info", "jobid": 1, "name": "a"}),
            "timestamp": "t",
            "id": reused,
        },
    )
    client.post(f"/api/workflow/{reused}/cancel")
    assert (
        client.get("/create_workflow?workflow_id=nightly").get_json()["id"] == reused
    )  # reset, reused
    client.get("/create_workflow?workflow_id=nightly")  # live now: a suffixed sibling
    batched = client.get("/create_workflow").get_json()["id"]
    events = [
        {"level": "progress", "done": 0, "total": 2},
        {"level": "job_started", "jobs": [1, 2]},
        {"level": "job_info", "jobid": 1, "name": "a", "wildcards": {"s": "x"}},
        {"level": "shellcmd", "msg": "echo a"},
        {"level": "job_info", "jobid": 2, "name": "b"},
        {"level": "job_error", "jobid": 2, "name": "b", "msg": "exit 1"},
        {"level": "job_info", "jobid": 2, "name": "b"},
        {"level": "job_finished", "jobid": 1},
        {"level": "job_finished", "jobid": 2},
        {"level": "progress", "done": 2, "total": 2},
    ]
    for start in (0, 4, 7):  # three batches, the middle one sent twice
        chunk = [dict(e, event_id=f"e{start + i}") for i, e in enumerate(events[start : start + 4])]
        for _ in range(2 if start == 4 else 1):
            client.post("/api/snakemake/events", json={"workflow_id": batched, "events": chunk})
    before = snapshot(app)
    assert before[1][(batched, "2")]["attempt"] == 2
    assert len(before[0]) == 9 and len(before[1]) > 20

    result = runner.invoke(args=["reindex"])
    assert result.exit_code == 0, result.output
    assert "Replayed" in result.output
    assert snapshot(app) == before


def test_a_projection_that_fails_half_way_applies_nothing_and_loses_nothing(
    app, client, monkeypatch
):
    workflow_id = client.get("/create_workflow").get_json()["id"]
    real_write = projector._write

    def write_then_fail(*args, **kwargs):
        real_write(*args, **kwargs)  # every change of the batch is written, then the crash
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(projector, "_write", write_then_fail)
    answer = FlaskClient(app).post(
        "/update_workflow_status",
        data={
            "msg": json.dumps({"level": "progress", "done": 1, "total": 2}),
            "timestamp": "t",
            "id": workflow_id,
        },
    )
    assert answer.status_code == 200  # stored in the log: acknowledged
    with pytest.raises(RuntimeError):
        store.catch_up(app)
    with app.app_context():
        assert db.session.scalar(select(Workflow.progress_total)) is None
        assert [raw.kind for raw in db.session.scalars(select(RawEvent))] == ["create", "update"]
        # the position (SQLite's one, or the run's shard's) stays after the create
        assert db.session.scalar(select(func.max(LogPosition.event_pk))) == 1
    monkeypatch.setattr(projector, "_write", real_write)
    wait_for_projection(app)
    run = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert (run["jobs_done"], run["jobs_total"]) == (1, 2)


def test_raw_events_keep_engine_kind_time_and_body(app, client):
    workflow_id = client.post("/trace/create", json={"runName": "r", "newField": [1]}).get_json()[
        "workflowId"
    ]
    with app.app_context():
        [raw] = db.session.scalars(
            select(RawEvent).where(RawEvent.workflow_id == workflow_id)
        ).all()
        assert (raw.engine, raw.kind) == ("nextflow", "create")
        assert raw.body == {"runName": "r", "newField": [1]}
        assert raw.received_at.tzinfo is not None


def test_deleting_a_run_deletes_its_raw_events_so_reindex_does_not_revive_it(app, client, runner):
    workflow_id = client.get("/create_workflow").get_json()["id"]
    client.post(f"/api/workflow/{workflow_id}/cancel")
    assert client.delete(f"/api/workflow/{workflow_id}").status_code == 204
    runner.invoke(args=["reindex"])
    assert client.get(f"/api/workflow/{workflow_id}").status_code == 404


@pytest.mark.parametrize("value", ["abc", "A1_b.c-d", "x" * 64])
def test_valid_ids(value):
    assert store.is_valid_workflow_id(value)


@pytest.mark.parametrize("value", ["", "x" * 65, "../x", "-a", ".a", "a/b", "a b", "é"])
def test_invalid_ids(value):
    assert not store.is_valid_workflow_id(value)


def test_generated_ids_fit_tower():
    ids = {store.new_workflow_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 14 and i.isalnum() and i.isascii() for i in ids)


def test_raw_events_keep_a_body_as_sent_unless_it_needs_making_storable(app, client):
    sent = b'{"runName": "as-sent",   "z": 1, "a": [1.50, "na\xc3\xafve"]}'
    odd = b'{"runName": "odd", "x": 1e400, "y": NaN}'
    ids = [
        client.post("/trace/create", data=body, content_type="application/json").get_json()[
            "workflowId"
        ]
        for body in (sent, odd)
    ]
    with app.app_context():
        stored = [
            db.session.scalar(
                select(cast(RawEvent.body, Text)).where(RawEvent.workflow_id == workflow_id)
            )
            for workflow_id in ids
        ]
    assert stored[0] == sent.decode()  # the text itself: spacing, key order, 1.50
    assert json.loads(stored[1]) == {"runName": "odd", "x": None, "y": None}
