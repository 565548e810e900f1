"""The dashboard pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("ui", __name__)


@bp.get("/")
def index() -> str:
    """All runs."""
    return render_template("index.html")


@bp.get("/workflow/<workflow_id>")
def workflow(workflow_id: str) -> str:
    """One run (Tower's watchUrl points here)."""
    return render_template("workflow.html", workflow_id=workflow_id)
