"""Health, readiness, metrics and retention."""

import json
from datetime import timedelta

from sqlalchemy import select, update

from panoptes.extensions import db
from panoptes.models import RawEvent, Workflow, utcnow


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "database": "ok"}


def test_readyz_is_503_when_the_database_is_unreachable(app_factory, tmp_path):
    app = app_factory(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/hub.db", AUTO_MIGRATE=False
    )
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == "not_ready"


def metric(text, name, **labels):
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_committed_events_latency_and_runs(client):
    before = client.get("/metrics").get_data(as_text=True)
    workflow_id = client.post("/trace/create", json={"runName": "m"}).get_json()["workflowId"]
    client.put(f"/trace/{workflow_id}/progress", json={"tasks": []})
    client.put("/trace/%%bad/progress", json={})  # refused: not counted
    text = client.get("/metrics").get_data(as_text=True)
    for kind in ("create", "progress"):
        delta = metric(
            text, "panoptes_events_ingested_total", engine="nextflow", kind=kind
        ) - metric(before, "panoptes_events_ingested_total", engine="nextflow", kind=kind)
        assert delta == 1, kind
    assert metric(text, "panoptes_runs", engine="nextflow", status="Running") == 1
    assert 'endpoint="/trace/<workflow_id>/progress"' in text
    assert "panoptes_request_duration_seconds_bucket" in text


def test_prune_deletes_old_finished_and_stale_runs_only(app, client, runner):
    def run(name, age_days, finished):
        workflow_id = client.get("/create_workflow", query_string={"workflow_id": name}).get_json()[
            "id"
        ]
        if finished:
            client.post(
                "/update_workflow_status",
                data={
                    "msg": json.dumps({"level": "workflow_success"}),
                    "timestamp": "t",
                    "id": workflow_id,
                },
            )
        with app.app_context():
            db.session.execute(
                update(Workflow)
                .where(Workflow.id == workflow_id)
                .values(updated_at=utcnow() - timedelta(days=age_days))
            )
            db.session.commit()
        return workflow_id

    old_done = run("old-done", 40, True)
    old_stale = run("old-stale", 40, False)
    recent_done = run("recent-done", 5, True)
    result = runner.invoke(args=["prune", "--older-than", "30"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 runs" in result.output
    with app.app_context():
        remaining = set(db.session.scalars(select(Workflow.id)))
        raw_ids = set(db.session.scalars(select(RawEvent.workflow_id)))
    assert remaining == {recent_done}
    assert old_done not in raw_ids and old_stale not in raw_ids
    # a live Running run younger than the stale limit is kept even past --older-than
    live = run("live", 1, False)
    runner.invoke(args=["prune", "--older-than", "0.5"])
    with app.app_context():
        assert db.session.get(
            Workflow, db.session.scalar(select(Workflow.pk).where(Workflow.id == live))
        )


def test_prune_needs_a_positive_age(runner):
    assert runner.invoke(args=["prune"]).exit_code != 0
    assert runner.invoke(args=["prune", "--older-than", "0"]).exit_code != 0
