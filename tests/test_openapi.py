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


def test_every_view_declares_its_operation(app):
    """The document is derived from each view's declaration: a view without one would be
    documented only as "other"."""
    from panoptes import apidoc
    from panoptes.openapi import DESCRIBED_BY_MODULE

    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static" and rule.endpoint.split(".")[0] not in DESCRIBED_BY_MODULE:
            view = app.view_functions[rule.endpoint]
            assert apidoc.declared(view) is not None, f"{rule.rule} declares no operation"
    tags = {
        operation["tags"][0]
        for operations in spec_paths(app).values()
        for operation in operations.values()
    }
    assert tags <= set(apidoc.TAGS)


def test_parameters_and_bodies_come_from_the_parsing_models(app):
    """What the document says a route takes is what the view parses with."""
    from panoptes.api import JobQuery, RenameIn, WorkflowQuery
    from panoptes.ingest.events import EventBatchIn
    from panoptes.ingest.snakemake import BatchIn, UpdateEnvelope

    with app.app_context():
        spec = document()
    paths = spec["paths"]

    def query_names(path, method="get"):
        return [p["name"] for p in paths[path][method]["parameters"] if p["in"] == "query"]

    def body_ref(path, method="post", media="application/json"):
        return paths[path][method]["requestBody"]["content"][media]["schema"]["$ref"]

    assert query_names("/api/workflows") == list(WorkflowQuery.model_fields)
    assert query_names("/api/workflow/{workflow_id}/jobs") == list(JobQuery.model_fields)
    assert body_ref("/api/events").endswith("/EventBatchIn")
    assert body_ref("/api/snakemake/events").endswith("/BatchIn")
    assert body_ref("/api/workflow/{workflow_id}", "put").endswith("/RenameIn")
    form = "application/x-www-form-urlencoded"
    assert body_ref("/update_workflow_status", media=form).endswith("/UpdateEnvelope")
    schemas = spec["components"]["schemas"]
    for model in (EventBatchIn, BatchIn, RenameIn, UpdateEnvelope):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
    # Nextflow's bodies are stored as sent: documented as any object, never refused by a schema.
    tower = paths["/trace/{workflow_id}/progress"]["put"]["requestBody"]["content"]
    assert tower["application/json"]["schema"]["type"] == "object"
    assert "properties" not in tower["application/json"]["schema"]


def test_answers_are_documented_as_served(app):
    """Derived values (computed fields) are in the response schemas, the columns they are
    derived from are not."""
    with app.app_context():
        schemas = document()["components"]["schemas"]
    summary = schemas["WorkflowSummary"]
    for derived in ("jobs_done", "jobs_total", "jobs_pending", "duration_seconds", "status"):
        assert derived in summary["properties"] and derived in summary["required"]
    assert not {"n_done", "n_pending", "progress_total"} & set(summary["properties"])
    assert {"jobid", "input", "shell_command", "msg"} <= set(schemas["JobOut"]["properties"])
    assert "job_key" not in schemas["JobOut"]["properties"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/workflows?limit=x", None),
        ("get", "/api/workflows?status=Sleeping", None),
        ("put", "/api/workflow/any", {"name": 7}),
        ("post", "/api/events", {"run_id": "r", "engine": "e", "events": []}),
        ("post", "/api/snakemake/events", {"workflow_id": "w"}),
        ("post", "/update_workflow_status", {"msg": "{}"}),
    ],
)
def test_declared_models_refuse_with_the_hubs_own_error(client, method, path, body):
    """Parsing from the declarations answers the hub's 400, never a library's 422."""
    response = getattr(client, method)(path, json=body)
    assert response.status_code == 400
    assert set(response.get_json()) >= {"error", "message", "status"}
    assert response.get_json()["status"] == 400


def test_docs_render_schemas_with_contents_read_api_first(client):
    html = client.get("/docs").get_data(as_text=True)
    assert 'id="schema-WorkflowSummary"' in html and "<code>jobs_done</code>" in html
    assert 'href="#schema-WorkflowList"' in html  # answers link to their schemas
    assert 'href="#api_list_workflows_get"' in html  # the table of contents
    sections = re.findall(r'<section class="tag" id="tag-([^"]+)"', html)
    assert sections.index("read-API") < sections.index("snakemake")
    assert sections.index("read-API") < sections.index("nextflow")
    assert sections.index("read-API") < sections.index("any-engine")
    # Content-Security-Policy: no inline script or style.
    assert "<style" not in html and " style=" not in html
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))


def test_docs_ask_for_sign_in_like_the_other_pages(app_factory):
    client = app_factory(TOKEN="docs-secret").test_client()
    page = client.get("/docs")
    assert page.status_code == 302 and "/signin" in page.headers["Location"]
    assert "next=/docs" in page.headers["Location"] or "next=%2Fdocs" in page.headers["Location"]
    assert client.get("/openapi.json").status_code == 401  # data stays a 401, as for the API
    client.post("/signin", data={"token": "docs-secret", "next": "/docs"})
    assert client.get("/docs").status_code == 200
