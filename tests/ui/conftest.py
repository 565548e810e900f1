"""Fixtures of the dashboard tests."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.replay import flask_sender

from .helpers import fill_both_engines


@pytest.fixture
def filled(client: FlaskClient) -> dict[str, str]:
    """The test hub with runs of both engines (ids by role, see ``fill_both_engines``)."""
    return fill_both_engines(flask_sender(client))


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    """An HTML page's text, after checking its status and content type."""
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)
