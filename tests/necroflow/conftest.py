"""Fixtures for the necroflow integration's tests: a fake hub, a pipeline in a fresh directory."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.plugin.fakehub import FakeHub

# Where the tests are required (CI), a missing integration is an error, not a skip.
MISSING = [
    name
    for name in ("necroflow", "panoptes_necroflow", "panoptes_hub_client")
    if importlib.util.find_spec(name) is None
]
if MISSING and os.environ.get("PANOPTES_TEST_REQUIRE_NECROFLOW"):
    pytest.fail(
        f"not installed: {', '.join(MISSING)}: python -m pip install -e ./integrations/client "
        '-e "./integrations/necroflow[test]"',
        pytrace=False,
    )

SAMPLES = ["A", "B", "C"]
# make_reference once (shared), fetch_reads and align per sample.
CALLS = 1 + 2 * len(SAMPLES)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory: spool files land in tmp_path/.panoptes."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """A running fake hub with the event API."""
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def hub_factory() -> Iterator[Callable[..., FakeHub]]:
    """Build fake hubs with knobs (``token``, ``fail_first``, ...); ``start=False`` gives one
    whose port nothing listens on yet."""
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
