"""The shared hub client's engine-neutral channel and spool headers, against the fake hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("panoptes_hub_client", reason="the hub client is not installed")

from panoptes_hub_client import (
    EventsChannel,
    HubClient,
    RouteMissing,
    SpoolHeader,
    channel_for,
    read_header,
    write_spool,
)
from panoptes_hub_client.channels import MAX_EVENTS_PER_REQUEST

from tests.plugin.fakehub import FakeHub


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    yield server
    server.stop()


def header(hub: FakeHub) -> SpoolHeader:
    return SpoolHeader(run_id="run-1", address=hub.url, channel="events", engine="cwl")


def test_more_events_than_one_request_takes_go_in_several(hub: FakeHub) -> None:
    count = MAX_EVENTS_PER_REQUEST + 5
    events = [{"event_id": f"e{i}", "type": "job_queued", "job_id": f"j{i}"} for i in range(count)]
    channel = EventsChannel()
    target = header(hub)
    with HubClient(hub.url) as client:
        channel.open_run(client, target)
        progress = channel.deliver(client, target, events)
    assert (progress.sent, progress.rejected) == (count, 0)
    sizes = [len(r.json()["events"]) for r in hub.requests_to("/api/events")]
    assert sizes == [MAX_EVENTS_PER_REQUEST, 5]
    assert {r.status for r in hub.requests_to("/api/events")} == {200}
    assert hub.engines == {"run-1": "cwl"}


def test_a_hub_without_the_route_is_told_apart(hub: FakeHub) -> None:
    hub.events_api = False
    with HubClient(hub.url) as client, pytest.raises(RouteMissing, match="no event API"):
        EventsChannel().deliver(client, header(hub), [{"event_id": "a", "type": "run_started"}])


def test_headers_name_their_channel_and_old_ones_are_snakemakes(tmp_path: Path) -> None:
    path = tmp_path / "new.jsonl"
    write_spool(path, SpoolHeader(run_id="r", address="h", channel="events", engine="cwl"), [])
    found = read_header(path)
    assert found is not None
    assert (found.channel, found.engine) == ("events", "cwl")
    channel = channel_for(found)
    assert isinstance(channel, EventsChannel)
    assert channel.engine == "cwl"

    legacy = tmp_path / "old.jsonl"
    legacy.write_text(json.dumps({"panoptes_spool": 1, "run_id": "r", "address": "h"}) + "\n")
    old = read_header(legacy)
    assert old is not None
    assert old.channel == "snakemake"
