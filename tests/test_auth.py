"""Access tokens: open by default; once configured, every client's way of sending one works."""

import base64
import json

import pytest
from sqlalchemy import select

from panoptes import auth
from panoptes.extensions import db
from panoptes.models import ApiToken


def basic(secret, user="@token"):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture
def secret(app, runner):
    result = runner.invoke(args=["token", "create", "ci"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


def test_open_without_any_token(client):
    assert client.get("/api/workflows").status_code == 200
    assert client.post("/trace/create", json={"runName": "x"}).status_code == 200


def test_token_create_prints_once_and_stores_only_a_hash(app, secret):
    assert secret.startswith("pnp_") and len(secret) > 40
    with app.app_context():
        [token] = db.session.scalars(select(ApiToken)).all()
    assert token.token_hash == auth.hash_secret(secret)
    assert secret not in json.dumps([token.name, token.prefix, token.token_hash])


def test_every_client_way_of_sending_the_token(client, secret):
    ways = {
        "nextflow basic": {"Authorization": basic(secret)},
        "bearer (plugin, WMS_MONITOR_TOKEN, scripts)": {"Authorization": f"Bearer {secret}"},
    }
    for name, headers in ways.items():
        create = client.post("/trace/create", json={"runName": "x"}, headers=headers)
        assert create.status_code == 200, name
        workflow_id = client.get("/create_workflow", headers=headers).get_json()["id"]
        update = client.post(
            "/update_workflow_status",
            data={
                "msg": json.dumps({"level": "progress", "done": 0, "total": 1}),
                "timestamp": "t",
                "id": workflow_id,
            },
            headers=headers,
        )
        assert update.status_code == 200, name
        assert client.get("/api/workflows", headers=headers).status_code == 200, name


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        "Basic !!notbase64",
        "Token abc",
        "Bearer ",
        "Basic " + base64.b64encode(b"nopassword").decode(),
    ],
)
def test_missing_or_wrong_token_is_401_with_a_clear_message(client, secret, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (
        ("GET", "/api/workflows"),
        ("POST", "/trace/create"),
        ("GET", "/create_workflow"),
        ("POST", "/api/snakemake/events"),
        ("GET", "/metrics"),
    ):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 401, (authorization, path)
        body = response.get_json()
        assert body["error"] == "unauthorized" and "token" in body["message"]


def test_health_checks_stay_open(client, secret):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_static_token_from_the_environment(app_factory):
    app = app_factory(TOKEN="static-secret")
    client = app.test_client()
    assert client.get("/api/workflows").status_code == 401
    assert (
        client.get("/api/workflows", headers={"Authorization": "Bearer static-secret"}).status_code
        == 200
    )
    assert (
        client.get("/api/workflows", headers={"Authorization": basic("static-secret")}).status_code
        == 200
    )


def test_revoked_tokens_stop_working(client, runner, secret):
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/workflows", headers=headers).status_code == 200
    assert runner.invoke(args=["token", "revoke", "ci"]).exit_code == 0
    assert client.get("/api/workflows", headers=headers).status_code == 401
    listing = runner.invoke(args=["token", "list"]).output
    assert "ci" in listing and "revoked" in listing and secret not in listing
    assert runner.invoke(args=["token", "revoke", "ci"]).exit_code != 0


def test_duplicate_token_name_is_a_clear_error(runner, secret):
    result = runner.invoke(args=["token", "create", "ci"])
    assert result.exit_code != 0 and "exists already" in result.output


def test_dashboard_sign_in_sets_a_safe_session_cookie(client, secret):
    page = client.get("/")
    assert page.status_code == 302 and "/signin" in page.headers["Location"]
    wrong = client.post("/signin", data={"token": "nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.get_data(as_text=True)
    signed_in = client.post("/signin", data={"token": secret, "next": "/"})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert secret not in cookie
    assert client.get("/").status_code == 200
    assert client.get("/api/workflows").status_code == 200


def test_sign_in_never_redirects_to_another_site(client, secret):
    response = client.post("/signin", data={"token": secret, "next": "//evil.example/x"})
    assert response.status_code == 400 and "Location" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_cookie_changes_need_the_same_origin(client, secret):
    client.post("/signin", data={"token": secret})
    workflow_id = client.post(
        "/trace/create", json={"runName": "x"}, headers={"Authorization": f"Bearer {secret}"}
    ).get_json()["workflowId"]
    forged = client.post(
        f"/api/workflow/{workflow_id}/cancel", headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    no_origin = client.post(f"/api/workflow/{workflow_id}/cancel")
    assert no_origin.status_code == 403
    same = client.post(
        f"/api/workflow/{workflow_id}/cancel", headers={"Origin": "http://localhost"}
    )
    assert same.status_code == 200


def test_secure_cookie_behind_tls(app_factory):
    app = app_factory(PUBLIC_URL="https://panoptes.example.org", TOKEN="t")
    response = app.test_client().post("/signin", data={"token": "t"})
    assert "Secure" in response.headers["Set-Cookie"]


def test_security_headers(client):
    response = client.get("/api/workflows")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
