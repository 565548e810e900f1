"""The panoptes protocol through Flask's client, replaying what real Snakemake clients sent."""

import json
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import load_json, load_jsonl
from tests.replay import flask_sender, replay_http_capture, replay_wms_run


def workflow(client, workflow_id):
    response = client.get(f"/api/workflow/{workflow_id}")
    assert response.status_code == 200
    return response.get_json()["workflow"]


def jobs(client, workflow_id, **query):
    response = client.get(
        f"/api/workflow/{workflow_id}/jobs", query_string={"limit": 1000, **query}
    )
    assert response.status_code == 200
    return {job["jobid"]: job for job in response.get_json()["jobs"]}


def raw_events(app, workflow_id):
    from sqlalchemy import select

    from panoptes.extensions import db
    from panoptes.models import RawEvent

    with app.app_context():
        return db.session.scalars(
            select(RawEvent).where(RawEvent.workflow_id == workflow_id).order_by(RawEvent.pk)
        ).all()


def test_service_info_says_running_and_advertises_batches(client):
    body = client.get("/api/service-info").get_json()
    assert body["status"] == "running"
    assert "batch" in body["features"]


def test_snakemake9_upstream_plugin_success(client):
    workflow_id, statuses = replay_http_capture(
        "snakemake/panoptes_success.jsonl", flask_sender(client)
    )
    assert set(statuses) == {200}
    run = workflow(client, workflow_id)
    assert run["engine"] == "snakemake"
    assert run["status"] == "Done"
    assert (run["jobs_done"], run["jobs_total"], run["jobs_failed"]) == (8, 8, 0)
    assert run["completed_at"] is not None
    by_id = jobs(client, workflow_id)
    assert len(by_id) == 8
    assert {j["status"] for j in by_id.values()} == {"Done"}
    process_a = next(
        j for j in by_id.values() if j["name"] == "process" and j["wildcards"] == {"sample": "A"}
    )
    assert process_a["output"] == ["results/A.processed.txt"]
    assert process_a["msg"] == "Processing sample A"
    assert process_a["resources"]["mem_mb"] == 100
    assert process_a["memory_bytes"] == 96 * 1024 * 1024  # from mem_mib
    assert process_a["started_at"] <= process_a["completed_at"]


def test_snakemake9_upstream_plugin_failure(client):
    workflow_id, statuses = replay_http_capture(
        "snakemake/panoptes_failure.jsonl", flask_sender(client)
    )
    assert set(statuses) == {200}
    run = workflow(client, workflow_id)
    assert run["status"] == "Error"
    assert run["error_message"] == "WorkflowError"
    assert run["jobs_failed"] == 1
    by_id = jobs(client, workflow_id)
    failed = [j for j in by_id.values() if j["status"] == "Error"]
    assert [(j["jobid"], j["name"], j["wildcards"]) for j in failed] == [
        ("4", "process", {"sample": "B"})
    ]
    assert run["jobs_done"] == sum(1 for j in by_id.values() if j["status"] == "Done")


def test_snakemake732_raw_json_without_content_type(client):
    records = load_jsonl("snakemake/legacy_success.jsonl")
    assert all(
        "Content-Type" not in r["headers"]
        for r in records
        if r["path"] == "/update_workflow_status"
    )
    workflow_id, statuses = replay_http_capture(
        "snakemake/legacy_success.jsonl", flask_sender(client)
    )
    assert set(statuses) == {200}
    run = workflow(client, workflow_id)
    assert run["status"] == "Done"
    assert (run["jobs_done"], run["jobs_total"]) == (8, 8)
    create = json.loads(records[1]["body_raw"])
    assert run["command_line"] == create["command"]
    assert run["work_dir"] == create["workdir"]
    by_id = jobs(client, workflow_id)
    assert all(j["shell_command"] for j in by_id.values() if j["name"] != "all")
    # client times: the inner epoch timestamps, not the arrival time
    first_info = next(
        r["msg_json"] for r in records if r.get("msg_json", {}).get("level") == "job_info"
    )
    job = by_id[str(first_info["jobid"])]
    assert job["started_at"].startswith("2026-11-21T")


def test_snakemake8_duplicates_and_rename_with_empty_object(client, app):
    run_doc = load_json("snakemake/snakemake8_wms/run_success.json")
    workflow_id, statuses = replay_wms_run(
        "snakemake/snakemake8_wms/run_success.json", flask_sender(client)
    )
    assert set(statuses) == {200}, "PUT {} must not answer 400"
    run = workflow(client, workflow_id)
    assert run["status"] == "Done"
    by_id = jobs(client, workflow_id)
    assert len(by_id) == 5  # every event twice, still one row per job
    assert run["jobs_done"] == run["jobs_total"] == 5
    assert run["jobs_failed"] == 0
    assert all(j["attempt"] == 1 for j in by_id.values())
    # every raw event is kept, duplicates included (+1 for create)
    assert len(raw_events(app, workflow_id)) == len(run_doc["updates"]) + 1


def test_snakemake731_form_bodies(client):
    workflow_id, statuses = replay_wms_run(
        "snakemake/snakemake7_wms/sm7.31.1_run_success.json", flask_sender(client)
    )
    assert set(statuses) == {200}
    run = workflow(client, workflow_id)
    assert run["status"] == "Done"
    assert run["project"].endswith("Snakefile")
    assert len(jobs(client, workflow_id)) == 5


def update(client, workflow_id, msg, **extra):
    return client.post(
        "/update_workflow_status",
        data={
            "msg": json.dumps(msg),
            "timestamp": "Sat Nov 21 22:48:14 2026",
            "id": workflow_id,
            **extra,
        },
    )


def new_run(client, **query):
    response = client.get("/create_workflow", query_string=query)
    assert response.status_code == 200
    return response.get_json()


def test_job_started_before_job_info_and_retry_with_the_same_jobid(client):
    workflow_id = new_run(client)["id"]
    send = lambda msg: update(client, workflow_id, msg).status_code  # noqa: E731
    assert send({"level": "progress", "done": 0, "total": 1}) == 200
    assert send({"level": "job_started", "jobs": [4]}) == 200
    assert (
        send({"level": "job_info", "jobid": 4, "name": "process", "wildcards": {"sample": "B"}})
        == 200
    )
    assert send({"level": "error", "msg": "RuleException"}) == 200
    assert send({"level": "job_error", "jobid": 4, "name": "process"}) == 200
    assert workflow(client, workflow_id)["status"] == "Error"
    assert send({"level": "job_started", "jobs": [4]}) == 200
    assert workflow(client, workflow_id)["status"] == "Running"  # the retry revives the run
    assert (
        send({"level": "job_info", "jobid": 4, "name": "process", "wildcards": {"sample": "B"}})
        == 200
    )
    assert send({"level": "job_finished", "jobid": 4}) == 200
    assert send({"level": "progress", "done": 1, "total": 1}) == 200
    run = workflow(client, workflow_id)
    assert run["status"] == "Done" and run["jobs_failed"] == 0 and run["error_message"] is None
    [job] = jobs(client, workflow_id).values()
    assert (job["status"], job["attempt"], job["name"]) == ("Done", 2, "process")


def test_keep_going_failure_is_error_with_exact_counts(client):
    workflow_id = new_run(client)["id"]
    for msg in (
        {"level": "progress", "done": 0, "total": 3},
        {"level": "job_info", "jobid": 1, "name": "a"},
        {"level": "job_info", "jobid": 2, "name": "b"},
        {"level": "job_error", "jobid": 1, "name": "a", "msg": "exit 3"},
        {"level": "job_finished", "jobid": 2},
        {"level": "progress", "done": 1, "total": 3},
        {
            "level": "error",
            "msg": "WorkflowError:\nAt least one job did not complete successfully.",
        },
    ):
        assert update(client, workflow_id, msg).status_code == 200
    run = workflow(client, workflow_id)
    assert run["status"] == "Error"
    assert (run["jobs_done"], run["jobs_failed"], run["jobs_total"]) == (1, 1, 3)
    assert run["error_report"].startswith("WorkflowError")
    assert jobs(client, workflow_id)["1"]["error_message"] == "exit 3"


def test_nothing_to_be_done(client):
    workflow_id = new_run(client)["id"]
    text = "Nothing to be done (all requested files are present and up to date)."
    assert update(client, workflow_id, {"level": "info", "msg": text}).status_code == 200
    assert update(client, workflow_id, {"level": "workflow_success"}).status_code == 200
    assert workflow(client, workflow_id)["status"] == "No Execution"


def test_until_totals_are_reconciled_by_workflow_success(client):
    workflow_id = new_run(client)["id"]
    for msg in (
        {"level": "progress", "done": 0, "total": 2},
        {"level": "job_info", "jobid": 1, "name": "a"},
        {"level": "job_finished", "jobid": 1},
        {"level": "progress", "done": 1, "total": 5},
        {"level": "job_info", "jobid": 2, "name": "b"},
        {"level": "job_finished", "jobid": 2},
        {"level": "progress", "done": 2, "total": 5},
        {"level": "workflow_success"},
    ):
        update(client, workflow_id, msg)
    run = workflow(client, workflow_id)
    assert (run["status"], run["jobs_done"], run["jobs_total"]) == ("Done", 2, 2)


def test_unknown_levels_and_python_literal_messages_are_kept(client, app):
    workflow_id = new_run(client)["id"]
    assert update(client, workflow_id, {"level": "brand_new", "x": 1}).status_code == 200
    response = client.post(
        "/update_workflow_status",
        data={"msg": "{'level': 'info', 'msg': 'old client'}", "timestamp": "x", "id": workflow_id},
    )
    assert response.status_code == 200
    kinds = [e.body.get("msg") for e in raw_events(app, workflow_id)[1:]]
    assert kinds == ['{"level": "brand_new", "x": 1}', "{'level': 'info', 'msg': 'old client'}"]


def test_json_body_with_content_type_and_integer_id(client):
    workflow_id = new_run(client)["id"]
    body = {
        "msg": json.dumps({"level": "progress", "done": 1, "total": 4}),
        "timestamp": "t",
        "id": workflow_id,
    }
    response = client.post("/update_workflow_status", json=body)
    assert response.status_code == 200 and response.data == b"ok"
    assert workflow(client, workflow_id)["jobs_total"] == 4


def test_unknown_id_creates_the_run_instead_of_an_error(client):
    response = update(client, "LostAfterReset1", {"level": "progress", "done": 1, "total": 2})
    assert response.status_code == 200
    run = workflow(client, "LostAfterReset1")
    assert (run["engine"], run["jobs_total"]) == ("snakemake", 2)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"timestamp": "t", "id": "abc"}, "msg"),
        ({"msg": '{"level": "info"}', "timestamp": "t"}, "id"),
        ({"msg": "not json at all", "timestamp": "t", "id": "abc"}, "msg"),
        ({"msg": '{"level": "info"}', "timestamp": "t", "id": "../../etc"}, "id"),
        ({"msg": '{"level": "info"}', "timestamp": "t", "id": "x" * 65}, "id"),
    ],
)
def test_malformed_updates_get_400_with_a_clear_message_and_write_nothing(
    client, app, data, problem
):
    response = client.post("/update_workflow_status", data=data)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == 400 and problem in body["message"]
    assert client.get("/api/workflows").get_json()["count"] == 0


def test_raw_body_that_is_not_json_is_a_400(client):
    response = client.post("/update_workflow_status", data=b"{not json", content_type="")
    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["message"]


def test_create_with_requested_name_follows_panoptes_rules(client):
    first = new_run(client, workflow_id="nightly")
    assert first["name"] == "nightly"
    # the same name while the first run is live: a new row with a suffix
    second = new_run(client, workflow_id="nightly")
    assert second["id"] != first["id"] and second["name"].startswith("nightly-")
    # "nightly" itself is still live, so the legacy spelling gets yet another new row
    third = new_run(client, name="nightly")
    assert third["id"] not in (first["id"], second["id"]) and third["name"].startswith("nightly-")


def test_create_reuses_a_finished_run_and_resets_it(client):
    first = new_run(client, workflow_id="weekly")
    update(client, first["id"], {"level": "job_info", "jobid": 1, "name": "a"})
    update(client, first["id"], {"level": "job_finished", "jobid": 1})
    update(client, first["id"], {"level": "workflow_success"})
    again = new_run(client, workflow_id="weekly")
    assert again["id"] == first["id"]
    assert again["status"] == "Running" and again["jobs_total"] == 0
    assert jobs(client, first["id"]) == {}


def test_create_workflow_accepts_odd_bodies_and_extra_query_keys(client):
    response = client.get(
        "/create_workflow?name=x&team=lab", data=b"\xff\xfe not utf8", content_type=""
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "x"


def test_wms_monitor_token_is_accepted(client):
    response = client.get("/api/service-info", headers={"Authorization": "Bearer secret"})
    assert response.status_code == 200


def test_snakemake8_put_with_arguments_renames(client):
    workflow_id = new_run(client)["id"]
    response = client.put(f"/api/workflow/{workflow_id}", json={"name": "renamed", "team": "x"})
    assert response.status_code == 200
    assert response.get_json()["workflow"]["name"] == "renamed"


def test_batch_route_is_idempotent(client, app):
    workflow_id = new_run(client)["id"]
    events = [
        {
            "event_id": "run1:1",
            "level": "progress",
            "done": 0,
            "total": 1,
            "timestamp": 1795301541.0,
        },
        {
            "event_id": "run1:2",
            "level": "job_info",
            "jobid": 1,
            "name": "a",
            "timestamp": 1795301542.0,
        },
        {"event_id": "run1:3", "level": "job_finished", "jobid": 1, "timestamp": 1795301543.0},
        {
            "event_id": "run1:4",
            "level": "progress",
            "done": 1,
            "total": 1,
            "timestamp": 1795301543.5,
        },
    ]
    first = client.post(
        "/api/snakemake/events", json={"workflow_id": workflow_id, "events": events}
    )
    assert first.get_json() == {"workflow_id": workflow_id, "accepted": 4, "duplicates": 0}
    again = client.post(
        "/api/snakemake/events", json={"workflow_id": workflow_id, "events": events}
    )
    assert again.get_json() == {"workflow_id": workflow_id, "accepted": 0, "duplicates": 4}
    assert len(raw_events(app, workflow_id)) == 1 + 4
    run = workflow(client, workflow_id)
    assert (run["status"], run["jobs_done"], run["jobs_total"]) == ("Done", 1, 1)
    assert run["completed_at"].startswith("2026-11-21T")


def test_batch_route_rejects_malformed_batches_whole(client):
    workflow_id = new_run(client)["id"]
    for body in (
        {"events": []},
        {"workflow_id": workflow_id, "events": [1, 2]},
        {"workflow_id": workflow_id, "events": "x"},
    ):
        response = client.post("/api/snakemake/events", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"] == "invalid"
    assert jobs(client, workflow_id) == {}


def test_form_body_round_trip_of_recorded_envelope(client):
    record = load_jsonl("snakemake/panoptes_success.jsonl")[1]
    workflow_id = new_run(client)["id"]
    form = dict(record["form"], id=workflow_id)
    response = client.post(
        "/update_workflow_status",
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_large_batches_are_deduplicated_across_lookups(app, client):
    """More jobs and event ids than one lookup statement takes (store._MAX_KEYS_PER_QUERY)."""
    workflow_id = new_run(client)["id"]
    events = [
        {"event_id": f"run1:{job}", "level": "job_info", "jobid": job, "name": "step"}
        for job in range(1, 1101)
    ]
    body = {"workflow_id": workflow_id, "events": events}
    first = client.post("/api/snakemake/events", json=body)
    assert first.get_json() == {"workflow_id": workflow_id, "accepted": 1100, "duplicates": 0}
    finished = [
        {"event_id": f"run1:done:{job}", "level": "job_finished", "jobid": job}
        for job in range(1, 1101)
    ]
    again = client.post(
        "/api/snakemake/events", json={"workflow_id": workflow_id, "events": events + finished}
    )
    assert again.get_json() == {"workflow_id": workflow_id, "accepted": 1100, "duplicates": 1100}
    run = workflow(client, workflow_id)
    assert (run["jobs_done"], run["jobs_total"]) == (1100, 1100)


def test_form_bodies_decode_leniently_and_keep_the_first_of_repeated_fields(app, client):
    """As werkzeug's form parser does: bytes that are not UTF-8 become U+FFFD, and a field
    sent twice counts once, the first time."""
    workflow_id = new_run(client)["id"]
    message = quote('{"level": "info", "msg": "caf') + "%FF" + quote('"}')
    body = f"msg={message}&id={workflow_id}&id=someone-else&timestamp=x".encode()
    response = client.post(
        "/update_workflow_status", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    stored = raw_events(app, workflow_id)[-1]
    assert json.loads(stored.body["msg"])["msg"] == "caf\ufffd"
    assert stored.workflow_id == workflow_id


@pytest.mark.parametrize("odd", [None, "NaN", "1e400", '"a\\u0000b"', "123456789012345678901"])
def test_batches_store_every_event_storable_whatever_one_of_them_holds(app, client, odd):
    """A clean batch's events are stored as sent; one odd value in a batch makes that value
    storable (null, text without NUL, a big number as text) and leaves the rest alone."""
    workflow_id = new_run(client)["id"]
    extra = "" if odd is None else f', "odd": {odd}'
    raw = (
        f'{{"workflow_id": "{workflow_id}", "events": ['
        f'{{"event_id": "e1", "level": "job_info", "jobid": 1, "name": "a"{extra}}},'
        '{"event_id": "e2", "level": "job_finished", "jobid": 1, "note": "naïve"}]}'
    )
    response = client.post(
        "/api/snakemake/events", data=raw.encode(), content_type="application/json"
    )
    assert response.get_json()["accepted"] == 2
    stored = [event.body for event in raw_events(app, workflow_id)[1:]]
    expected_odd = {None: None, "NaN": None, "1e400": None, '"a\\u0000b"': "ab"}.get(
        odd, "123456789012345678901"
    )
    assert stored[0] == {
        "event_id": "e1",
        "level": "job_info",
        "jobid": 1,
        "name": "a",
        **({} if odd is None else {"odd": expected_odd}),
    }
    assert stored[1] == {"event_id": "e2", "level": "job_finished", "jobid": 1, "note": "naïve"}
    assert jobs(client, workflow_id)["1"]["status"] == "Done"
