"""The Tower trace protocol through Flask's client, replaying recorded Nextflow bodies."""

import base64
import json
import re
from datetime import timedelta

import pytest

from panoptes import store
from panoptes.models import utcnow
from tests.conftest import load_json, wait_for_projection
from tests.replay import flask_sender, replay_tower


def run_and_tasks(client, workflow_id):
    run = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    tasks = client.get(f"/api/workflow/{workflow_id}/jobs?limit=1000").get_json()["jobs"]
    return run, {t["jobid"]: t for t in tasks}


def put(client, path, body, **kwargs):
    return client.put(path, data=json.dumps(body), content_type="application/json", **kwargs)


@pytest.mark.parametrize("prefix", ["", "/api"])
@pytest.mark.parametrize("query", [{}, {"workspaceId": "12345"}])
def test_modern_lifecycle_answers_what_nextflow_reads(client, prefix, query):
    create = client.post(
        f"{prefix}/trace/create",
        json=load_json("tower/modern/00_create_request.json"),
        query_string=query,
    )
    assert create.status_code == 200
    workflow_id = create.get_json()["workflowId"]
    assert re.fullmatch(r"[A-Za-z0-9]{14}", workflow_id)
    assert create.get_json()["watchUrl"].endswith(f"/workflow/{workflow_id}")

    begin = put(
        client,
        f"{prefix}/trace/{workflow_id}/begin",
        load_json("tower/modern/01_begin_request.json"),
        query_string=query,
    )
    assert begin.status_code == 200
    assert begin.get_json() == {
        "status": "OK",
        "workflowId": workflow_id,
        "watchUrl": create.get_json()["watchUrl"],
    }
    for name in ("02_progress_request_submitted", "03_progress_request_completed"):
        response = put(
            client,
            f"{prefix}/trace/{workflow_id}/progress",
            load_json(f"tower/modern/{name}.json"),
            query_string=query,
        )
        assert response.get_json() == {"status": "OK", "workflowId": workflow_id}
    heartbeat = put(
        client,
        f"{prefix}/trace/{workflow_id}/heartbeat",
        load_json("tower/modern/04_heartbeat_request.json"),
        query_string=query,
    )
    assert heartbeat.get_json() == {"message": "OK"}
    complete = put(
        client,
        f"{prefix}/trace/{workflow_id}/complete",
        load_json("tower/modern/05_complete_request_success.json"),
        query_string=query,
    )
    assert complete.get_json() == {"status": "OK", "workflowId": workflow_id}

    run, tasks = run_and_tasks(client, workflow_id)
    assert run["engine"] == "nextflow"
    assert run["name"] == "nostalgic_pasteur"
    assert run["status"] == "Done"
    assert run["engine_version"] == "24.10.0"
    assert run["user"] == "user"
    assert run["started_at"] == "2024-11-05T09:15:30.123456Z"
    assert run["completed_at"] == "2024-11-05T09:15:33.612345Z"
    assert (run["jobs_done"], run["jobs_total"]) == (1, 1)
    assert tasks["1"]["status"] == "Done" and tasks["1"]["name"] == "sayHello"
    detail = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert detail["metrics"] and detail["stats"]


def test_legacy_success_run_without_create(client):
    workflow_id, statuses = replay_tower("nf-tower/workflow_success", flask_sender(client))
    assert set(statuses) == {200}
    run, tasks = run_and_tasks(client, workflow_id)
    assert run["status"] == "Done"
    assert sorted(tasks) == ["1", "2"]
    assert {t["status"] for t in tasks.values()} == {"Done"}
    # Its last progress said 16 tasks; workflow.stats at the end say 4, and win.
    assert (run["jobs_total"], run["jobs_done"]) == (4, 4)


def test_legacy_failed_run_takes_the_outcome_from_success(client):
    workflow_id, statuses = replay_tower("nf-tower/workflow_failed", flask_sender(client))
    assert set(statuses) == {200}
    run, tasks = run_and_tasks(client, workflow_id)
    assert run["status"] == "Error"
    assert run["error_message"]
    assert {t["status"] for t in tasks.values()} == {"Error"}
    assert run["jobs_failed"] == 2


def test_multitask_run_stores_every_task(client):
    workflow_id, statuses = replay_tower(
        "nf-tower/workflow_multitasks", flask_sender(client), prefix="/api"
    )
    assert set(statuses) == {200}
    run, tasks = run_and_tasks(client, workflow_id)
    task_ids = set()
    for path in sorted(
        (load_json.__globals__["DATA"] / "tower/nf-tower/workflow_multitasks").glob("*task*.json")
    ):
        task_ids |= {str(t["taskId"]) for t in json.loads(path.read_text())["tasks"]}
    assert set(tasks) == task_ids
    assert run["status"] == "Done"
    # errorStrategy 'ignore': three tasks failed and were ignored, which is no failure.
    assert (run["jobs_failed"], run["jobs_ignored"]) == (0, 3)
    assert {tasks[k]["status"] for k in ("6", "7", "8")} == {"Ignored"}
    assert (run["jobs_total"], run["jobs_done"]) == (15, 12)


def test_a_late_event_never_moves_a_task_backwards(client):
    workflow_id = client.post("/trace/create", json={"runName": "r"}).get_json()["workflowId"]
    completed = load_json("tower/modern/03_progress_request_completed.json")
    submitted = load_json("tower/modern/02_progress_request_submitted.json")
    running = json.loads(json.dumps(submitted))
    running["tasks"][0]["status"] = "RUNNING"
    for body in (completed, running, submitted):
        assert put(client, f"/trace/{workflow_id}/progress", body).status_code == 200
    _, tasks = run_and_tasks(client, workflow_id)
    assert tasks["1"]["status"] == "Done"
    assert tasks["1"]["exit_code"] == 0
    assert tasks["1"]["realtime_ms"] == 12


def test_progress_for_an_unknown_id_creates_the_run(client):
    for kind in ("progress", "heartbeat"):
        workflow_id = f"Unknown{kind}"
        name = "02_progress_request_submitted" if kind == "progress" else "04_heartbeat_request"
        body = load_json(f"tower/modern/{name}.json")
        response = put(client, f"/trace/{workflow_id}/{kind}", body)
        assert response.status_code == 200
        run, _ = run_and_tasks(client, workflow_id)
        assert (run["engine"], run["status"]) == ("nextflow", "Running")


def test_complete_without_begin_and_begin_without_create(client):
    assert (
        put(
            client,
            "/trace/OnlyComplete1/complete",
            load_json("tower/modern/05_complete_request_success.json"),
        ).status_code
        == 200
    )
    assert client.get("/api/workflow/OnlyComplete1").get_json()["workflow"]["status"] == "Done"
    assert (
        put(
            client, "/trace/OnlyBegin1/begin", load_json("tower/modern/01_begin_request.json")
        ).status_code
        == 200
    )


def test_create_echoes_a_launch_workflow_id(client):
    body = dict(load_json("tower/modern/00_create_request.json"), workflowId="5mDfiUtqyptDib")
    assert client.post("/trace/create", json=body).get_json()["workflowId"] == "5mDfiUtqyptDib"


def test_a_retried_create_gets_the_run_its_first_attempt_made(app, client):
    """Nextflow 25.08+ sends create again after a 502-504 or an I/O error, even when the hub
    stored the first one: same session and run name, nothing else sent yet."""
    body = load_json("tower/modern/00_create_request.json")
    first = client.post("/trace/create", json=body).get_json()["workflowId"]
    assert client.post("/trace/create", json=body).get_json()["workflowId"] == first
    assert client.get("/api/workflows").get_json()["count"] == 1
    other_session = dict(body, sessionId="6a0e4b9c-0000-4000-8000-000000000000")
    assert client.post("/trace/create", json=other_session).get_json()["workflowId"] != first
    # Once the run began, the same session and name is a new launch (-resume with -name).
    put(client, f"/trace/{first}/begin", load_json("tower/modern/01_begin_request.json"))
    assert client.post("/trace/create", json=body).get_json()["workflowId"] != first
    # A create without a session or name, or later than a retry can come, is a new run too.
    nameless = {"sessionId": body["sessionId"]}
    ids = {client.post("/trace/create", json=nameless).get_json()["workflowId"] for _ in "ab"}
    assert len(ids) == 2
    with app.app_context():
        late = body["runName"] + "-late"
        earlier = store.tower_create(
            dict(body, runName=late), received_at=utcnow() - timedelta(minutes=6)
        )
        wait_for_projection(app)
        assert store.tower_create(dict(body, runName=late)) != earlier
    wait_for_projection(app)
    # The choice is in the raw events: a rebuild gives the same runs.
    runs = client.get("/api/workflows").get_json()
    with app.app_context():
        store.reindex()
    assert client.get("/api/workflows").get_json() == runs


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"@token:anything").decode(),
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        None,
    ],
)
def test_any_token_is_accepted(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/trace/create", json={"runName": "x"}, headers=headers)
    assert response.status_code == 200


def test_nextflow_25_08_content_type_and_utf8_and_escaped_ascii(client):
    body = load_json("tower/modern/01_begin_request.json")
    body["workflow"]["runName"] = "naïve_curie"
    workflow_id = client.post("/trace/create", json={"runName": "x"}).get_json()["workflowId"]
    for raw in (json.dumps(body, ensure_ascii=False).encode(), json.dumps(body).encode()):
        response = client.put(
            f"/trace/{workflow_id}/begin", data=raw, content_type="application/json; charset=utf-8"
        )
        assert response.status_code == 200
    assert (
        client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["name"] == "naïve_curie"
    )


def test_several_megabyte_bodies_are_accepted(client):
    body = load_json("tower/modern/01_begin_request.json")
    body["workflow"]["configText"] = "x = 1\n" * 1_000_000  # 6 MB
    workflow_id = client.post("/trace/create", json={"runName": "big"}).get_json()["workflowId"]
    assert put(client, f"/trace/{workflow_id}/begin", body).status_code == 200
    detail = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert len(detail["config"]) == 6_000_000


def test_hundred_tasks_with_10kb_scripts_in_one_progress(client):
    template = load_json("tower/modern/03_progress_request_completed.json")
    task = template["tasks"][0]
    body = {
        "tasks": [dict(task, taskId=i, script="x" * 10240) for i in range(1, 101)],
        "progress": template["progress"],
    }
    assert put(client, "/trace/Hundred1/progress", body).status_code == 200
    assert client.get("/api/workflow/Hundred1/jobs?limit=1").get_json()["count"] == 100


def test_body_limit_is_configurable(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1000)
    response = app.test_client().put(
        "/trace/Small1/progress", data=b"{" + b" " * 2000 + b"}", content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["status"] == 413


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000]
)
def test_bodies_that_are_not_a_json_object_get_a_400_message(client, raw):
    response = client.put("/trace/Bad1/progress", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"]
    assert client.get("/api/workflow/Bad1").status_code == 404


@pytest.mark.parametrize("workflow_id", ["x" * 65, "..", "-leading", "a b"])
def test_ids_that_are_not_ids_get_a_400(client, workflow_id):
    response = put(client, f"/trace/{workflow_id}/progress", {"tasks": []})
    assert response.status_code in (400, 404, 405)
    assert response.get_json()["message"]


def test_scheduler_patch_is_acknowledged(client):
    response = client.patch("/api/workflow/Any1", json={"schedRunId": "abc"})
    assert response.status_code == 200 and response.get_json() == {}


def test_an_id_of_the_other_engine_is_a_conflict_not_a_crash(client):
    snakemake_id = client.get("/create_workflow").get_json()["id"]
    response = put(client, f"/trace/{snakemake_id}/progress", {"tasks": []})
    assert response.status_code == 409
    assert "snakemake" in response.get_json()["message"]
