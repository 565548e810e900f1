"""Fixtures for the logger plugin's tests: recorded Snakemake records, a fake hub, handlers."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .fakehub import FakeHub

# Without the plugin, each test module skips itself (pytest.importorskip); this conftest
# stays importable. Where the tests are required (CI), a missing plugin is an error instead.
PLUGIN_MISSING = importlib.util.find_spec("snakemake_logger_plugin_panoptes") is None
if PLUGIN_MISSING and os.environ.get("PANOPTES_TEST_REQUIRE_SNAKEMAKE"):
    pytest.fail(
        "the logger plugin is not installed: pip install -e ./snakemake_logger_plugin",
        pytrace=False,
    )

if TYPE_CHECKING:
    from snakemake_logger_plugin_panoptes import LogHandler

DATA = Path(__file__).resolve().parent.parent / "data" / "snakemake"
RECORDS_START = 1_795_301_541.0  # an arbitrary epoch for the recorded relative times


def _revive(spec: dict[str, Any]) -> Any:
    """Turn a recorded extra attribute back into the live object Snakemake attaches."""
    from snakemake_interface_logger_plugins.common import LogEvent

    kind, value = spec["type"], spec["value"]
    if kind.endswith("LogEvent"):
        return LogEvent(value)
    if kind == "uuid.UUID":
        return uuid.UUID(value.removeprefix("UUID('").removesuffix("')"))
    if kind.endswith("ResourceList"):
        try:
            from snakemake.iocontainers import ResourceList
        except ImportError:  # snakemake not installed: a plain mapping keeps the names
            return {name: value["__list__"][i] for name, (i, _) in value["__names__"].items()}
        ordered = sorted(value["__names__"].items(), key=lambda item: item[1][0])
        return ResourceList(fromdict={name: value["__list__"][i] for name, (i, _) in ordered})
    if kind.endswith("Quietness"):
        try:
            from snakemake.settings.enums import Quietness
        except ImportError:
            return value
        return Quietness[value.split(".")[1].split(":")[0]]
    return value


def load_records(name: str, *, workdir: Path | None = None) -> list[logging.LogRecord]:
    """Rebuild the LogRecords of ``raw_records_<name>.jsonl`` as a plugin receives them.

    ``workdir`` replaces the recorded working directory (the plugin keeps its spool there).
    """
    records = []
    for line in (DATA / f"raw_records_{name}.jsonl").read_text().splitlines():
        raw = json.loads(line)
        record = logging.LogRecord(
            raw["name"], logging.getLevelName(raw["levelname"]), "", 0, raw["msg"], None, None
        )
        record.created = RECORDS_START + raw["t"]
        record.threadName = raw["thread_origin"]
        for attr, spec in raw["extras"].items():
            setattr(record, attr, _revive(spec))
        if workdir is not None and hasattr(record, "cwd"):
            record.cwd = str(workdir)
        records.append(record)
    return records


def make_record(msg: str, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    """A record like Snakemake's, with ``extra`` attributes (``event=LogEvent...``)."""
    record = logging.LogRecord("snakemake.logging", level, "", 0, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory: spool files land in tmp_path/.snakemake."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """A running fake hub speaking the batch protocol."""
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def hub_factory() -> Iterator[Callable[..., FakeHub]]:
    """Build fake hubs with knobs (``batch``, ``token``, ``fail_first``, ``delay``, ...)."""
    servers: list[FakeHub] = []

    def build(*, start: bool = True, **knobs: Any) -> FakeHub:
        server = FakeHub(**knobs)
        servers.append(server)
        if start:
            server.start()
        else:
            server.port = free_port()
        return server

    yield build
    for server in servers:
        server.stop()


def free_port() -> int:
    """A port nothing listens on (for 'connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_handler() -> Iterator[Callable[..., LogHandler]]:
    """Build handlers (closed at teardown). Settings default to quick batching."""
    from snakemake_interface_logger_plugins.tests import MockOutputSettings
    from snakemake_logger_plugin_panoptes import LogHandler, LogHandlerSettings

    handlers: list[LogHandler] = []

    def build(
        address: str | None, *, dryrun: bool = False, quiet: Any = None, **settings: Any
    ) -> LogHandler:
        common = MockOutputSettings()
        common.dryrun = dryrun
        common.quiet = quiet
        settings.setdefault("flush_interval", 0.05)
        handler = LogHandler(
            common_settings=common, settings=LogHandlerSettings(address=address, **settings)
        )
        handlers.append(handler)
        return handler

    yield build
    for handler in handlers:
        handler.close()


def feed(handler: LogHandler, records: list[logging.LogRecord]) -> None:
    """Emit records the way Snakemake's queue listener does."""
    for record in records:
        handler.handle(record)
