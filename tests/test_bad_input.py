"""Every bad input gets a clear 4xx or is stored safely: never a 5xx, never a partial write."""

import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from panoptes.extensions import db
from panoptes.models import Job, RawEvent, Workflow


def counts(app):
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Workflow, Job, RawEvent)
        )


def nested(depth):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_BODIES = [
    b"{" * 10,
    b'{"tasks": [}',
    json.dumps(nested(65)).encode(),
    b'{"a": "\xff\xfe"}',
    b"\x00\x00\x00",
    b"[]",
    b"null",
    b'"just a string"',
]


@pytest.mark.parametrize("raw", BAD_BODIES)
@pytest.mark.parametrize(
    "path", ["/trace/create", "/trace/BadInput1/progress", "/api/snakemake/events"]
)
def test_malformed_json_bodies_are_400_and_write_nothing(app, client, raw, path):
    before = counts(app)
    method = "POST" if path in ("/trace/create", "/api/snakemake/events") else "PUT"
    response = client.open(path, method=method, data=raw, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["message"]
    assert counts(app) == before


def test_64_levels_are_accepted(client):
    body = {"workflow": {"params": nested(60)}}
    assert client.put("/trace/Deep1/begin", json=body).status_code == 200


ODD_BUT_WELL_FORMED = [
    {"tasks": [{"taskId": -1, "status": "RUNNING"}]},
    {"tasks": [{"taskId": 10**30, "status": "COMPLETED"}]},
    {"tasks": [{"taskId": 1, "status": "RUNNING", "process": "x\x00y", "tag": "\u202e" * 300}]},
    {"tasks": [{"taskId": 2, "status": ["RUNNING"], "exit": "zero", "memory": -5, "submit": 12}]},
    {"tasks": [{"taskId": 3, "status": "COMPLETED", "script": "s" * 2_000_000}]},
    {"tasks": None, "progress": {"succeeded": "many", "processes": "x"}},
    {"workflow": {"start": "not a date", "nextflow": "24", "params": [1, 2]}, "instant": "now"},
    {"anything": {"\x00key": "\x00value"}},
]


@pytest.mark.parametrize("body", ODD_BUT_WELL_FORMED)
@pytest.mark.parametrize("kind", ["begin", "progress", "heartbeat", "complete"])
def test_odd_tower_payloads_are_accepted_and_stored(app, client, body, kind):
    response = client.put(f"/trace/Odd{kind}/{kind}", json=body)
    assert response.status_code == 200
    assert client.get(f"/api/workflow/Odd{kind}").status_code == 200
    assert client.get(f"/api/workflow/Odd{kind}/jobs").status_code == 200


ODD_SNAKEMAKE_MESSAGES = [
    {"level": "job_info", "jobid": -3, "name": None, "input": "not a list", "wildcards": [1]},
    {"level": "job_info", "jobid": 10**40, "resources": {"mem_mb": "lots", "runtime": 1e308}},
    {"level": "job_finished", "jobid": "../../etc/passwd"},
    {"level": "progress", "done": 10**12, "total": -1},
    {"level": "error", "msg": "x" * 1_000_000},
    {"level": "info", "msg": "\x00" * 10},
    {"level": ["info"]},
    {},
]


@pytest.mark.parametrize("msg", ODD_SNAKEMAKE_MESSAGES)
def test_odd_snakemake_messages_are_accepted(client, msg):
    workflow_id = client.get("/create_workflow").get_json()["id"]
    response = client.post(
        "/update_workflow_status",
        data={"msg": json.dumps(msg), "timestamp": "t", "id": workflow_id},
    )
    assert response.status_code == 200
    assert client.get(f"/api/workflow/{workflow_id}/jobs").status_code == 200


@pytest.mark.parametrize(
    "workflow_id", ["..%2F..%2Fetc", "%00", "a" * 65, "-1", "x;drop table workflows"]
)
def test_path_tricks_in_ids(client, workflow_id):
    for method, path in (
        ("PUT", f"/trace/{workflow_id}/progress"),
        ("GET", f"/api/workflow/{workflow_id}"),
    ):
        response = client.open(path, method=method, json={})
        assert 400 <= response.status_code < 500
        assert response.get_json()["message"]


def test_wrong_types_in_envelopes(client):
    for body in (
        {"msg": 5, "id": "abc"},
        {"msg": "{}", "id": [1]},
        {"msg": "{}", "id": None},
        {"msg": "{}", "id": -7},
        {"msg": "{}", "id": 10**70},
    ):
        response = client.post("/update_workflow_status", json=body)
        assert response.status_code == 400, body
    big = client.post("/api/snakemake/events", json={"workflow_id": "w", "events": [{}] * 10_001})
    assert big.status_code == 400


# Lone UTF-16 surrogates: well-formed JSON (an escape without its pair, or the bytes of one),
# which neither UTF-8 nor PostgreSQL's JSON can hold. Java strings can carry them.
LONE_SURROGATES = [b"\\ud800", b"\\uDFFF", b"\xed\xa0\x80", b"\\ud83d\\ude00 and \\ud83d"]


@pytest.mark.parametrize("surrogate", LONE_SURROGATES)
def test_lone_surrogates_are_stored_as_replacement_characters(app, client, surrogate):
    def text_with(prefix: bytes) -> bytes:
        return b'"' + prefix + surrogate + b'"'

    create = client.post(
        "/trace/create",
        data=b'{"runName": ' + text_with(b"run ") + b', "sessionId": "s"}',
        content_type="application/json",
    )
    assert create.status_code == 200, create.get_data(as_text=True)
    workflow_id = create.get_json()["workflowId"]
    task = b'{"taskId": 1, "status": "RUNNING", "process": ' + text_with(b"p") + b"}"
    progress = client.put(
        f"/trace/{workflow_id}/progress",
        data=b'{"tasks": [' + task + b'], "progress": {"note": ' + text_with(b"") + b"}}",
        content_type="application/json",
    )
    assert progress.status_code == 200, progress.get_data(as_text=True)
    run = client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]
    assert run["name"].startswith("run ") and "\ufffd" in run["name"]
    [job] = client.get(f"/api/workflow/{workflow_id}/jobs").get_json()["jobs"]
    assert "\ufffd" in job["name"]

    snakemake_id = client.get("/create_workflow").get_json()["id"]
    message = b'{"level": "job_info", "jobid": 1, "name": ' + text_with(b"rule") + b"}"
    update = client.post(
        "/update_workflow_status",
        data=urlencode({"msg": message, "id": snakemake_id}),
        content_type="application/x-www-form-urlencoded",
    )
    assert update.status_code == 200, update.get_data(as_text=True)
    batch = client.post(
        "/api/snakemake/events",
        data=b'{"workflow_id": "' + snakemake_id.encode() + b'", "events": [' + message + b"]}",
        content_type="application/json",
    )
    assert batch.status_code == 200, batch.get_data(as_text=True)
    [rule] = client.get(f"/api/workflow/{snakemake_id}/jobs").get_json()["jobs"]
    assert "\ufffd" in rule["name"]
