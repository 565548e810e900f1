"""The OpenAPI document describes every route, and answers match their schemas."""

import re

import jsonschema
import pytest

from panoptes.openapi import document
from tests.replay import flask_sender, replay_tower


def spec_paths(app):
    with app.app_context():
        return document()["paths"]


def test_every_route_is_described(app):
    paths = spec_paths(app)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        assert path in paths, f"{rule.rule} is not in /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not in /openapi.json"


def test_document_is_served_and_docs_render_offline(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    html = client.get("/docs").get_data(as_text=True)
    assert "/api/workflows" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


def resolve(spec, schema):
    return {**schema, "components": spec["components"]}


@pytest.mark.parametrize(
    ("path", "ref"),
    [
        ("/api/workflows", "WorkflowList"),
        ("/api/workflow/{id}", "WorkflowEnvelope"),
        ("/api/workflow/{id}/jobs", "JobList"),
        ("/api/workflow/{id}/job/1", "JobEnvelope"),
    ],
)
def test_answers_match_their_schemas(client, path, ref):
    workflow_id, _ = replay_tower("modern", flask_sender(client))
    spec = client.get("/openapi.json").get_json()
    body = client.get(path.replace("{id}", workflow_id)).get_json()
    jsonschema.validate(
        body, {"$ref": f"#/components/schemas/{ref}", "components": spec["components"]}
    )


def test_error_answers_match_the_error_schema(client):
    spec = client.get("/openapi.json").get_json()
    body = client.get("/api/workflow/none").get_json()
    jsonschema.validate(
        body, {"$ref": "#/components/schemas/Error", "components": spec["components"]}
    )
