"""The hub's Snakemake routes, as a channel of the shared hub client.

Two protocols are spoken:

- ``batch``: ``POST /api/snakemake/events`` with many events per request, each carrying a
  stable ``event_id`` so the hub ignores re-sent ones (our hub announces it in
  ``GET /api/service-info`` as ``"features": ["batch"]``);
- ``classic``: the panoptes ``POST /update_workflow_status`` form, one event per request,
  with the message keys of the upstream 0.3.0 plugin, for an old panoptes server.

Either way the run is first registered with ``GET /create_workflow``, which gives the
workflow id. HTTP, retries and spooling are the shared client's (``panoptes_hub_client``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, ClassVar

from panoptes_hub_client.channels import Channel
from panoptes_hub_client.transport import (
    PAYLOAD_STATUSES,
    Delivery,
    HubAuthError,
    HubClient,
    HubError,
    HubRejected,
    HubUnavailable,
    RouteMissing,
    as_int,
    budget,
    deliver_split,
    json_body,
    normalise_address,
    reason,
)

if TYPE_CHECKING:
    from panoptes_hub_client.spool import SpoolHeader

    from .events import Event, JSONValue

__all__ = [
    "BatchRouteMissing",
    "HubAuthError",
    "HubClient",
    "HubError",
    "HubRejected",
    "HubUnavailable",
    "SnakemakeChannel",
    "classic_message",
    "normalise_address",
]

PROTOCOL_BATCH = "batch"
PROTOCOL_CLASSIC = "classic"
CHANNEL_NAME = "snakemake"

CREATE_PATH = "/create_workflow"
BATCH_PATH = "/api/snakemake/events"
CLASSIC_PATH = "/update_workflow_status"

try:
    _VERSION = version("snakemake-logger-plugin-panoptes")
except PackageNotFoundError:  # running from a source tree without installing
    _VERSION = "0"
USER_AGENT = f"snakemake-logger-plugin-panoptes/{_VERSION}"

# The batch route is the hub's route missing for this channel.
BatchRouteMissing = RouteMissing


@dataclass(frozen=True)
class BatchResult:
    """The hub's answer to a batch: events stored and events it already had."""

    accepted: int
    duplicates: int


def classic_message(event: Event) -> dict[str, JSONValue] | None:
    """Return the ``msg`` the upstream 0.3.0 plugin would send for ``event``, or None.

    Old panoptes servers understand ``info``, ``progress``, ``job_info``, ``job_finished``,
    ``job_error``, ``error`` and ``workflow_success``; the metadata events of our own
    protocol are translated into those or left out.
    """
    level = event.get("level")
    stamp = {"timestamp": event.get("timestamp")}
    if level == "workflow_started":
        return {"level": "info", "msg": f"Workflow started: {event.get('snakefile')}", **stamp}
    if level == "run_info":
        stats = event.get("stats")
        total = stats.get("total") if isinstance(stats, dict) else None
        return {"level": "progress", "done": 0, "total": total, **stamp}
    if level == "rulegraph":
        return None
    if level == "workflow_finished":
        # panoptes turns workflow_success into Done; a failure was already sent as `error`.
        if event.get("success"):
            return {"level": "workflow_success", **stamp}
        return None
    if level == "job_info":
        keys = (
            "jobid", "name", "msg", "input", "output", "log", "wildcards", "is_checkpoint",
            "shellcmd", "threads", "priority", "reason", "resources",
        )  # fmt: skip
        return {"level": level, **{k: event.get(k) for k in keys}, **stamp}
    return {k: v for k, v in event.items() if k != "event_id"}


def discover(client: HubClient, *, timeout: float | None = None) -> str:
    """Return the protocol to use: ``batch`` if the hub announces it, else ``classic``."""
    if PROTOCOL_BATCH in client.service_features(timeout=timeout):
        return PROTOCOL_BATCH
    return PROTOCOL_CLASSIC


def register(
    client: HubClient,
    *,
    workflow_id: str | None = None,
    name: str | None = None,
    timeout: float | None = None,
) -> str:
    """Create the workflow on the hub and return its id (as a string)."""
    params = {}
    if workflow_id:
        params["workflow_id"] = workflow_id
    if name:
        params["name"] = name
    response = client.request("GET", CREATE_PATH, params=params, timeout=timeout)
    where, status = f"GET {client.address}{CREATE_PATH}", response.status_code
    if status != 200:
        raise HubRejected(f"{where} answered {status}{reason(response)}", status=status)
    body = json_body(response)
    hub_id = body.get("id") if isinstance(body, dict) else None
    if hub_id is None or isinstance(hub_id, bool) or str(hub_id) == "":
        raise HubRejected(
            f"{where} answered without a workflow id: is this the address of a panoptes hub?",
            status=status,
        )
    return str(hub_id)


def send_batch(
    client: HubClient, workflow_id: str, events: Sequence[Event], *, timeout: float | None = None
) -> BatchResult:
    """Send events in one request to the batch route."""
    response = client.post_json(
        BATCH_PATH, {"workflow_id": workflow_id, "events": list(events)}, timeout=timeout
    )
    status = response.status_code
    where = f"POST {client.address}{BATCH_PATH}"
    if status in (404, 405):
        raise BatchRouteMissing(f"{where} answered {status}", status=status)
    if status >= 400:
        raise HubRejected(f"{where} answered {status}{reason(response)}", status=status)
    body = json_body(response)
    if not isinstance(body, dict) or "accepted" not in body:
        # An old panoptes answers 200 with its HTML "not found" page for unknown paths.
        raise BatchRouteMissing(f"{where} answered {status} without a batch result", status=status)
    return BatchResult(as_int(body.get("accepted")), as_int(body.get("duplicates")))


def send_classic(
    client: HubClient, workflow_id: str, event: Event, *, timeout: float | None = None
) -> None:
    """Send one event as a panoptes ``/update_workflow_status`` form (skipped if it has no
    classic equivalent)."""
    msg = classic_message(event)
    if msg is None:
        return
    when = event.get("timestamp")
    local = time.localtime(when) if isinstance(when, int | float) else time.localtime()
    form = {"msg": json.dumps(msg), "timestamp": time.asctime(local), "id": workflow_id}
    response = client.request("POST", CLASSIC_PATH, data=form, timeout=timeout)
    if response.status_code >= 400:
        raise HubRejected(
            f"POST {client.address}{CLASSIC_PATH} answered {response.status_code}"
            f"{reason(response)}",
            status=response.status_code,
        )


class SnakemakeChannel(Channel):
    """The batch route of our hub, or the classic one of an old panoptes."""

    name: ClassVar[str] = CHANNEL_NAME
    engine = "snakemake"
    user_agent = USER_AGENT
    token_hint = (
        "Set --logger-panoptes-token or SNAKEMAKE_LOGGER_PANOPTES_TOKEN to the hub's token."
    )
    settings_hint = "Check --logger-panoptes-address and --logger-panoptes-workflow-id."

    def __init__(self, on_registered: Callable[[str], None] | None = None) -> None:
        self.protocol = PROTOCOL_BATCH
        # Told the run's page on the hub once it is registered (the plugin prints it).
        self.on_registered = on_registered

    def connect(self, client: HubClient, *, timeout: float | None = None) -> str | None:
        """Ask the hub whether it takes batches."""
        self.protocol = discover(client, timeout=timeout)
        if self.protocol == PROTOCOL_CLASSIC:
            return (
                f"{client.address} does not offer the batch route (an older panoptes?): "
                "sending one event per request"
            )
        return None

    def open_run(
        self, client: HubClient, header: SpoolHeader, *, timeout: float | None = None
    ) -> None:
        """Register the workflow (``GET /create_workflow``) and keep its id."""
        header.workflow_id = register(
            client,
            workflow_id=header.requested_workflow_id,
            name=header.name,
            timeout=timeout,
        )
        if self.on_registered is not None and header.workflow_id:
            self.on_registered(f"{client.address.rstrip('/')}/workflow/{header.workflow_id}")

    def deliver(
        self,
        client: HubClient,
        header: SpoolHeader,
        events: Sequence[Event],
        *,
        deadline: float | None = None,
    ) -> Delivery:
        """Deliver in order; refused events are counted and skipped (see ``deliver_split``)."""
        workflow_id = header.workflow_id
        if workflow_id is None:
            raise HubRejected("the workflow is not registered on the hub")
        if self.protocol == PROTOCOL_BATCH:
            return deliver_split(
                lambda batch, timeout: _ignore(
                    send_batch(client, workflow_id, batch, timeout=timeout)
                ),
                events,
                deadline=deadline,
            )
        progress = Delivery()
        try:
            for event in events:
                try:
                    send_classic(client, workflow_id, event, timeout=budget(deadline))
                except HubRejected as exc:
                    if exc.status not in PAYLOAD_STATUSES:
                        raise
                    progress.rejected += 1
                else:
                    progress.sent += 1
        except HubError as exc:
            exc.progress = progress
            raise
        return progress

    def fall_back(self, exc: RouteMissing) -> str | None:
        """The batch route is gone: speak the classic protocol."""
        if self.protocol == PROTOCOL_CLASSIC:
            return None
        self.protocol = PROTOCOL_CLASSIC
        return f"the hub has no batch route ({exc}); sending one event per request"


def _ignore(_result: object) -> None:
    return None
