"""The /seqera routes through Flask's client, against the answers Seqera's clients were
recorded reading (tests/data/tower/platform-api/, from tower-cli's test resources)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from panoptes import auth
from panoptes.launcher.queues import Queue
from tests.conftest import load_json
from tests.replay import flask_sender, replay_http_capture, replay_tower

QUEUES = {
    "local": Queue(name="local", executor="local", max_active=2, work_dir="/tmp/q"),
    "cluster": Queue(name="cluster", executor="slurm", default=True, slurm_partition="main"),
}


def launch_token(app) -> str:
    """A token with the launch right only, as a py-nf client holds."""
    from panoptes import store
    from panoptes.launcher import store as launches

    with app.app_context():
        secret = store.create_token("py-nf")[0]
        launches.set_token_scopes("py-nf", frozenset({"launch"}))
        auth.invalidate_cache(app)
    return secret


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def assert_shaped_like(ours: Any, recorded: Any, where: str = "") -> None:
    """Every field of the recorded answer is in ours, with the same JSON type wherever both
    hold a value (objects and the first element of arrays are compared in depth)."""
    if recorded is None or ours is None:
        return
    assert _kind(ours) == _kind(recorded), f"{where}: {ours!r} is not like {recorded!r}"
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            assert key in ours, f"{where}.{key} is missing"
            assert_shaped_like(ours[key], value, f"{where}.{key}")
    elif isinstance(recorded, list) and recorded and ours:
        assert_shaped_like(ours[0], recorded[0], f"{where}[0]")


def recorded(name: str) -> Any:
    return load_json(f"tower/platform-api/{name}")


@pytest.fixture
def nextflow_run(client) -> str:
    workflow_id, statuses = replay_tower("nf-tower/workflow_multitasks", flask_sender(client))
    assert set(statuses) == {200}
    return workflow_id


def test_describe_has_every_field_of_the_recorded_answer(client, nextflow_run):
    answer = client.get(f"/seqera/workflow/{nextflow_run}?workspaceId=42")
    assert answer.status_code == 200
    body = answer.get_json()
    reference = recorded("workflow_view.json")
    reference["progress"].pop("labels")  # workspace labels: the hub has none
    assert_shaped_like(body, reference)
    workflow = body["workflow"]
    assert workflow["id"] == nextflow_run and workflow["status"] == "SUCCEEDED"
    assert workflow["success"] is True and workflow["complete"].endswith("Z")
    assert isinstance(workflow["duration"], int) and workflow["duration"] >= 0
    assert body["workspaceId"] == 42
    stats = workflow["stats"]
    assert isinstance(stats["succeedCount"], int) and stats["failedCount"] == 0


def test_list_has_every_field_and_pages(client, nextflow_run):
    replay_tower("nf-tower/workflow_success", flask_sender(client), workflow_id="OtherRun0001")
    body = client.get("/seqera/workflow?max=1").get_json()
    assert_shaped_like(body, recorded("workflow_list.json"))
    assert body["totalSize"] == 2 and len(body["workflows"]) == 1
    second = client.get("/seqera/workflow?max=1&offset=1").get_json()["workflows"]
    assert len(second) == 1
    assert second[0]["workflow"]["id"] != body["workflows"][0]["workflow"]["id"]
    name = client.get(f"/seqera/workflow/{nextflow_run}").get_json()["workflow"]["runName"]
    found = client.get("/seqera/workflow", query_string={"search": name}).get_json()
    assert [w["workflow"]["id"] for w in found["workflows"]] == [nextflow_run]
    assert found["totalSize"] == 1
    none = client.get("/seqera/workflow?search=no-such-run-anywhere").get_json()
    assert none == {"workflows": [], "totalSize": 0, "hasMore": False}


def test_tasks_have_every_field_and_sort_search_and_page(client, nextflow_run):
    body = client.get(f"/seqera/workflow/{nextflow_run}/tasks?max=1000").get_json()
    assert_shaped_like(body, json.loads(json.dumps(recorded("runs/tasks_list_response.json"))))
    tasks = [item["task"] for item in body["tasks"]]
    assert body["total"] == len(tasks) > 1
    assert {task["status"] for task in tasks} == {"COMPLETED", "FAILED"}
    ids = [task["taskId"] for task in tasks]
    down = client.get(f"/seqera/workflow/{nextflow_run}/tasks?sortBy=taskId&sortDir=desc")
    assert [item["task"]["taskId"] for item in down.get_json()["tasks"]] == sorted(ids)[::-1][:50]
    page = client.get(f"/seqera/workflow/{nextflow_run}/tasks?max=2&offset=1").get_json()
    assert [item["task"]["taskId"] for item in page["tasks"]] == ids[1:3]
    assert page["total"] == len(ids)
    process = tasks[0]["process"]
    searched = client.get(
        f"/seqera/workflow/{nextflow_run}/tasks", query_string={"search": process}
    ).get_json()
    assert searched["total"] == sum(
        1 for task in tasks if process.lower() in task["process"].lower()
    )
    one = client.get(f"/seqera/workflow/{nextflow_run}/task/{ids[0]}").get_json()
    assert one["task"]["taskId"] == ids[0] and one["task"]["process"] == process


def test_progress_and_metrics_have_every_field(client, nextflow_run):
    progress = client.get(f"/seqera/workflow/{nextflow_run}/progress").get_json()
    assert_shaped_like(progress, recorded("runs/runs_progress.json"))
    tasks = client.get(f"/seqera/workflow/{nextflow_run}/tasks?max=1000").get_json()["tasks"]
    processes = {item["task"]["process"] for item in tasks}
    assert {p["process"] for p in progress["progress"]["processesProgress"]} == processes
    loads = progress["progress"]["processesProgress"]
    assert sum(p["succeeded"] + p["failed"] for p in loads) == len(tasks)
    failed = sum(1 for item in tasks if item["task"]["status"] == "FAILED")
    assert progress["progress"]["workflowProgress"]["failed"] == failed > 0
    metrics = client.get(f"/seqera/workflow/{nextflow_run}/metrics").get_json()
    reference = recorded("runs/runs_metrics.json")
    with_time = [m for m in metrics["metrics"] if m["time"] is not None]
    assert with_time, metrics
    reference["metrics"][0]["time"] = reference["metrics"][0]["cpu"]
    assert_shaped_like({"metrics": with_time}, reference)
    assert {m["process"] for m in metrics["metrics"]} <= processes


def test_metrics_are_quartiles_of_the_stored_task_metrics(client):
    workflow_id = client.post("/seqera/trace/create", json={"runName": "q"}).get_json()[
        "workflowId"
    ]
    tasks = [
        {
            "taskId": n,
            "status": "COMPLETED",
            "process": "align",
            "name": f"align ({n})",
            "realtime": 1000 * n,
            "time": 10_000,
            "pcpu": 50.0 * n,
            "cpus": 2,
            "peakRss": 100 * n,
            "memory": 1000,
            "rchar": n,
            "wchar": 2 * n,
        }
        for n in range(1, 6)
    ]
    answer = client.put(
        f"/seqera/trace/{workflow_id}/progress",
        json={"tasks": tasks, "progress": {"succeeded": 5}},
    )
    assert answer.status_code == 200
    (metric,) = client.get(f"/seqera/workflow/{workflow_id}/metrics").get_json()["metrics"]
    assert metric["process"] == "align"
    assert metric["time"]["min"] == 1000 and metric["time"]["max"] == 5000
    assert metric["time"]["q1"] == 2000 and metric["time"]["q2"] == 3000
    assert metric["time"]["q3"] == 4000 and metric["time"]["mean"] == 3000
    assert metric["time"]["maxLabel"] == "align (5)" and metric["time"]["minLabel"] == "align (1)"
    assert metric["cpu"]["q2"] == 150 and metric["cpuUsage"]["max"] == 125
    assert metric["memUsage"]["max"] == 50 and metric["timeUsage"]["q1"] == 20
    assert metric["reads"]["max"] == 5 and metric["writes"]["mean"] == 6


def test_a_tower_stream_to_seqera_shows_up_like_any_nextflow_run(client):
    root_id, _ = replay_tower("nf-tower/workflow_multitasks", flask_sender(client))
    seqera_id, statuses = replay_tower(
        "nf-tower/workflow_multitasks",
        flask_sender(client),
        prefix="/seqera",
        workflow_id="ViaSeqera0001",
    )
    assert set(statuses) == {200}
    root = client.get(f"/api/workflow/{root_id}").get_json()["workflow"]
    via = client.get(f"/api/workflow/{seqera_id}").get_json()["workflow"]
    assert via["engine"] == "nextflow" and via["status"] == root["status"] == "Done"
    assert via["jobs_total"] == root["jobs_total"] > 1
    listed = client.get("/api/workflows").get_json()["workflows"]
    assert {seqera_id, root_id} <= {run["id"] for run in listed}


def test_snakemake_runs_take_the_same_shapes(client):
    workflow_id, _ = replay_http_capture("snakemake/panoptes_success.jsonl", flask_sender(client))
    body = client.get(f"/seqera/workflow/{workflow_id}").get_json()
    assert body["workflow"]["status"] == "SUCCEEDED" and body["workflow"]["engine"] == "snakemake"
    jobs = client.get(f"/api/workflow/{workflow_id}/jobs?limit=1000").get_json()["jobs"]
    tasks = client.get(f"/seqera/workflow/{workflow_id}/tasks?max=1000").get_json()
    assert tasks["total"] == len(jobs) > 0
    assert {t["task"]["process"] for t in tasks["tasks"]} == {job["name"] for job in jobs}
    assert {t["task"]["status"] for t in tasks["tasks"]} == {"COMPLETED"}
    first = tasks["tasks"][0]["task"]
    job = next(job for job in jobs if str(job["jobid"]) == str(first["taskId"]))
    one = client.get(f"/seqera/workflow/{workflow_id}/task/{first['taskId']}").get_json()
    assert one["task"]["process"] == job["name"] == first["process"]
    progress = client.get(f"/seqera/workflow/{workflow_id}/progress").get_json()["progress"]
    assert {p["process"] for p in progress["processesProgress"]} == {job["name"] for job in jobs}
    listed = client.get("/seqera/workflow").get_json()["workflows"]
    assert [w["workflow"]["id"] for w in listed] == [workflow_id]


@pytest.mark.parametrize(
    "path",
    [
        "/seqera/workflow?max=-1",
        "/seqera/workflow?max=100000",
        "/seqera/workflow?offset=x",
        "/seqera/workflow/{id}/tasks?sortBy=nothing",
        "/seqera/workflow/{id}/tasks?sortDir=up",
        "/seqera/workflow/{id}/task/abc",
        "/seqera/workflow/{id}/log?next=-5",
    ],
)
def test_invalid_requests_get_a_400_with_a_message(client, nextflow_run, path):
    answer = client.get(path.format(id=nextflow_run))
    assert answer.status_code == 400
    assert answer.get_json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/seqera/workflow/NoSuchRun",
        "/seqera/workflow/NoSuchRun/tasks",
        "/seqera/workflow/NoSuchRun/progress",
        "/seqera/workflow/NoSuchRun/metrics",
        "/seqera/workflow/NoSuchRun/log",
        "/seqera/workflow/NoSuchRun/task/1",
        "/seqera/compute-envs/nope",
    ],
)
def test_unknown_ids_get_a_404_with_a_message(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and "not found" in answer.get_json()["message"]


def test_service_user_and_compute_envs(app_factory):
    app = app_factory(QUEUES=QUEUES)
    client = app.test_client()
    info = client.get("/seqera/service-info?workspaceId=1").get_json()["serviceInfo"]
    assert isinstance(info["version"], str) and isinstance(info["apiVersion"], str)
    user = client.get("/seqera/user-info").get_json()
    assert isinstance(user["user"]["id"], int) and user["user"]["userName"] == "anonymous"
    envs = client.get("/seqera/compute-envs").get_json()["computeEnvs"]
    assert [(e["id"], e["name"], e["platform"], e["status"], e["primary"]) for e in envs] == [
        ("local", "local", "local-platform", "AVAILABLE", False),
        ("cluster", "cluster", "slurm-platform", "AVAILABLE", True),
    ]
    one = client.get("/seqera/compute-envs/local").get_json()["computeEnv"]
    assert one["id"] == "local" and one["config"]["workDir"] == "/tmp/q"
    assert one["config"]["discriminator"] == "local-platform"


def test_a_closed_hub_takes_bearer_tokens_with_their_rights(app_factory):
    app = app_factory(QUEUES=QUEUES)
    with app.app_context():
        from panoptes import store
        from panoptes.launcher import store as launches

        reader = store.create_token("reader")[0]
        launcher = store.create_token("py-nf")[0]
        launches.set_token_scopes("py-nf", frozenset({"launch", "read"}))
        launches.set_token_scopes("reader", frozenset({"read"}))
        auth.invalidate_cache(app)
    client = app.test_client()
    assert client.get("/seqera/workflow").status_code == 401
    bearer = {"Authorization": f"Bearer {reader}"}
    assert client.get("/seqera/workflow", headers=bearer).status_code == 200
    user = client.get("/seqera/user-info", headers=bearer).get_json()["user"]
    assert user["userName"] == "reader" and user["id"] > 0
    refused = client.post("/seqera/workflow/launch", json={"launch": {}}, headers=bearer)
    assert refused.status_code == 403 and refused.get_json()["message"]
    assert client.post("/seqera/trace/create", json={}, headers=bearer).status_code == 403
    mine = {"Authorization": f"Bearer {launcher}"}
    assert client.get("/seqera/user-info", headers=mine).get_json()["user"]["userName"] == "py-nf"
    answer = client.post("/seqera/workflow/launch", json={"launch": {}}, headers=mine)
    assert answer.status_code == 400 and "pipeline" in answer.get_json()["message"]


@pytest.mark.parametrize(
    ("launch", "words"),
    [
        ({"pipeline": "hello", "workDir": "relative/dir"}, "absolute"),
        ({"pipeline": "hello", "paramsText": "[1, 2]"}, "mapping"),
        ({"pipeline": "hello", "paramsText": "a: [b"}, "neither JSON nor YAML"),
        ({"pipeline": "-hello"}, "must not start with '-'"),
        ({"pipeline": "hello", "computeEnvId": "nope"}, "No queue named"),
        ({"pipeline": "hello", "configProfiles": ["a,b"]}, "profile"),
        ({"pipeline": "hello", "resume": True}, "workDir"),
        ({"pipeline": 5}, "string"),
    ],
)
def test_invalid_launches_get_a_400_with_a_message(app_factory, launch, words):
    app = app_factory(QUEUES=QUEUES)
    secret = launch_token(app)
    answer = app.test_client().post(
        "/seqera/workflow/launch",
        json={"launch": launch},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 400, answer.get_json()
    assert words in answer.get_json()["message"]


def test_scripts_are_refused_unless_the_queue_runs_them(app_factory):
    queues = {
        "plain": Queue(name="plain", work_dir="/tmp/q", default=True),
        "scripted": Queue(name="scripted", work_dir="/tmp/q", run_scripts=True),
    }
    app = app_factory(QUEUES=queues)
    secret = launch_token(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    scripts = {"preRunScript": "module load java", "postRunScript": "rsync -a results/ /out/"}
    for script in ({"preRunScript": scripts["preRunScript"]}, scripts):
        refused = client.post(
            "/seqera/workflow/launch",
            json={"launch": {"pipeline": "hello", **script}},
            headers=headers,
        )
        assert refused.status_code == 403
        assert "run_scripts = true" in refused.get_json()["message"]
    blank = client.post(  # empty scripts are no scripts (Seqera's clients send "")
        "/seqera/workflow/launch",
        json={"launch": {"pipeline": "hello", "preRunScript": " ", "postRunScript": ""}},
        headers=headers,
    )
    assert blank.status_code == 200
    accepted = client.post(
        "/seqera/workflow/launch",
        json={"launch": {"pipeline": "hello", "computeEnvId": "scripted", **scripts}},
        headers=headers,
    )
    assert accepted.status_code == 200
    with app.app_context():
        from panoptes.launcher import store as launches

        launch = launches.by_workflow_id(accepted.get_json()["workflowId"])
        assert launch is not None
        assert launch.pre_run_script == scripts["preRunScript"]
        assert launch.post_run_script == scripts["postRunScript"]
        assert launches.by_workflow_id(blank.get_json()["workflowId"]).pre_run_script is None


def test_a_launch_reads_submitted_at_once_with_its_run_id(app_factory):
    app = app_factory(QUEUES=QUEUES)
    secret = launch_token(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    answer = client.post(
        "/seqera/workflow/launch?workspaceId=7",
        json={
            "launch": {
                "computeEnvId": "local",
                "pipeline": "nf-core/hello",
                "revision": "main",
                "runName": "first",
                "configProfiles": ["test", "docker"],
                "paramsText": "greeting: hi\n",
                "configText": "process.cpus = 1",
                "mainScript": "other.nf",
                "entryName": "ALT",
                "ignoredField": [1],
            }
        },
        headers=headers,
    )
    assert answer.status_code == 200, answer.get_json()
    workflow_id = answer.get_json()["workflowId"]
    launch = client.get("/api/launches?limit=1", headers=headers).get_json()["launches"][0]
    assert launch["workflow_id"] == workflow_id and launch["queue"] == "local"
    assert launch["profile"] == "test,docker" and launch["params"] == {"greeting": "hi"}
    assert launch["args"] == ["-main-script", "other.nf", "-entry", "ALT"]
    described = client.get(f"/seqera/workflow/{workflow_id}").get_json()["workflow"]
    assert described["status"] == "SUBMITTED" and described["id"] == workflow_id
    assert described["runName"] == "first" and described["launchId"] == launch["id"]
    assert described["params"] == {"greeting": "hi"}
    listed = client.get("/seqera/workflow").get_json()
    assert [w["workflow"]["id"] for w in listed["workflows"]] == [workflow_id]
    assert listed["totalSize"] == 1
    log = client.get(f"/seqera/workflow/{workflow_id}/log").get_json()["log"]
    assert log["entries"] == [] and log["pending"] is True
    assert client.delete(f"/seqera/workflow/{workflow_id}").status_code == 400
    assert client.post(f"/seqera/workflow/{workflow_id}/cancel", headers=headers).status_code == 204
    described = client.get(f"/seqera/workflow/{workflow_id}").get_json()["workflow"]
    assert described["status"] == "CANCELLED" and described["success"] is False
    assert client.delete(f"/seqera/workflow/{workflow_id}").status_code == 204
    assert client.get(f"/seqera/workflow/{workflow_id}").status_code == 404


def test_cancel_and_delete_a_monitored_run(client):
    workflow_id = client.post("/seqera/trace/create", json={"runName": "m"}).get_json()[
        "workflowId"
    ]
    assert client.get(f"/seqera/workflow/{workflow_id}").get_json()["workflow"]["status"] == (
        "RUNNING"
    )
    assert client.delete(f"/seqera/workflow/{workflow_id}").status_code == 400
    assert client.post(f"/seqera/workflow/{workflow_id}/cancel").status_code == 401


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/seqera/workflow/{id}", "/seqera/workflow/{workflow_id}"),
        ("/seqera/workflow", "/seqera/workflow"),
        ("/seqera/workflow/{id}/tasks", "/seqera/workflow/{workflow_id}/tasks"),
        ("/seqera/workflow/{id}/task/1", "/seqera/workflow/{workflow_id}/task/{task_id}"),
        ("/seqera/workflow/{id}/progress", "/seqera/workflow/{workflow_id}/progress"),
        ("/seqera/workflow/{id}/metrics", "/seqera/workflow/{workflow_id}/metrics"),
        ("/seqera/workflow/{id}/log", "/seqera/workflow/{workflow_id}/log"),
        ("/seqera/service-info", "/seqera/service-info"),
        ("/seqera/user-info", "/seqera/user-info"),
    ],
)
def test_answers_match_the_openapi_document(client, nextflow_run, path, template):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"][template]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    answer = client.get(path.format(id=nextflow_run))
    assert answer.status_code == 200
    jsonschema.validate(answer.get_json(), {**schema, "components": spec["components"]})


def test_a_monitored_run_is_cancelled_with_the_admin_and_launch_rights(app_factory):
    app = app_factory()
    with app.app_context():
        from panoptes import store
        from panoptes.launcher import store as launches

        both = store.create_token("operator")[0]
        launches.set_token_scopes("operator", frozenset({"read", "ingest", "admin", "launch"}))
        launch_only = store.create_token("launch-only")[0]
        launches.set_token_scopes("launch-only", frozenset({"launch", "ingest"}))
        auth.invalidate_cache(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {both}"}
    workflow_id = client.post(
        "/seqera/trace/create", json={"runName": "m"}, headers=headers
    ).get_json()["workflowId"]
    refused = client.post(
        f"/seqera/workflow/{workflow_id}/cancel",
        headers={"Authorization": f"Bearer {launch_only}"},
    )
    assert refused.status_code == 403 and "admin" in refused.get_json()["message"]
    assert client.post(f"/seqera/workflow/{workflow_id}/cancel", headers=headers).status_code == 204
    workflow = client.get(f"/seqera/workflow/{workflow_id}", headers=headers).get_json()
    assert workflow["workflow"]["status"] == "CANCELLED"
    again = client.post(f"/seqera/workflow/{workflow_id}/cancel", headers=headers)
    assert again.status_code == 400 and "already ended" in again.get_json()["message"]
    assert client.delete(f"/seqera/workflow/{workflow_id}", headers=headers).status_code == 204
    assert client.get(f"/seqera/workflow/{workflow_id}", headers=headers).status_code == 404


def test_a_silent_run_reads_unknown(app, client):
    from datetime import timedelta

    from tests.conftest import silence

    workflow_id = client.post("/seqera/trace/create", json={"runName": "s"}).get_json()[
        "workflowId"
    ]
    silence(app, workflow_id, timedelta(days=30))
    workflow = client.get(f"/seqera/workflow/{workflow_id}").get_json()["workflow"]
    assert workflow["status"] == "UNKNOWN" and workflow["success"] is False


def test_launches_through_seqera_share_the_rate_limit_per_token(app_factory):
    app = app_factory(QUEUES=QUEUES, LAUNCH_RATE_LIMIT="1 per hour")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {launch_token(app)}"}
    launch = {"launch": {"pipeline": "hello"}}
    assert client.post("/seqera/workflow/launch", json=launch, headers=headers).status_code == 200
    refused = client.post("/seqera/workflow/launch", json=launch, headers=headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.get_json()["error"] == "too_many_requests"
