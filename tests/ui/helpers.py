"""Filling a hub for dashboard tests: recorded runs of both engines, over the same senders as
``tests/replay.py`` (a Flask test client or a live process)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import load_jsonl
from tests.replay import Request, Sender, _with_id, replay_http_capture, replay_tower

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_RUN = "<script>alert('run')</script> & co"


def _recorded_extras(capture: str, event: str) -> dict[str, Any]:
    for record in load_jsonl(f"snakemake/raw_records_{capture}.jsonl"):
        if record["event"] == event:
            return {key: spec["value"] for key, spec in record["extras"].items()}
    raise LookupError(event)


def metadata_events(capture: str) -> list[dict[str, Any]]:
    """``workflow_started`` and ``rulegraph`` of a recorded Snakemake 9 run, as our logger plugin
    sends them on the batch route."""
    started = _recorded_extras(capture, "workflow_started")
    graph = _recorded_extras(capture, "rulegraph")["rulegraph"]
    return [
        {
            "event_id": f"{capture}-started",
            "level": "workflow_started",
            "command": started["cmd"],
            "workdir": started["cwd"],
            "snakefile": started["snakefile_main"],
            "host": started["host"],
            "user": started["user"],
            "snakemake_version": started["snakemake_version"],
        },
        {"event_id": f"{capture}-rulegraph", "level": "rulegraph", "rulegraph": graph},
    ]


def post_batch(send: Sender, workflow_id: str, events: list[dict[str, Any]]) -> int:
    """Our plugin's batch route."""
    body = json.dumps({"workflow_id": workflow_id, "events": events}).encode()
    status, _ = send(
        Request("POST", "/api/snakemake/events", body, {"Content-Type": "application/json"})
    )
    return status


def send_event(send: Sender, workflow_id: str, msg: dict[str, Any]) -> int:
    """One ``/update_workflow_status`` message, form-encoded as Snakemake 7/8 send it."""
    from urllib.parse import urlencode

    body = urlencode({"msg": json.dumps(msg), "timestamp": "t", "id": workflow_id}).encode()
    status, _ = send(
        Request(
            "POST",
            "/update_workflow_status",
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    return status


def create_snakemake(send: Sender, name: str | None = None) -> str:
    """``GET /create_workflow`` (with a name chosen by the user, if given)."""
    query = {"workflow_id": name} if name else {}
    status, payload = send(Request("GET", "/create_workflow", query=query))
    assert status == 200, status
    workflow_id: str = payload["id"]
    return workflow_id


def snakemake_with_graph(send: Sender, capture: str, name: str) -> str:
    """A recorded Snakemake 9 run (``success`` or ``failure``) with its metadata and rule
    graph: the batch first, then the recorded ``/update_workflow_status`` traffic."""
    workflow_id = create_snakemake(send, name)
    assert post_batch(send, workflow_id, metadata_events(capture)) == 200
    for record in load_jsonl(f"snakemake/panoptes_{capture}.jsonl"):
        if record["path"] != "/update_workflow_status":
            continue
        headers = {"Content-Type": record["headers"].get("Content-Type", "")}
        body = _with_id(record["body_raw"], headers["Content-Type"], workflow_id)
        status, _ = send(Request("POST", "/update_workflow_status", body, headers))
        assert status == 200, status
    return workflow_id


def hostile_run(send: Sender) -> tuple[str, str]:
    """A running Snakemake run whose name and one job's name are markup; (run id, job key)."""
    workflow_id = create_snakemake(send, HOSTILE_RUN)
    msg = {
        "level": "job_info",
        "jobid": 7,
        "name": HOSTILE_NAME,
        "msg": HOSTILE_NAME,
        "wildcards": {"sample": HOSTILE_NAME},
        "input": [],
        "output": [f"out/{HOSTILE_NAME}.txt"],
        "log": [f"logs/{HOSTILE_NAME}.log"],
        "shellcmd": f"echo '{HOSTILE_NAME}' > out.txt",
    }
    assert send_event(send, workflow_id, msg) == 200
    assert send_event(send, workflow_id, {"level": "progress", "done": 0, "total": 3}) == 200
    return workflow_id, "7"


def fill_both_engines(send: Sender) -> dict[str, str]:
    """Runs of both engines in every final status plus a live one; their ids by role."""
    ids = {
        "snakemake_done": snakemake_with_graph(send, "success", "rnaseq-nightly"),
        "snakemake_failed": snakemake_with_graph(send, "failure", "variant-calling"),
    }
    ids["snakemake7"], _ = replay_http_capture("snakemake/legacy_success.jsonl", send)
    ids["nextflow_done"], _ = replay_tower("modern", send)
    ids["nextflow_failed"], _ = replay_tower(
        "nf-tower/workflow_failed", send, workflow_id="NfFailedRun001"
    )
    ids["nextflow_multi"], _ = replay_tower(
        "nf-tower/workflow_multitasks", send, workflow_id="NfMultiRun0001"
    )
    ids["hostile"], ids["hostile_job"] = hostile_run(send)
    return ids
