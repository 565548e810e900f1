"""Fixtures of the launcher tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.conftest import _empty_tables


@pytest.fixture
def app_factory(app_factory: Callable[..., Flask], database_url: str) -> Callable[..., Flask]:
    """Hubs with settings of their own, on this test's database, emptied first (under
    ``--backend postgresql`` the suite shares one database)."""
    emptied = False

    def make(**settings: Any) -> Flask:
        nonlocal emptied
        app = app_factory(**settings)
        if not emptied and database_url.startswith("postgresql"):
            _empty_tables(app)
            emptied = True
        return app

    return make
