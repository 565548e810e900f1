"""The launcher's pages in-process: behind the launch right, the form queues a launch, the
launch page shows its log and its forms; without queues the pages say how to turn it on."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from panoptes.launcher import store as launches
from panoptes.launcher.queues import Queue
from tests.launcher.test_launch_api import QUEUES, make_token

SAME_ORIGIN = {"Origin": "http://localhost"}


def signed_in(app: Flask, scope: str = "launch") -> FlaskClient:
    secret = make_token(app, f"person-{scope}", scope)
    client = app.test_client()
    answer = client.post("/signin", data={"token": secret, "next": "/launches"})
    assert answer.status_code == 302
    return client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


@pytest.fixture
def launch_app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(QUEUES=QUEUES, TOKEN_CACHE_SECONDS=0)


def test_pages_need_a_session_with_the_launch_right(launch_app: Flask) -> None:
    anonymous = launch_app.test_client()
    assert anonymous.get("/launches").location.startswith("/signin")
    reader = signed_in(launch_app, "read")
    assert reader.get("/launches").status_code == 403
    assert signed_in(launch_app).get("/launches").status_code == 200


def test_the_form_queues_a_launch_and_its_page_shows_it(launch_app: Flask) -> None:
    client = signed_in(launch_app)
    form = client.get("/launches/new").get_data(as_text=True)
    assert 'id="launch-form"' in form and "<script>" not in form and "style=" not in form
    answer = client.post(
        "/launches/new",
        data={
            "csrf_token": csrf(form),
            "engine": "nextflow",
            "pipeline": "hello",
            "queue": "local",
            "run_name": "from-the-form",
            "params": '{"greeting": "hi"}',
            "args": "--x\n\n--y\n",
        },
        headers=SAME_ORIGIN,
    )
    assert answer.status_code == 303
    launch_id = answer.location.rsplit("/", 1)[1]
    with launch_app.app_context():
        launch = launches.get(launch_id)
        assert launch is not None
        assert launch.params == {"greeting": "hi"} and launch.args == ["--x", "--y"]
        assert launch.requested_by == "person-launch" and launch.run_name == "from-the-form"
        launches.append_log(launch_id, "hello <b>log</b>\n")
    page = client.get(f"/launches/{launch_id}").get_data(as_text=True)
    assert "hello &lt;b&gt;log&lt;/b&gt;" in page and 'data-log-stream="' in page
    assert 'id="launch-cancel"' in page
    listing = client.get("/launches").get_data(as_text=True)
    assert launch_id in listing and "from-the-form" in listing
    cancelled = client.post(
        f"/launches/{launch_id}/cancel", data={"csrf_token": csrf(page)}, headers=SAME_ORIGIN
    )
    assert cancelled.status_code == 303
    with launch_app.app_context():
        assert launches.get(launch_id).status == "cancelled"  # type: ignore[union-attr]


def test_the_form_shows_what_is_wrong(launch_app: Flask) -> None:
    client = signed_in(launch_app)
    token = csrf(client.get("/launches/new").get_data(as_text=True))
    answer = client.post(
        "/launches/new",
        data={"csrf_token": token, "engine": "nextflow", "pipeline": "x", "params": "{nope"},
        headers=SAME_ORIGIN,
    )
    assert answer.status_code == 400 and "JSON object" in answer.get_data(as_text=True)
    forged = client.post(
        "/launches/new", data={"engine": "nextflow", "pipeline": "x"}, headers=SAME_ORIGIN
    )
    assert forged.status_code == 400 and "Form refused" in forged.get_data(as_text=True)


def test_without_queues_the_pages_say_how_to_turn_launching_on(
    app_factory: Callable[..., Flask],
) -> None:
    client = signed_in(app_factory(TOKEN_CACHE_SECONDS=0))
    for url in ("/launches", "/launches/new"):
        assert "panoptes.toml" in client.get(url).get_data(as_text=True)


def test_a_launch_only_session_can_sign_out_of_a_closed_hub(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(QUEUES=QUEUES, TOKEN="static-token-closing-the-hub", TOKEN_CACHE_SECONDS=0)
    client = signed_in(app)
    assert client.get("/launches").status_code == 200
    assert client.get("/api/workflows").status_code == 403  # no read right
    assert client.post("/signout", headers=SAME_ORIGIN).status_code == 302
    assert client.get("/launches").location.startswith("/signin")


def test_the_form_takes_scripts_for_the_queues_that_run_them(
    app_factory: Callable[..., Flask],
) -> None:
    queues = {
        "local": Queue(name="local", work_dir="/tmp/q", default=True),
        "scripted": Queue(name="scripted", work_dir="/tmp/q", run_scripts=True),
    }
    client = signed_in(app_factory(QUEUES=queues, TOKEN_CACHE_SECONDS=0))
    form = client.get("/launches/new").get_data(as_text=True)
    assert 'id="launch-scripts"' in form and "only on queue scripted" in form
    fields = {"engine": "nextflow", "pipeline": "hello", "pre_run_script": "module load java"}
    refused = client.post(
        "/launches/new",
        data={"csrf_token": csrf(form), **fields, "queue": "local"},
        headers=SAME_ORIGIN,
    )
    assert refused.status_code == 400
    assert "run_scripts = true" in refused.get_data(as_text=True)
    assert "module load java" in refused.get_data(as_text=True)  # what was typed is kept
    queued = client.post(
        "/launches/new",
        data={"csrf_token": csrf(form), **fields, "queue": "scripted", "post_run_script": "ls"},
        headers=SAME_ORIGIN,
    )
    assert queued.status_code == 303
    page = client.get(queued.location).get_data(as_text=True)
    assert 'id="launch-pre-run-script">module load java<' in page
    assert 'id="launch-post-run-script">ls<' in page


def test_the_form_has_no_script_fields_when_no_queue_runs_scripts(launch_app: Flask) -> None:
    form = signed_in(launch_app).get("/launches/new").get_data(as_text=True)
    assert 'id="launch-scripts"' not in form and "pre_run_script" not in form
