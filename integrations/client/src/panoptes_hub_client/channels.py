"""Channels: how the events of one kind of run reach the hub.

The sender and the spool move events without looking into them; a channel knows the route
they go to and how the run is named there. Two exist:

- ``events`` (:class:`EventsChannel`, here): the hub's engine-neutral ``POST /api/events``,
  used by any engine (necroflow's integration among them). The run's id is chosen by the
  client, so nothing has to be registered first.
- ``snakemake``: the Snakemake plugin's own routes, defined in that plugin and found
  through the ``panoptes_hub_client.channels`` entry point group, so ``send-spool`` can
  send a Snakemake spool file without this package knowing Snakemake.

A spool file records its channel's name (and engine) in its header: whoever sends it later
uses the same channel (:func:`channel_for`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

from .transport import (
    USER_AGENT,
    Delivery,
    Event,
    HubClient,
    HubError,
    HubRejected,
    RouteMissing,
    deliver_split,
    json_body,
    reason,
)

if TYPE_CHECKING:
    from .spool import SpoolHeader

ENTRY_POINT_GROUP = "panoptes_hub_client.channels"
EVENTS_PATH = "/api/events"
EVENTS_CHANNEL = "events"
# The wire contract of POST /api/events.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENGINE_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
MAX_EVENTS_PER_REQUEST = 10_000


class Channel:
    """The route of one kind of run. Subclasses override what differs; see the module doc.

    One instance serves one sender (or one ``send_spool`` call): it may remember what it
    learnt about the hub in :meth:`connect`.
    """

    name: ClassVar[str] = ""
    engine: str | None = None  # recorded in spool headers beside the channel's name
    user_agent: str = USER_AGENT
    # Told to the user when the hub refuses the token, or refuses the run outright.
    token_hint: str = "Pass the hub's access token."
    settings_hint: str = "Check the hub's address."

    def connect(self, client: HubClient, *, timeout: float | None = None) -> str | None:
        """Learn what the hub speaks (once per client); return a notice for the user, if any."""
        return None

    def open_run(
        self, client: HubClient, header: SpoolHeader, *, timeout: float | None = None
    ) -> None:
        """Make the hub ready for the run of ``header`` and set ``header.workflow_id``."""
        raise NotImplementedError

    def deliver(
        self,
        client: HubClient,
        header: SpoolHeader,
        events: Sequence[Event],
        *,
        deadline: float | None = None,
    ) -> Delivery:
        """Deliver ``events`` of the run in order (see :func:`transport.deliver_split`)."""
        raise NotImplementedError

    def fall_back(self, exc: RouteMissing) -> str | None:
        """The route is missing: switch to an older one and return a notice, or return None
        when there is nothing to fall back to (the events then wait in the spool)."""
        return None


class EventsChannel(Channel):
    """``POST /api/events``: engine-neutral events of a run whose id the client chose."""

    name: ClassVar[str] = EVENTS_CHANNEL

    def __init__(self, engine: str | None = None) -> None:
        self.engine = engine

    def open_run(
        self, client: HubClient, header: SpoolHeader, *, timeout: float | None = None
    ) -> None:
        """Nothing to register: the run's id on the hub is the client's own."""
        header.workflow_id = header.run_id

    def deliver(
        self,
        client: HubClient,
        header: SpoolHeader,
        events: Sequence[Event],
        *,
        deadline: float | None = None,
    ) -> Delivery:
        """Post the events in requests of at most the route's limit."""
        run_id = header.workflow_id or header.run_id
        engine = header.engine or self.engine or "unknown"
        progress = Delivery()
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            chunk = events[start : start + MAX_EVENTS_PER_REQUEST]
            try:
                done = deliver_split(
                    lambda batch, timeout: self._post(client, run_id, engine, batch, timeout),
                    chunk,
                    deadline=deadline,
                )
            except HubError as exc:
                exc.progress.sent += progress.sent
                exc.progress.rejected += progress.rejected
                raise
            progress.sent += done.sent
            progress.rejected += done.rejected
        return progress

    def _post(
        self,
        client: HubClient,
        run_id: str,
        engine: str,
        events: list[Event],
        timeout: float | None,
    ) -> None:
        payload = {"run_id": run_id, "engine": engine, "events": events}
        response = client.post_json(EVENTS_PATH, payload, timeout=timeout)
        status = response.status_code
        where = f"POST {client.address}{EVENTS_PATH}"
        if status in (404, 405):
            raise RouteMissing(
                f"{where} answered {status}: this hub has no event API (an older panoptes?)",
                status=status,
            )
        if status >= 400:
            raise HubRejected(f"{where} answered {status}{reason(response)}", status=status)
        body = json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("accepted"), int):
            raise HubRejected(
                f"{where} answered {status} without a result: is this a panoptes hub?",
                status=status,
            )


def channel_for(header: SpoolHeader) -> Channel:
    """The channel that sends the events of a spool file with this header.

    Raises ``ValueError`` when no installed package provides it.
    """
    if header.channel == EVENTS_CHANNEL:
        return EventsChannel(header.engine)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == header.channel:
            factory = entry.load()
            channel = factory()
            if isinstance(channel, Channel):
                return channel
    raise ValueError(
        f"no installed integration sends {header.channel!r} spool files "
        "(install the one that wrote it, e.g. ./snakemake_logger_plugin)"
    )
