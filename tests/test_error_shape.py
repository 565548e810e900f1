"""Every 4xx/5xx of every route has the one error body (errors.py)."""

import pytest

ERROR_PATHS = [
    ("GET", "/no/such/page", None, 404),
    ("DELETE", "/api/service-info", None, 405),
    ("POST", "/update_workflow_status", {"data": {"timestamp": "t"}}, 400),
    ("POST", "/api/snakemake/events", {"data": b"[]", "content_type": "application/json"}, 400),
    ("POST", "/trace/create", {"data": b"nope", "content_type": "application/json"}, 400),
    ("PUT", "/trace/abc/begin", {"data": b"", "content_type": "application/json"}, 400),
    ("PUT", "/api/trace/abc/progress", {"data": b"[]", "content_type": "application/json"}, 400),
    ("GET", "/api/workflows?limit=x", None, 400),
    ("GET", "/api/workflow/missing", None, 404),
    ("GET", "/api/workflow/missing/jobs", None, 404),
    ("GET", "/api/workflow/missing/job/1", None, 404),
    ("PUT", "/api/workflow/missing", {"json": {"name": "x"}}, 404),
    ("POST", "/api/workflow/missing/cancel", None, 404),
    ("DELETE", "/api/workflow/missing", None, 404),
    ("DELETE", "/api/workflows/all", None, 410),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), ERROR_PATHS)
def test_error_shape(client, method, path, kwargs, status):
    response = client.open(path, method=method, **(kwargs or {}))
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert set(body) <= {"error", "message", "status", "details"}
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]


def test_unexpected_errors_are_500_with_the_same_shape(app, client, monkeypatch):
    from panoptes import store

    monkeypatch.setattr(store, "snakemake_create", lambda *a, **k: 1 / 0)
    response = client.get("/create_workflow")
    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"
    assert "ZeroDivision" not in response.get_data(as_text=True)  # no internals leak


@pytest.mark.parametrize(
    "url",
    ["/api/workflows?q=%00", "/api/workflows?q=a%00b&engine=snakemake", "/workflow/a%00b"],
)
def test_nul_characters_in_the_url_are_refused(client, url):
    response = client.get(url)
    assert response.status_code == 400
    assert response.get_json()["message"] == "The URL contains a NUL character."
