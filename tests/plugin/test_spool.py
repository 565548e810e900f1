"""Spool files and ``send_spool()``, the function behind ``panoptes send-spool``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip(
    "snakemake_logger_plugin_panoptes",
    reason="the logger plugin is not installed: pip install -e ./snakemake_logger_plugin",
)
from snakemake_logger_plugin_panoptes.client import HubUnavailable
from snakemake_logger_plugin_panoptes.spool import (
    SpoolBusy,
    SpoolFile,
    SpoolHeader,
    find_spools,
    send_spool,
    spool_dir,
    write_spool,
)

from .fakehub import FakeHub

HubFactory = Callable[..., FakeHub]


def events(count: int, run: str = "run") -> list[dict]:
    return [
        {"event_id": f"{run}:{i}", "level": "progress", "timestamp": 1.0 + i, "done": i}
        for i in range(1, count + 1)
    ]


def make_spool(tmp_path: Path, address: str, count: int = 5, **header: str) -> Path:
    path = spool_dir(tmp_path) / "run.jsonl"
    write_spool(path, SpoolHeader(run_id="run", address=address, **header), events(count))
    return path


def test_send_spool_registers_and_delivers(hub: FakeHub, tmp_path: Path) -> None:
    path = make_spool(tmp_path, hub.url, requested_workflow_id="nightly")
    assert send_spool(path, hub.url) == 5
    assert not path.exists()
    assert hub.requests_to("/create_workflow")[0].query == {"workflow_id": "nightly"}
    assert [event["done"] for event in hub.events("nightly")] == [1, 2, 3, 4, 5]


def test_send_spool_reuses_the_known_workflow_id(hub: FakeHub, tmp_path: Path) -> None:
    path = make_spool(tmp_path, hub.url + "/", workflow_id="known")
    assert send_spool(path, hub.url, batch_size=2) == 5
    assert hub.requests_to("/create_workflow") == []
    assert len(hub.requests_to("/api/snakemake/events")) == 3
    assert len(hub.events("known")) == 5


def test_send_spool_to_another_hub_registers_anew(hub: FakeHub, tmp_path: Path) -> None:
    path = make_spool(tmp_path, "http://127.0.0.1:1", workflow_id="elsewhere", name="n")
    assert send_spool(path, hub.url) == 5
    assert hub.requests_to("/create_workflow")[0].query == {"name": "n"}
    assert hub.events("elsewhere") == []


def test_send_spool_keeps_what_a_failing_hub_did_not_take(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(fail_first=1)
    path = make_spool(tmp_path, hub.url, count=4, requested_workflow_id="w")
    with pytest.raises(HubUnavailable):
        send_spool(path, hub.url)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["workflow_id"] == "w"  # the retry continues the same workflow
    assert len(lines) == 5
    assert send_spool(path, hub.url) == 4
    assert len(hub.events("w")) == 4


def test_send_spool_speaks_classic_to_an_old_panoptes(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(batch=False)
    path = make_spool(tmp_path, hub.url, count=3)
    assert send_spool(path, hub.url) == 3
    assert len(hub.requests_to("/update_workflow_status")) == 3
    assert [event["done"] for event in hub.events("wf1")] == [1, 2, 3]


def test_send_spool_sends_the_bearer_token(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = hub_factory(token="t0k")
    path = make_spool(tmp_path, hub.url)
    assert send_spool(path, hub.url, token="t0k") == 5


def test_a_spool_in_use_is_not_sent(hub: FakeHub, tmp_path: Path) -> None:
    path = spool_dir(tmp_path) / "live.jsonl"
    live = SpoolFile.create(path, SpoolHeader(run_id="live", address=hub.url))
    try:
        live.append(events(2))
        with pytest.raises(SpoolBusy):
            send_spool(path, hub.url)
    finally:
        live.release()
    assert send_spool(path, hub.url) == 2


def test_update_lines_and_a_torn_last_line(hub: FakeHub, tmp_path: Path) -> None:
    path = spool_dir(tmp_path) / "crashed.jsonl"
    spool = SpoolFile.create(path, SpoolHeader(run_id="crashed", address=hub.url))
    spool.append(events(3))
    spool.note_workflow_id("from-update-line")
    spool.append(events(1, run="late"))
    spool.release()
    with path.open("ab") as handle:
        handle.write(b'{"event_id": "torn", "lev')  # the process died mid-write
    reopened = SpoolFile.open_existing(path)
    try:
        assert reopened.header.workflow_id == "from-update-line"
        assert reopened.count_events(reopened.events_start) == 4
    finally:
        reopened.release()
    assert send_spool(path, hub.url) == 4
    assert len(hub.events("from-update-line")) == 4


def test_not_a_spool_file(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="not a panoptes spool file"):
        send_spool(path, "http://127.0.0.1:1")


def test_find_spools_matches_the_address_loosely(tmp_path: Path) -> None:
    directory = spool_dir(tmp_path)
    for run, address in [
        ("a", "http://127.0.0.1:5000/"),
        ("b", "127.0.0.1:5000"),
        ("c", "http://127.0.0.1:6000"),
        ("mine", "http://127.0.0.1:5000"),
    ]:
        write_spool(directory / f"{run}.jsonl", SpoolHeader(run_id=run, address=address), [])
    (directory / "junk.jsonl").write_text("not json\n")
    found = find_spools(directory, "http://127.0.0.1:5000", exclude="mine")
    assert sorted(path.stem for path in found) == ["a", "b"]


def test_send_spool_falls_back_when_the_batch_route_is_missing(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(batch=False, advertise_batch=True)
    path = make_spool(tmp_path, hub.url, count=3)
    assert send_spool(path, hub.url) == 3
    assert len(hub.requests_to("/update_workflow_status")) == 3
