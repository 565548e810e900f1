"""The generic event API (POST /api/events): the README's example, duplicates, events out of
order, and bad input, each with a clear answer and nothing lost."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveHub

README = (Path(__file__).parents[1] / "README.md").read_text()


def batch(*events, run_id="run-1", engine="necroflow"):
    return {"run_id": run_id, "engine": engine, "events": list(events)}


def ev(event_id, kind, **fields):
    return {"event_id": str(event_id), "type": kind, **fields}


def run_of(client, run_id):
    return client.get(f"/api/workflow/{run_id}").get_json()["workflow"]


def jobs_of(client, run_id):
    return {j["jobid"]: j for j in client.get(f"/api/workflow/{run_id}/jobs").get_json()["jobs"]}


@pytest.mark.e2e
def test_the_readme_curl_example_reports_a_run_with_two_jobs(live_hub: LiveHub):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    [command] = re.findall(
        r"```bash\n(curl -s http://127.0.0.1:5000/api/events.*?)```", README, re.S
    )
    assert command.count("\n") == 5  # five lines
    command = command.replace("http://127.0.0.1:5000", live_hub.url)
    answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0, answer.stderr
    assert '"accepted":6' in answer.stdout.replace(" ", "")
    live_hub.projected()
    import requests

    run = requests.get(f"{live_hub.url}/api/workflow/demo-1", timeout=10).json()["workflow"]
    assert (run["engine"], run["name"], run["status"]) == ("myengine", "demo", "Error")
    assert run["error_message"] == "call failed" and run["dag"]["links"] == [
        {"source": 0, "target": 1}
    ]
    jobs = requests.get(f"{live_hub.url}/api/workflow/demo-1/jobs", timeout=10).json()["jobs"]
    assert {(j["name"], j["status"], j["exit_code"]) for j in jobs} == {
        ("align", "Done", None),
        ("call", "Error", 1),
    }
    listed = requests.get(f"{live_hub.url}/api/workflows?engine=myengine", timeout=10).json()
    assert [w["id"] for w in listed["workflows"]] == ["demo-1"]


def test_a_batch_sent_twice_is_stored_once(client):
    sent = batch(
        ev(1, "run_started", name="twice"),
        ev(2, "job_started", job_id="a", step="s"),
        ev(3, "job_finished", job_id="a", exit_code=0),
    )
    first = client.post("/api/events", json=sent).get_json()
    again = client.post("/api/events", json=sent).get_json()
    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert first["url"].endswith("/workflow/run-1")
    run = run_of(client, "run-1")
    assert (run["jobs_done"], run["jobs_total"], run["engine"]) == (1, 1, "necroflow")


def test_events_out_of_order_never_move_a_job_back(client):
    # A client collecting events from threads: the finish arrives first, in another batch.
    client.post("/api/events", json=batch(ev(2, "job_finished", job_id="a", step="s", time=20.0)))
    client.post("/api/events", json=batch(ev(1, "job_started", job_id="a", time=10.0)))
    # Inside one batch the hub orders the events by their times.
    client.post(
        "/api/events",
        json=batch(
            ev(4, "job_finished", job_id="b", time=40.0),
            ev(3, "job_queued", job_id="b", step="t", time=30.0),
        ),
    )
    jobs = jobs_of(client, "run-1")
    assert jobs["a"]["status"] == "Done" and jobs["b"]["status"] == "Done"
    assert jobs["b"]["name"] == "t"


def test_a_retried_job_is_a_new_attempt_and_a_cached_one_reads_cached(client):
    client.post(
        "/api/events",
        json=batch(
            ev(1, "job_started", job_id="a", step="s"),
            ev(2, "job_failed", job_id="a", exit_code=2, error="boom", log_tail="last\nlines"),
            ev(3, "job_started", job_id="a"),
            ev(4, "job_finished", job_id="a", exit_code=0),
            ev(5, "job_cached", job_id="c", step="s"),
        ),
    )
    jobs = jobs_of(client, "run-1")
    assert (jobs["a"]["status"], jobs["a"]["attempt"]) == ("Done", 2)
    assert jobs["c"]["status"] == "Cached"


def test_a_failed_job_keeps_its_exit_code_error_and_log_tail(client):
    client.post(
        "/api/events",
        json=batch(
            ev(
                1,
                "job_failed",
                job_id="a",
                step="s",
                exit_code=3,
                error="boom",
                log_tail="line 1\nline 2",
                log=["/abs/job.log"],
            )
        ),
    )
    job = jobs_of(client, "run-1")["a"]
    assert (job["status"], job["exit_code"], job["error_message"]) == ("Error", 3, "boom")
    assert job["extra"]["log_tail"] == "line 1\nline 2" and job["log"] == ["/abs/job.log"]


def test_unknown_fields_are_ignored(client):
    answer = client.post(
        "/api/events",
        json={**batch(ev(1, "run_started", name="n", new_field={"x": 1})), "also_new": True},
    )
    assert answer.status_code == 200 and run_of(client, "run-1")["name"] == "n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"engine": "x", "events": [{"event_id": "1", "type": "run_started"}]}, "run_id"),
        (batch(ev(1, "run_started"), run_id="../etc"), "run_id"),
        (batch(ev(1, "run_started"), engine="Not An Engine"), "engine"),
        (batch(), "events"),
        (batch({"type": "run_started"}), "events.0.event_id"),
        (batch(ev(1, "run_exploded")), "events.0.type"),
        (batch(ev("", "run_started")), "events.0.event_id"),
    ],
)
def test_bad_input_gets_a_400_that_names_the_field_and_stores_nothing(client, app, body, field):
    answer = client.post("/api/events", json=body)
    assert answer.status_code == 400
    error = answer.get_json()
    assert error["error"] == "invalid" and field in {d["field"] for d in error["details"]}
    assert client.get("/api/log").get_json()["appended"] == 0


def test_a_body_that_is_not_a_json_object_is_a_400(client):
    for data in (b"", b"not json", b"[1, 2]"):
        answer = client.post("/api/events", data=data, content_type="application/json")
        assert answer.status_code == 400 and answer.get_json()["status"] == 400


def test_engines_with_protocols_of_their_own_are_refused(client):
    answer = client.post("/api/events", json=batch(ev(1, "run_started"), engine="nextflow"))
    assert answer.status_code == 400 and "own protocol" in answer.get_json()["message"]


def test_a_run_of_another_engine_is_a_409(client):
    nextflow_id = client.post("/trace/create", json={"runName": "nf"}).get_json()["workflowId"]
    answer = client.post("/api/events", json=batch(ev(1, "run_started"), run_id=nextflow_id))
    assert answer.status_code == 409
    other = client.post("/api/events", json=batch(ev(1, "run_started"), engine="cromwell"))
    assert other.status_code == 200
    clash = client.post("/api/events", json=batch(ev(2, "run_started"), engine="necroflow"))
    assert clash.status_code == 409 and "cromwell" in clash.get_json()["message"]


def test_an_id_reused_by_another_engine_after_its_run_was_deleted_is_accepted(client):
    """The hub remembers each run's engine to skip a query per request: a deleted run's id
    reused by another engine must not meet the old engine's answer."""
    first = batch(ev(1, "run_started"), ev(2, "run_finished", success=True), engine="cromwell")
    assert client.post("/api/events", json=first).status_code == 200
    assert client.post("/api/events", json=batch(ev(3, "run_started"))).status_code == 409
    assert client.delete("/api/workflow/run-1").status_code == 204
    again = client.post("/api/events", json=batch(ev(4, "run_started"), engine="necroflow"))
    assert again.status_code == 200
    assert run_of(client, "run-1")["engine"] == "necroflow"
    late = client.post("/api/events", json=batch(ev(5, "run_started"), engine="cromwell"))
    assert late.status_code == 409 and "necroflow" in late.get_json()["message"]
