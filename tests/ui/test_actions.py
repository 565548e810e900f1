"""The dashboard's forms: rename, mark cancelled, delete with confirmation, all behind a
per-session CSRF token."""

from __future__ import annotations

from tests.replay import flask_sender

from .conftest import csrf_token, page
from .helpers import create_snakemake


def run_status(client, workflow_id: str) -> str:
    return client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]["status"]


def test_rename_with_the_session_token(client):
    run = create_snakemake(flask_sender(client), "old-name")
    token = csrf_token(page(client, f"/workflow/{run}"))
    response = client.post(
        f"/workflow/{run}/rename", data={"csrf_token": token, "name": "  new name  "}
    )
    assert response.status_code == 303 and response.location.endswith(f"/workflow/{run}")
    html = page(client, f"/workflow/{run}")
    assert "<h1>new name</h1>" in html and "Renamed." in html


def test_rename_refuses_a_blank_or_too_long_name(client):
    run = create_snakemake(flask_sender(client), "keep")
    token = csrf_token(page(client, f"/workflow/{run}"))
    for name in ("   ", "x" * 256):
        client.post(f"/workflow/{run}/rename", data={"csrf_token": token, "name": name})
        html = page(client, f"/workflow/{run}")
        assert "<h1>keep</h1>" in html and "A name needs 1 to 255 characters." in html


def test_forms_without_the_right_token_are_refused(client, app):
    run = create_snakemake(flask_sender(client), "target")
    token = csrf_token(page(client, f"/workflow/{run}"))
    stranger = app.test_client()  # another browser session: its own token
    stranger_token = csrf_token(page(stranger, f"/workflow/{run}"))
    assert stranger_token != token
    attempts = [
        (client, {"name": "pwned"}),  # no token
        (client, {"name": "pwned", "csrf_token": "guess"}),
        (client, {"name": "pwned", "csrf_token": stranger_token}),  # someone else's token
        (app.test_client(), {"name": "pwned", "csrf_token": token}),  # token, no session
    ]
    for browser, form in attempts:
        response = browser.post(f"/workflow/{run}/rename", data=form)
        assert response.status_code == 400 and "Form refused" in response.get_data(as_text=True)
    for action in ("cancel", "delete"):
        assert client.post(f"/workflow/{run}/{action}", data={}).status_code == 400
    # a cross-site request is refused even with the token (browsers say so in Sec-Fetch-Site)
    response = client.post(
        f"/workflow/{run}/cancel",
        data={"csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 400
    assert run_status(client, run) == "Running"
    assert "<h1>target</h1>" in page(client, f"/workflow/{run}")


def test_the_session_cookie_is_httponly_and_same_site(client):
    run = create_snakemake(flask_sender(client), "cookie")
    response = client.get(f"/workflow/{run}")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_cancel_then_delete_with_confirmation(client):
    run = create_snakemake(flask_sender(client), "doomed")
    html = page(client, f"/workflow/{run}")
    token = csrf_token(html)
    assert f'href="/workflow/{run}/delete"' in html
    # a Running run: the confirmation page offers to cancel instead, and deleting is refused
    confirm = page(client, f"/workflow/{run}/delete")
    assert "still <strong>Running</strong>" in confirm
    assert f'action="/workflow/{run}/delete"' not in confirm
    assert f'action="/workflow/{run}/cancel"' in confirm
    refused = client.post(f"/workflow/{run}/delete", data={"csrf_token": token})
    assert refused.status_code == 303 and refused.location.endswith(f"/workflow/{run}/delete")
    assert "mark it cancelled first" in page(client, f"/workflow/{run}/delete")
    assert run_status(client, run) == "Running"

    cancelled = client.post(f"/workflow/{run}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert run_status(client, run) == "Cancelled"
    assert "Marked as cancelled." in page(client, f"/workflow/{run}")

    confirm = page(client, f"/workflow/{run}/delete")
    assert "This cannot be undone." in confirm and "Delete the run" in confirm
    deleted = client.post(f"/workflow/{run}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and deleted.location.endswith("/")
    assert "Deleted doomed." in page(client, "/")
    assert client.get(f"/api/workflow/{run}").status_code == 404


def test_actions_on_an_unknown_run_answer_404(client):
    create_snakemake(flask_sender(client), "any")
    token = csrf_token(page(client, "/workflow/" + create_snakemake(flask_sender(client), "b")))
    for action in ("rename", "cancel", "delete"):
        response = client.post(f"/workflow/nope/{action}", data={"csrf_token": token, "name": "x"})
        assert response.status_code == 404, action
