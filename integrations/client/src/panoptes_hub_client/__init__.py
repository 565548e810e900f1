"""Send a workflow engine's events to a panoptes hub without ever slowing or failing the run.

Shared by the engine integrations (the Snakemake logger plugin, the necroflow integration):
:class:`Sender` batches events on a background thread, retries with bounded delays and
keeps what the hub never took in a spool file (``spool.py``) that the next run, or
``panoptes send-spool``, delivers. A :class:`Channel` says where the events go;
:class:`EventsChannel` speaks the hub's engine-neutral ``POST /api/events``.
"""

from .channels import Channel, EventsChannel, channel_for
from .sender import CloseReport, Notifier, Sender
from .spool import SpoolBusy, SpoolHeader, find_spools, read_header, send_spool, write_spool
from .transport import (
    Delivery,
    Event,
    HubAuthError,
    HubClient,
    HubError,
    HubRejected,
    HubUnavailable,
    RouteMissing,
    normalise_address,
)

__all__ = [
    "Channel",
    "CloseReport",
    "Delivery",
    "Event",
    "EventsChannel",
    "HubAuthError",
    "HubClient",
    "HubError",
    "HubRejected",
    "HubUnavailable",
    "Notifier",
    "RouteMissing",
    "Sender",
    "SpoolBusy",
    "SpoolHeader",
    "channel_for",
    "find_spools",
    "normalise_address",
    "read_header",
    "send_spool",
    "write_spool",
]
