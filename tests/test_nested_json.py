"""Deeply nested JSON on every path a body is decoded (the form field ``msg``, raw JSON
bodies, Python-literal messages, batches, Tower payloads, the read API's inputs): a clear 4xx or
stored safely, never a 5xx."""

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WORKFLOW_ID = "nestedrun00001"
DEPTHS = st.one_of(
    st.integers(min_value=1, max_value=80),  # around the stored-whole limit
    st.integers(min_value=900, max_value=1100),  # around Python's recursion limit
    st.integers(min_value=4000, max_value=6000),  # what made a 500
)


@st.composite
def nestings(draw):
    """A JSON (or Python-literal) text nested ``depth`` levels, possibly left unbalanced."""
    depth = draw(DEPTHS)
    pattern = draw(st.lists(st.sampled_from(["list", "object"]), min_size=1, max_size=3))
    python = draw(st.booleans())
    key = "'k'" if python else '"k"'
    opening = "".join(
        "[" if pattern[i % len(pattern)] == "list" else "{" + key + ":" for i in range(depth)
    )
    closing = "".join(
        "]" if pattern[i % len(pattern)] == "list" else "}" for i in reversed(range(depth))
    )
    if draw(st.booleans()):
        closing = closing[: draw(st.integers(0, len(closing)))]  # truncated on the wire
    return opening + draw(st.sampled_from(["1", '"x"', "null", "[]"])) + closing


def deep_message(inner):
    return '{"level": "job_info", "jobid": 1, "rule_name": "a", "input": ' + inner + "}"


def requests_for(inner):
    """(method, path, body, content type) for every way a client may carry ``inner``."""
    form = "application/x-www-form-urlencoded"
    as_json = "application/json"
    for msg in (inner, deep_message(inner)):
        yield "POST", "/update_workflow_status", urlencode({"msg": msg, "id": WORKFLOW_ID}), form
        # Snakemake 7.32: the envelope as raw JSON with no Content-Type, msg as a string...
        envelope = '{"id": "' + WORKFLOW_ID + '", "msg": ' + json.dumps(msg) + "}"
        yield "POST", "/update_workflow_status", envelope, None
        # ...or as an object
        yield "POST", "/update_workflow_status", '{"id": "x1", "msg": ' + msg + "}", None
    yield "GET", "/create_workflow", urlencode({"snakefile": inner}), form
    yield "GET", "/create_workflow", '{"snakefile": ' + inner + "}", None
    yield (
        "POST",
        "/api/snakemake/events",
        ('{"workflow_id": "' + WORKFLOW_ID + '", "events": [' + deep_message(inner) + "]}"),
        as_json,
    )
    yield "POST", "/trace/create", '{"runName": "n", "x": ' + inner + "}", as_json
    yield "POST", "/api/trace/create", inner, as_json
    for kind in ("begin", "progress", "heartbeat", "complete"):
        body = '{"workflow": {"id": "n", "params": ' + inner + '}, "tasks": [' + inner + "]}"
        yield "PUT", f"/trace/{WORKFLOW_ID}/{kind}", body, as_json
    yield "PUT", f"/api/workflow/{WORKFLOW_ID}", '{"name": ' + inner + "}", as_json


@pytest.fixture
def known_run(client):
    assert client.post(f"/trace/{WORKFLOW_ID}/heartbeat", json={}).status_code < 500


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(inner=nestings())
def test_no_decoding_path_answers_5xx(client, known_run, inner):
    for method, path, body, content_type in requests_for(inner):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.open(path, method=method, data=body.encode(), headers=headers)
        assert response.status_code < 500, (method, path, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            assert set(response.get_json()) >= {"error", "message", "status"}


@pytest.mark.parametrize("container", ["[", '{"a":'])
def test_the_snakemake_form_message_nested_5000_deep_is_a_clear_400(client, container):
    closing = "]" if container == "[" else "}"
    msg = container * 5000 + "1" + closing * 5000
    response = client.post("/update_workflow_status", data={"msg": msg, "id": WORKFLOW_ID})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid"
    # and the hub still records the next, ordinary, message of that run
    ok = client.post(
        "/update_workflow_status",
        data={"msg": json.dumps({"level": "progress", "done": 1, "total": 2}), "id": WORKFLOW_ID},
    )
    assert ok.status_code == 200


def test_a_recursion_error_anywhere_is_a_400_in_the_error_shape(app):
    def too_deep():
        raise RecursionError("maximum recursion depth exceeded")

    app.add_url_rule("/too-deep", view_func=too_deep)
    response = app.test_client().get("/too-deep")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "bad_request",
        "message": "The request nests too deeply to be read.",
        "status": 400,
    }
