"""The logger handler and its sender against a real HTTP server on 127.0.0.1.

Records are the ones Snakemake 9.27.1 emitted in a real run (``raw_records_*.jsonl``), fed
to the handler as Snakemake's queue listener would.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "snakemake_logger_plugin_panoptes",
    reason="the logger plugin is not installed: pip install -e ./snakemake_logger_plugin",
)
from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.tests import TestLogHandlerBase
from snakemake_logger_plugin_panoptes import LogHandler, LogHandlerSettings
from snakemake_logger_plugin_panoptes.events import RecordConverter
from snakemake_logger_plugin_panoptes.spool import read_header, send_spool, spool_dir

from .conftest import feed, load_records, make_record
from .fakehub import FakeHub

MakeHandler = Callable[..., LogHandler]
HubFactory = Callable[..., FakeHub]

# What the hub must end up with for the recorded success run: every converted event, then
# the plugin's own verdict.
SUCCESS_LEVELS = [
    event["level"]
    for record in load_records("success")
    for event in RecordConverter("x").convert(record)
] + ["workflow_finished"]


def spool_files(workdir: Path) -> list[Path]:
    return sorted(spool_dir(workdir).glob("*.jsonl"))


def spooled_events(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if "panoptes_spool" not in line]


def batch_requests(hub: FakeHub) -> list[Any]:
    return hub.requests_to("/api/snakemake/events")


# -- the interface's own test suite ----------------------------------------------------------


class TestPanoptesHandlerContract(TestLogHandlerBase):
    """Snakemake's standard logger plugin tests, with a live fake hub behind the handler."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _live_hub(self, hub: FakeHub) -> Iterator[None]:
        self.hub = hub
        self.handlers: list[LogHandlerBase] = []
        yield
        for handler in self.handlers:
            handler.close()

    def get_log_handler_cls(self) -> type[LogHandlerBase]:
        return LogHandler

    def get_log_handler_settings(self) -> LogHandlerSettings:
        return LogHandlerSettings(address=self.hub.url, flush_interval=0.05)

    def _create_handler(self) -> LogHandlerBase:
        handler = super()._create_handler()
        self.handlers.append(handler)
        return handler

    def test_properties_of_a_monitoring_plugin(self) -> None:
        handler = self._create_handler()
        assert handler.has_filter is True
        assert handler.needs_rulegraph is True
        assert (handler.writes_to_stream, handler.writes_to_file) == (False, False)
        assert handler.has_formatter is False

    def test_synthetic_events_reach_the_hub(self) -> None:
        handler = self._create_handler()
        for event, extra in [
            (LogEvent.WORKFLOW_STARTED, {"snakefile_main": "Snakefile", "cmd": "snakemake"}),
            (LogEvent.JOB_INFO, {"jobid": 1, "rule_name": "a", "resources": {"mem_mb": 5}}),
            (LogEvent.JOB_FINISHED, {"job_id": 1}),
            (LogEvent.PROGRESS, {"done": 1, "total": 1}),
        ]:
            handler.emit(self._create_event_record(event, **extra))
        handler.close()
        assert self.hub.levels() == [
            "workflow_started", "job_info", "job_finished", "progress", "workflow_finished",
        ]  # fmt: skip


# -- delivery ---------------------------------------------------------------------------------


def test_success_run_is_delivered_in_batches(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    handler = make_handler(hub.url, workflow_id="my-run", name="nightly", batch_size=10)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()

    assert hub.levels("my-run") == SUCCESS_LEVELS
    final = hub.events("my-run")[-1]
    assert (final["success"], final["reason"], final["message"]) == (True, "success", None)
    create = hub.requests_to("/create_workflow")
    assert len(create) == 1
    assert create[0].query == {"workflow_id": "my-run", "name": "nightly"}
    batches = batch_requests(hub)
    assert all(len(request.json()["events"]) <= 10 for request in batches)
    assert len(batches) < len(SUCCESS_LEVELS) / 2
    assert all(request.json()["workflow_id"] == "my-run" for request in batches)
    ids = [event["event_id"] for event in hub.events("my-run")]
    assert len(set(ids)) == len(ids)
    assert all(event_id.startswith(handler.run_id + ":") for event_id in ids)
    assert spool_files(tmp_path) == []


def test_one_request_carries_many_events(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    handler = make_handler(hub.url, batch_size=1000, flush_interval=60)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    batches = batch_requests(hub)
    assert len(batches) == 1
    assert len(batches[0].json()["events"]) == len(SUCCESS_LEVELS)


def test_events_flow_during_the_run_not_only_at_close(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    handler = make_handler(hub.url, flush_interval=0.05)
    records = load_records("success", workdir=tmp_path)
    feed(handler, records[:12])
    assert hub.wait_for(lambda: "job_info" in hub.levels(), timeout=5)
    feed(handler, records[12:])
    handler.close()
    assert hub.levels() == SUCCESS_LEVELS


def test_retries_with_growing_backoff_on_500(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(fail_first=2, fail_status=503)
    handler = make_handler(hub.url)
    feed(handler, load_records("success", workdir=tmp_path))
    assert hub.wait_for(lambda: len(hub.levels()) >= len(SUCCESS_LEVELS) - 1, timeout=10)
    handler.close()

    attempts = batch_requests(hub)
    assert [request.status for request in attempts[:3]] == [503, 503, 200]
    first_gap = attempts[1].received - attempts[0].received
    second_gap = attempts[2].received - attempts[1].received
    assert 0.3 < first_gap < second_gap
    # The re-sent batch carried the same event ids: nothing is stored twice.
    assert hub.levels() == SUCCESS_LEVELS


def test_hub_down_then_up_receives_everything_in_order(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(start=False)
    handler = make_handler(hub.url)
    records = load_records("success", workdir=tmp_path)
    feed(handler, records[:20])
    time.sleep(0.3)  # a few refused connection attempts
    hub.start()
    feed(handler, records[20:])
    assert hub.wait_for(lambda: len(hub.levels()) == len(SUCCESS_LEVELS) - 1, timeout=10)
    handler.close()

    assert hub.levels() == SUCCESS_LEVELS
    err = capsys.readouterr().err
    assert err.count("the hub is not taking events") == 1
    assert "connection refused" in err
    assert "reachable again" in err


def test_hub_down_for_the_whole_run_spools_and_exits_quickly(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(start=False)
    handler = make_handler(hub.url, workflow_id="nightly", close_timeout=5)
    feed(handler, load_records("success", workdir=tmp_path))
    started = time.monotonic()
    handler.close()
    assert time.monotonic() - started < 1.5  # nothing listens: no point waiting 5 s

    [path] = spool_files(tmp_path)
    assert path.name == f"{handler.run_id}.jsonl"
    header = read_header(path)
    assert header is not None
    assert (header.address, header.requested_workflow_id) == (hub.url, "nightly")
    assert [event["level"] for event in spooled_events(path)] == SUCCESS_LEVELS
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{len(SUCCESS_LEVELS)} event(s) not delivered" in last_line
    hint = f"{sys.executable} -m panoptes_hub_client send-spool {path} --address {hub.url}"
    assert last_line.endswith(hint)


def test_close_is_bounded_and_nothing_is_lost(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(delay=1.5)
    handler = make_handler(hub.url, batch_size=20, close_timeout=0.5, flush_interval=60)
    feed(handler, load_records("success", workdir=tmp_path))
    started = time.monotonic()
    handler.close()
    assert time.monotonic() - started < 0.8

    [path] = spool_files(tmp_path)
    assert spooled_events(path)  # what the slow hub did not take in time
    hub.delay = 0
    send_spool(path, hub.url)
    assert not path.exists()
    # Everything arrived once, even the batch that was in flight when close() gave up.
    assert hub.wait_for(lambda: len(hub.levels()) == len(SUCCESS_LEVELS), timeout=5)
    assert sorted(hub.levels()) == sorted(SUCCESS_LEVELS)


def test_buffer_limit_spills_to_disk_and_keeps_order(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(start=False)
    handler = make_handler(hub.url, buffer_limit=10, batch_size=5)
    feed(handler, load_records("success", workdir=tmp_path))

    [path] = spool_files(tmp_path)  # spilled while the run goes on, not only at close
    assert len(spooled_events(path)) >= len(SUCCESS_LEVELS) - 1 - 10
    assert handler.sender is not None
    assert len(handler.sender._memory) <= 10

    hub.start()
    assert hub.wait_for(lambda: len(hub.levels()) == len(SUCCESS_LEVELS) - 1, timeout=10)
    handler.close()
    assert hub.levels() == SUCCESS_LEVELS
    assert spool_files(tmp_path) == []


def test_leftover_spool_is_sent_first_by_the_next_run(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(start=False)
    first = make_handler(hub.url, workflow_id="monday")
    feed(first, load_records("failure", workdir=tmp_path))
    first.close()
    [leftover] = spool_files(tmp_path)
    first_levels = [event["level"] for event in spooled_events(leftover)]

    hub.start()
    second = make_handler(hub.url.replace("http://", ""), workflow_id="tuesday")
    feed(second, load_records("success", workdir=tmp_path))
    second.close()

    assert hub.levels("monday") == first_levels
    assert hub.events("monday")[-1]["reason"] == "failure"
    assert hub.levels("tuesday") == SUCCESS_LEVELS
    workflows = [request.json()["workflow_id"] for request in batch_requests(hub)]
    assert workflows.index("monday") < workflows.index("tuesday")
    assert spool_files(tmp_path) == []
    assert f"sending {len(first_levels)} events left over" in capsys.readouterr().err


def test_bad_token_is_told_once_and_events_are_kept(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(token="s3cret")
    handler = make_handler(hub.url, token="wrong")
    feed(handler, load_records("success", workdir=tmp_path))
    time.sleep(0.2)
    feed(handler, load_records("failure", workdir=tmp_path))
    handler.close()

    err = capsys.readouterr().err
    assert err.count("refused the token") == 1
    assert "HTTP 401" in err
    assert "SNAKEMAKE_LOGGER_PANOPTES_TOKEN" in err
    assert len(hub.requests) == 1  # no hammering with a token that cannot work
    [path] = spool_files(tmp_path)
    assert len(spooled_events(path)) > len(SUCCESS_LEVELS)


def test_token_is_sent_as_bearer_on_every_request(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(token="s3cret")
    handler = make_handler(hub.url, token="s3cret")
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert hub.levels() == SUCCESS_LEVELS
    assert {request.headers.get("authorization") for request in hub.requests} == {"Bearer s3cret"}


def test_an_assigned_id_is_used_without_registering(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory()
    handler = make_handler(hub.url, assigned_id="Assigned123456", name="launched")
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert hub.requests_to("/create_workflow") == []
    assert hub.levels("Assigned123456") == SUCCESS_LEVELS
    assert hub.events("Assigned123456")[0]["name"] == "launched"


def test_token_setting_reads_the_environment_variable() -> None:
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

    plugin = LoggerPluginRegistry().get_plugin("panoptes")
    env = {info["name"]: info["env_var"] for info in plugin.get_settings_info()}
    assert env["token"] == "SNAKEMAKE_LOGGER_PANOPTES_TOKEN"
    assert [name for name, var in env.items() if var] == ["token"]


UPSTREAM_JOB_INFO_KEYS = {
    "level", "timestamp", "jobid", "name", "msg", "input", "output", "log", "wildcards",
    "is_checkpoint", "shellcmd", "threads", "priority", "reason", "resources",
}  # fmt: skip


def test_old_panoptes_gets_the_classic_protocol(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(batch=False)
    handler = make_handler(hub.url)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()

    assert batch_requests(hub) == []
    updates = hub.requests_to("/update_workflow_status")
    forms = [request.form() for request in updates]
    assert {form["id"] for form in forms} == {"wf1"}
    assert all(time.strptime(form["timestamp"]) for form in forms)  # time.asctime() format
    msgs = [json.loads(form["msg"]) for form in forms]
    assert msgs[0]["level"] == "info"
    assert msgs[0]["msg"].startswith("Workflow started: ") and msgs[0]["msg"].endswith("/Snakefile")
    assert {k: msgs[1][k] for k in ("level", "done", "total")} == {
        "level": "progress", "done": 0, "total": 8,
    }  # fmt: skip
    job_info = next(msg for msg in msgs if msg["level"] == "job_info")
    assert set(job_info) == UPSTREAM_JOB_INFO_KEYS
    assert msgs[-1]["level"] == "workflow_success"
    assert "rulegraph" not in [msg["level"] for msg in msgs]
    assert "one event per request" in capsys.readouterr().err


def test_batch_route_answering_html_falls_back_to_classic(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(batch=False, advertise_batch=True)
    handler = make_handler(hub.url)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert len(batch_requests(hub)) == 1  # answered 200 with an HTML page
    assert hub.levels()[-1] == "workflow_success"
    assert hub.levels().count("job_finished") == 8


def test_refused_event_does_not_block_the_others(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = hub_factory(reject_levels=("rulegraph",))
    handler = make_handler(hub.url, batch_size=50)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert hub.levels() == [level for level in SUCCESS_LEVELS if level != "rulegraph"]
    assert capsys.readouterr().err.count("refused 1 malformed event") == 1


def test_dry_run_sends_nothing(hub: FakeHub, make_handler: MakeHandler, tmp_path: Path) -> None:
    handler = make_handler(hub.url, dryrun=True)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert hub.requests == []
    assert handler.sender is None
    assert not (tmp_path / ".snakemake").exists()


def test_quiet_does_not_matter(hub: FakeHub) -> None:
    """Through Snakemake's own LoggerManager with ``--quiet all``: every event still arrives."""
    snakemake_logging = pytest.importorskip("snakemake.logging")
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import OutputSettings

    settings = OutputSettings(
        quiet={Quietness.ALL},
        log_handler_settings={"panoptes": LogHandlerSettings(address=hub.url, flush_interval=0.05)},
    )
    manager = snakemake_logging.LoggerManager(snakemake_logging.logger, settings)
    try:
        [handler] = manager.get_log_handlers()
        assert handler.filters == []  # Snakemake's DefaultFilter was not attached
        log = snakemake_logging.logger
        log.info("Workflow has started!", extra={"event": LogEvent.WORKFLOW_STARTED})
        log.info(None, extra={"event": LogEvent.JOB_INFO, "jobid": 1, "rule_name": "a"})
        log.info("Shell command: true", extra={"event": LogEvent.SHELLCMD, "shellcmd": "true"})
        log.info(None, extra={"event": LogEvent.JOB_FINISHED, "job_id": 1})
        log.info(None, extra={"event": LogEvent.PROGRESS, "done": 1, "total": 1})
    finally:
        manager.stop()
    assert hub.levels() == [
        "workflow_started", "job_info", "shellcmd", "job_finished", "progress",
        "workflow_finished",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "reason", "success"),
    [
        (["Nothing to be done (all requested files are present and up to date)."],
         "nothing_to_do", True),
        (["Terminating processes on user request, this might take some time."],
         "interrupted", False),
    ],
)  # fmt: skip
def test_final_outcome_is_reported(
    hub: FakeHub,
    make_handler: MakeHandler,
    tmp_path: Path,
    lines: list[str],
    reason: str,
    success: bool,
) -> None:
    handler = make_handler(hub.url)
    feed(handler, load_records("success", workdir=tmp_path)[:3])
    feed(handler, [make_record(line) for line in lines])
    handler.close()
    final = hub.events()[-1]
    assert (final["level"], final["reason"], final["success"]) == (
        "workflow_finished", reason, success,
    )  # fmt: skip


def test_failure_outcome_carries_the_error_text(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    handler = make_handler(hub.url)
    feed(handler, load_records("failure", workdir=tmp_path))
    handler.close()
    final = hub.events()[-1]
    assert (final["success"], final["reason"]) == (False, "failure")
    assert final["message"].startswith("WorkflowError:")


def test_emit_never_raises(
    hub: FakeHub, make_handler: MakeHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = make_handler(hub.url)
    failures: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failures.append)

    def broken(record: logging.LogRecord) -> list[dict[str, Any]]:
        raise RuntimeError("converter bug")

    monkeypatch.setattr(handler.converter, "convert", broken)
    record = make_record("x", event=LogEvent.PROGRESS, done=1, total=2)
    handler.emit(record)
    assert failures == [record]


def test_close_twice_sends_the_outcome_once(hub: FakeHub, make_handler: MakeHandler) -> None:
    handler = make_handler(hub.url)
    handler.emit(make_record("x", event=LogEvent.PROGRESS, done=1, total=1))
    handler.close()
    handler.close()
    assert hub.levels() == ["progress", "workflow_finished"]


def test_nothing_logged_means_no_traffic(hub: FakeHub, make_handler: MakeHandler) -> None:
    handler = make_handler(hub.url)  # e.g. `snakemake --list-rules --logger panoptes`
    handler.emit(make_record("Building DAG of jobs..."))
    handler.close()
    assert hub.requests == []


def test_unusable_address_is_reported_not_raised(
    make_handler: MakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = make_handler("ftp://example.org")
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert handler.sender is None


def test_jobs_of_a_successful_run_are_finished_even_if_snakemake_said_nothing(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    """A Snakemake that logs no JOB_FINISHED (``--quiet progress``): a successful run still
    ends with every job it started reported as finished."""
    handler = make_handler(hub.url)
    records = load_records("success", workdir=tmp_path)
    silent = [r for r in records if getattr(r, "event", None) not in ("job_finished", "progress")]
    feed(handler, silent)
    handler.close()
    finished = [event for event in hub.events() if event["level"] == "job_finished"]
    assert sorted(event["jobid"] for event in finished) == list(range(8))
    assert all(event["inferred"] for event in finished)
    assert hub.levels()[-1] == "workflow_finished"


def test_leftover_not_fully_delivered_stays_in_its_file(
    hub_factory: HubFactory, make_handler: MakeHandler, tmp_path: Path
) -> None:
    hub = hub_factory(start=False)
    first = make_handler(hub.url, workflow_id="monday")
    feed(first, load_records("success", workdir=tmp_path))
    first.close()
    [leftover] = spool_files(tmp_path)

    hub.start()
    hub.fail_first = 10_000  # the hub is up but failing: nothing can be delivered
    second = make_handler(hub.url, close_timeout=0.3)
    feed(second, load_records("success", workdir=tmp_path)[:5])
    second.close()
    assert leftover.exists()
    assert [event["level"] for event in spooled_events(leftover)] == SUCCESS_LEVELS
    assert len(spool_files(tmp_path)) == 2  # and the second run's own events


def test_a_leftover_the_hub_refuses_does_not_block_this_run(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path
) -> None:
    from snakemake_logger_plugin_panoptes.spool import SpoolHeader, write_spool

    stale = spool_dir(tmp_path) / "stale.jsonl"
    header = SpoolHeader(run_id="stale", address=hub.url, requested_workflow_id="bad id!")
    write_spool(stale, header, [{"event_id": "stale:1", "level": "progress", "timestamp": 1.0}])
    hub.refuse_workflow_ids = ("bad id!",)
    handler = make_handler(hub.url, workflow_id="today")
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    assert hub.levels("today") == SUCCESS_LEVELS
    assert stale.exists()
    assert len(spooled_events(stale)) == 1


def test_wrong_address_is_told_once_and_events_are_kept(
    hub: FakeHub, make_handler: MakeHandler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.not_a_hub = True
    handler = make_handler(hub.url)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    err = capsys.readouterr().err
    assert err.count("is this the address of a panoptes hub?") == 1
    [path] = spool_files(tmp_path)
    assert [event["level"] for event in spooled_events(path)] == SUCCESS_LEVELS


def test_the_spool_hint_names_the_token_option_when_the_hub_needs_one(
    hub_factory: HubFactory,
    make_handler: MakeHandler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = hub_factory(start=False)
    monkeypatch.setenv("SNAKEMAKE_LOGGER_PANOPTES_TOKEN", "s3cret")
    handler = make_handler(hub.url, token="s3cret", close_timeout=1)
    feed(handler, load_records("success", workdir=tmp_path))
    handler.close()
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.endswith(f'--address {hub.url} --token "$SNAKEMAKE_LOGGER_PANOPTES_TOKEN"')
    assert "s3cret" not in last_line
