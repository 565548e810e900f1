"""The launcher's dashboard pages (placeholder until the pages are written)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("launch_ui", __name__)
