"""The read and management API."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import load_json, silence

COMPACT_SORTED = {"separators": (",", ":"), "sort_keys": True}


def snakemake_run(client, name=None):
    query = {"workflow_id": name} if name else {}
    return client.get("/create_workflow", query_string=query).get_json()["id"]


def nextflow_run(client, run_name):
    return client.post("/trace/create", json={"runName": run_name}).get_json()["workflowId"]


def send(client, workflow_id, msg):
    response = client.post(
        "/update_workflow_status",
        data={"msg": json.dumps(msg), "timestamp": "t", "id": workflow_id},
    )
    assert response.status_code == 200


def finish(client, workflow_id):
    send(client, workflow_id, {"level": "workflow_success"})


def test_list_spans_both_engines_newest_first_with_panoptes_keys(client):
    first = snakemake_run(client, "alpha")
    second = nextflow_run(client, "beta_curie")
    body = client.get("/api/workflows").get_json()
    assert body["count"] == 2
    assert [w["id"] for w in body["workflows"]] == [second, first]
    for run in body["workflows"]:
        assert {
            "id",
            "name",
            "status",
            "jobs_done",
            "jobs_total",
            "started_at",
            "completed_at",
            "updated_at",
            "engine",
            "jobs_failed",
        } <= set(run)
        assert run["updated_at"].endswith("Z")
    assert {w["engine"] for w in body["workflows"]} == {"snakemake", "nextflow"}


def test_filters_search_and_pagination(client):
    ids = [snakemake_run(client, f"sample-{i}") for i in range(5)]
    nextflow_run(client, "other_run")
    finish(client, ids[0])
    get = lambda **q: client.get("/api/workflows", query_string=q).get_json()  # noqa: E731
    assert get(engine="nextflow")["count"] == 1
    assert get(engine="snakemake,nextflow")["count"] == 6
    assert get(status="Done")["count"] == 1
    assert get(status="Running,Done")["count"] == 6
    assert get(q="SAMPLE")["count"] == 5
    assert get(q="%")["count"] == 0  # LIKE wildcards are searched literally
    page = get(limit=2, offset=1)
    assert page["count"] == 6 and len(page["workflows"]) == 2
    assert [w["name"] for w in get(q="sample", limit=2)["workflows"]] == ["sample-4", "sample-3"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "many"},
        {"offset": "-1"},
        {"status": "Sleeping"},
        {"engine": "Not An Engine!"},
    ],
)
def test_bad_query_parameters_are_400(client, query):
    response = client.get("/api/workflows", query_string=query)
    assert response.status_code == 400
    assert response.get_json()["error"] in ("invalid", "bad_request")


def test_stale_is_derived_on_read_and_revived_by_the_next_event(client, app):
    workflow_id = snakemake_run(client)
    silence(app, workflow_id, timedelta(hours=49))
    assert client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["status"] == "Stale"
    assert client.get("/api/workflows?status=Stale").get_json()["count"] == 1
    assert client.get("/api/workflows?status=Running").get_json()["count"] == 0
    send(client, workflow_id, {"level": "progress", "done": 0, "total": 3})
    assert client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["status"] == "Running"


def test_a_silent_nextflow_run_turns_stale_in_minutes_a_snakemake_run_in_hours(client, app):
    """Nextflow sends a heartbeat every minute; Snakemake sends nothing during a long job."""
    snakemake_id = snakemake_run(client)
    nextflow_id = client.post("/trace/create", json={"runName": "quiet"}).get_json()["workflowId"]
    for workflow_id in (snakemake_id, nextflow_id):
        silence(app, workflow_id, timedelta(minutes=11))

    def status(workflow_id):
        return client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["status"]

    def listed(state):
        runs = client.get("/api/workflows", query_string={"status": state}).get_json()
        return {run["id"] for run in runs["workflows"]}

    assert (status(snakemake_id), status(nextflow_id)) == ("Running", "Stale")
    assert listed("Stale") == {nextflow_id} and listed("Running") == {snakemake_id}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'panoptes_runs{engine="nextflow",status="Stale"} 1.0' in metrics
    client.put(f"/trace/{nextflow_id}/heartbeat", json={"instant": 1})
    assert status(nextflow_id) == "Running"


def test_the_nextflow_threshold_is_a_setting(app_factory):
    client = app_factory(NEXTFLOW_STALE_MINUTES=0, STALE_HOURS=1).test_client()
    app = client.application
    nextflow_id = client.post("/trace/create", json={"runName": "quiet"}).get_json()["workflowId"]
    silence(app, nextflow_id, timedelta(minutes=30))
    assert client.get(f"/api/workflow/{nextflow_id}").get_json()["workflow"]["status"] == "Running"
    silence(app, nextflow_id, timedelta(minutes=61))
    assert client.get(f"/api/workflow/{nextflow_id}").get_json()["workflow"]["status"] == "Stale"


def test_jobs_filters_and_single_job(client):
    workflow_id = snakemake_run(client)
    for jobid, rule in ((1, "align"), (2, "align"), (3, "call")):
        send(client, workflow_id, {"level": "job_info", "jobid": jobid, "name": rule})
    send(client, workflow_id, {"level": "job_finished", "jobid": 1})
    jobs = lambda **q: client.get(f"/api/workflow/{workflow_id}/jobs", query_string=q).get_json()  # noqa: E731
    assert jobs()["count"] == 3
    assert [j["jobid"] for j in jobs(status="Running")["jobs"]] == ["2", "3"]
    assert [j["jobid"] for j in jobs(name="align")["jobs"]] == ["1", "2"]
    assert [j["jobid"] for j in jobs(limit=1, offset=2)["jobs"]] == ["3"]
    single = client.get(f"/api/workflow/{workflow_id}/job/1").get_json()
    assert single["job"]["status"] == "Done" and single["jobs"] == single["job"]
    assert client.get(f"/api/workflow/{workflow_id}/job/99").status_code == 404
    assert client.get(f"/api/workflow/{workflow_id}/jobs?status=Bogus").status_code == 400


def test_unknown_ids_are_404_with_the_error_body(client):
    for method, path in (
        ("GET", "/api/workflow/nope"),
        ("GET", "/api/workflow/nope/jobs"),
        ("GET", "/api/workflow/nope/job/1"),
        ("PUT", "/api/workflow/nope"),
        ("POST", "/api/workflow/nope/cancel"),
        ("DELETE", "/api/workflow/nope"),
    ):
        response = client.open(path, method=method, json={"name": "x"} if method == "PUT" else None)
        assert response.status_code == 404, (method, path)
        assert response.get_json()["status"] == 404


def test_rename_semantics(client):
    workflow_id = nextflow_run(client, "first_name")
    assert client.put(f"/api/workflow/{workflow_id}", json={}).status_code == 200
    assert client.put(f"/api/workflow/{workflow_id}").status_code == 200
    assert client.put(f"/api/workflow/{workflow_id}", json={"name": "   "}).status_code == 400
    assert client.put(f"/api/workflow/{workflow_id}", json=["name"]).status_code == 400
    assert (
        client.put(
            f"/api/workflow/{workflow_id}", data="{oops", content_type="application/json"
        ).status_code
        == 400
    )
    renamed = client.put(f"/api/workflow/{workflow_id}", json={"name": "my run"}).get_json()[
        "workflow"
    ]
    assert renamed["name"] == "my run"
    # the engine's later run name no longer overrides what a person chose
    begin = load_json("tower/modern/01_begin_request.json")
    client.put(f"/trace/{workflow_id}/begin", json=begin)
    assert client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["name"] == "my run"


def test_cancel_then_delete(client):
    workflow_id = snakemake_run(client)
    response = client.delete(f"/api/workflow/{workflow_id}")
    assert response.status_code == 403
    assert (
        response.get_json()["message"] == "You cannot delete a Running workflow. Cancel it first."
    )
    cancelled = client.post(f"/api/workflow/{workflow_id}/cancel").get_json()["workflow"]
    assert cancelled["status"] == "Cancelled" and cancelled["completed_at"]
    assert client.delete(f"/api/workflow/{workflow_id}").status_code == 204
    assert client.get(f"/api/workflow/{workflow_id}").status_code == 404


def test_delete_all_then_gone(client):
    snakemake_run(client)
    nextflow_run(client, "x")
    response = client.delete("/api/workflows/all")
    assert response.status_code == 200
    assert response.get_json() == {"msg": "Database clean up is complete", "deleted": 2}
    again = client.delete("/api/workflows/all")
    assert again.status_code == 410 and again.get_json()["error"] == "gone"


def test_detail_carries_the_large_fields_and_the_list_does_not(client):
    workflow_id = nextflow_run(client, "x")
    client.put(f"/trace/{workflow_id}/begin", json=load_json("tower/modern/01_begin_request.json"))
    detail = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert detail["params"] is not None and detail["config"] is not None
    listed = client.get("/api/workflows").get_json()["workflows"][0]
    assert "params" not in listed and "config" not in listed


def test_responses_are_compact_json_with_sorted_keys_and_flask_converts_the_rest(app, client):
    workflow_id = nextflow_run(client, "naïve_run")
    response = client.get(f"/api/workflow/{workflow_id}")
    text = response.get_data(as_text=True)
    assert response.mimetype == "application/json" and text.endswith("}\n")
    workflow = json.loads(text)["workflow"]
    assert text == json.dumps({"workflow": workflow}, **COMPACT_SORTED, ensure_ascii=False) + "\n"
    # What orjson does not take as plain data is Flask's to write, as Flask writes it.
    with app.app_context():
        odd = {"at": datetime(2026, 11, 22, tzinfo=UTC), "big": 2**70}
        flasks = {"at": "Sun, 22 Nov 2026 00:00:00 GMT", "big": 2**70}
        assert app.json.dumps(odd) == json.dumps(flasks, sort_keys=True)
        assert app.json.dumps({7: "seven"}) == '{"7": "seven"}'
        assert app.json.dumps({"b": [1.5, None], "a": "é"}) == '{"a":"é","b":[1.5,null]}'


SUMMARY_KEYS = {
    "command_line", "completed_at", "created_at", "duration_seconds", "engine", "engine_version",
    "error_message", "exit_status", "host", "id", "jobs_aborted", "jobs_cached", "jobs_done",
    "jobs_failed", "jobs_ignored", "jobs_not_run", "jobs_pending", "jobs_running", "jobs_total",
    "name", "project", "revision",
    "session_id", "started_at", "status", "updated_at", "user", "work_dir",
}  # fmt: skip
DETAIL_KEYS = SUMMARY_KEYS | {
    "config", "dag", "error_report", "extra", "metrics", "params", "progress", "stats",
}  # fmt: skip
JOB_KEYS = {
    "attempt", "completed_at", "cpus", "duration_seconds", "error_message", "exit_code", "extra",
    "input", "jobid", "log", "memory_bytes", "msg", "name", "output", "pcpu", "peak_rss",
    "read_bytes", "realtime_ms", "resources", "shell_command", "started_at", "status",
    "submitted_at", "tag", "time_ms", "updated_at", "wildcards", "work_dir", "workflow_id",
    "write_bytes",
}  # fmt: skip


def test_answers_keep_their_keys_and_derived_values(client):
    """Every key of the runs and jobs as served (panoptes' clients read them), and the values
    derived from several columns: counts, durations, the job's run id, times with Z."""
    workflow_id = snakemake_run(client, "keys")
    send(client, workflow_id, {"level": "progress", "done": 1, "total": 5})
    send(client, workflow_id, {"level": "job_info", "jobid": 1, "name": "a", "input": ["x"]})
    send(client, workflow_id, {"level": "job_finished", "jobid": 1})
    send(client, workflow_id, {"level": "job_info", "jobid": 2, "name": "b"})
    listed = client.get("/api/workflows").get_json()["workflows"][0]
    assert set(listed) == SUMMARY_KEYS
    run = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert set(run) == DETAIL_KEYS
    assert (run["jobs_done"], run["jobs_total"], run["jobs_running"]) == (1, 5, 1)
    assert run["duration_seconds"] is None and run["created_at"].endswith("Z")
    job = client.get(f"/api/workflow/{workflow_id}/job/1").get_json()["job"]
    assert set(job) == JOB_KEYS
    assert (job["jobid"], job["workflow_id"], job["input"]) == ("1", workflow_id, ["x"])
    assert isinstance(job["duration_seconds"], float) and job["completed_at"].endswith("Z")


def _batch(client, workflow_id, events):
    response = client.post(
        "/api/snakemake/events", json={"workflow_id": workflow_id, "events": events}
    )
    assert response.status_code == 200, response.get_json()


def _run_with_jobs(client, jobs):
    workflow_id = snakemake_run(client)
    _batch(
        client,
        workflow_id,
        [
            {"event_id": f"e{i}", "level": "job_info", "jobid": i, "name": "r", "timestamp": 1}
            for i in range(1, jobs + 1)
        ]
        + [{"event_id": "f1", "level": "job_finished", "jobid": 1, "timestamp": 2}],
    )
    return workflow_id


def test_jobs_without_limit_are_every_job_streamed_in_chunks(client, monkeypatch):
    from panoptes import api

    monkeypatch.setattr(api, "STREAM_CHUNK", 7)  # 23 jobs: four chunks
    workflow_id = _run_with_jobs(client, 23)
    response = client.get(f"/api/workflow/{workflow_id}/jobs")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert body["count"] == 23 and body["next"] is None
    assert [job["jobid"] for job in body["jobs"]] == [str(i) for i in range(1, 24)]
    # Filters and an offset apply to the stream too.
    running = client.get(f"/api/workflow/{workflow_id}/jobs?status=running&offset=20").get_json()
    assert running["count"] == 22 and [j["jobid"] for j in running["jobs"]] == ["22", "23"]
    empty = client.get(f"/api/workflow/{workflow_id}/jobs?status=Cached").get_json()
    assert empty == {"count": 0, "next": None, "jobs": []}


def test_a_limit_above_the_largest_is_cut_and_pages_link_the_next(app_factory):
    client = app_factory(API_MAX_LIMIT=5).test_client()
    workflow_id = _run_with_jobs(client, 12)
    url = f"/api/workflow/{workflow_id}/jobs?limit=1000&status=RUNNING,done"
    seen = []
    for _ in range(10):  # bounded: three pages
        response = client.get(url)
        assert response.status_code == 200
        body = response.get_json()
        assert body["count"] == 12 and len(body["jobs"]) <= 5
        seen += [job["jobid"] for job in body["jobs"]]
        if body["next"] is None:
            assert "Link" not in response.headers
            break
        assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
        url = body["next"]
    assert seen == [str(i) for i in range(1, 13)]
    assert client.get("/api/workflows?limit=100000").status_code == 200


def test_status_filters_take_any_case(client):
    workflow_id = _run_with_jobs(client, 3)
    finish(client, snakemake_run(client, "finished"))
    assert client.get("/api/workflows?status=done").get_json()["count"] == 1
    assert client.get("/api/workflows?status=RUNNING").get_json()["count"] == 1
    jobs = client.get(f"/api/workflow/{workflow_id}/jobs?status=done").get_json()
    assert [job["jobid"] for job in jobs["jobs"]] == ["1"]
    assert client.get(f"/api/workflow/{workflow_id}/jobs?status=nope").status_code == 400
