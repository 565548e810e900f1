"""Replaying recorded client traffic against a hub: a Flask test client or a live process.

Captures were answered by other servers, so the workflow id the client echoed is replaced by the
id this hub hands out, re-encoding each body the way the client sent it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

DATA = Path(__file__).parent / "data"


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


# A sender takes a request and returns (status code, parsed JSON body or None).
Sender = Callable[[Request], tuple[int, Any]]


def flask_sender(client: Any) -> Sender:
    def send(request: Request) -> tuple[int, Any]:
        response = client.open(
            request.path,
            method=request.method,
            data=request.body,
            headers=request.headers,
            query_string=request.query,
        )
        return response.status_code, response.get_json(silent=True)

    return send


def http_sender(base_url: str, session: Any) -> Sender:
    def send(request: Request) -> tuple[int, Any]:
        response = session.request(
            request.method,
            base_url + request.path,
            data=request.body,
            headers=request.headers,
            params=request.query,
            timeout=10,
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return response.status_code, payload

    return send


def _with_id(body: str, content_type: str | None, workflow_id: str) -> bytes:
    if content_type and "form" in content_type:
        fields = dict(parse_qsl(body, keep_blank_values=True))
        fields["id"] = workflow_id
        return urlencode(fields).encode()
    envelope = json.loads(body)
    envelope["id"] = workflow_id
    return json.dumps(envelope).encode()


def _headers(recorded: dict[str, str]) -> dict[str, str]:
    keep = {"Content-Type", "Authorization", "User-Agent"}
    return {k: v for k, v in recorded.items() if k in keep}


def replay_http_capture(relative: str, send: Sender) -> tuple[str, list[int]]:
    """Replay a ``panoptes_*.jsonl`` / ``legacy_success.jsonl`` capture; the hub's workflow id
    and the status of every request."""
    workflow_id = ""
    statuses: list[int] = []
    for line in (DATA / relative).read_text().splitlines():
        record = json.loads(line)
        headers = _headers(record["headers"])
        body = record.get("body_raw") or ""
        if record["path"] == "/create_workflow":
            status, payload = send(
                Request("GET", "/create_workflow", body.encode(), headers, record["query"])
            )
            workflow_id = payload["id"]
        elif record["path"] == "/update_workflow_status":
            status, _ = send(
                Request(
                    "POST",
                    "/update_workflow_status",
                    _with_id(body, headers.get("Content-Type"), workflow_id),
                    headers,
                )
            )
        else:
            status, _ = send(Request(record["method"], record["path"], body.encode(), headers))
        statuses.append(status)
    return workflow_id, statuses


def replay_wms_run(relative: str, send: Sender) -> tuple[str, list[int]]:
    """Replay a ``snakemake{7,8}_wms`` run document (service-info, create, rename, updates)."""
    run = json.loads((DATA / relative).read_text())
    statuses = [send(Request("GET", "/api/service-info"))[0]]
    create = run["create_workflow"]
    status, payload = send(
        Request(
            "GET",
            "/create_workflow",
            create["request_body_raw"].encode(),
            {"Content-Type": create["request_content_type"]},
        )
    )
    statuses.append(status)
    workflow_id = payload["id"]
    if "rename_put" in run:
        put = run["rename_put"]
        statuses.append(
            send(
                Request(
                    "PUT",
                    f"/api/workflow/{workflow_id}",
                    put["request_body_raw"].encode(),
                    {"Content-Type": put["request_content_type"]},
                )
            )[0]
        )
    for update in run["updates"]:
        envelope = dict(update["envelope"], id=workflow_id)
        if update["content_type"] and "form" in update["content_type"]:
            body, headers = urlencode(envelope).encode(), {"Content-Type": update["content_type"]}
        else:
            body, headers = json.dumps(envelope).encode(), {}
        statuses.append(send(Request("POST", "/update_workflow_status", body, headers))[0])
    return workflow_id, statuses


def tower_sequence(folder: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, body) for each recorded request of a Tower run folder, in order."""
    for path in sorted((DATA / "tower" / folder).glob("*.json")):
        if "response" in path.name:
            continue
        name = path.name
        if "create" in name:
            kind = "create"
        elif "begin" in name or "workflow_started" in name:
            kind = "begin"
        elif "heartbeat" in name:
            kind = "heartbeat"
        elif (
            "complete_request" in name or "workflow_succeeded" in name or "workflow_failed" in name
        ):
            kind = "complete"
        else:
            kind = "progress"
        yield kind, json.loads(path.read_text())


def replay_tower(
    folder: str,
    send: Sender,
    prefix: str = "",
    workflow_id: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[str, list[int]]:
    """Replay a Tower run; without a create request in the folder, ``workflow_id`` (or a fixed
    id) is used directly, as after a hub database reset."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    query = query or {}
    statuses: list[int] = []
    current = workflow_id or "ReplayRun0001"
    for kind, body in tower_sequence(folder):
        raw = json.dumps(body).encode()
        if kind == "create":
            status, payload = send(Request("POST", f"{prefix}/trace/create", raw, headers, query))
            current = payload["workflowId"]
        else:
            status, _ = send(
                Request("PUT", f"{prefix}/trace/{current}/{kind}", raw, headers, query)
            )
        statuses.append(status)
    return current, statuses
