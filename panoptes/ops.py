"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import hubstate, metrics
from .errors import ApiError
from .extensions import db

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers (nothing else is checked)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers and takes a write (one tiny committed row, so a read-only or full
    database reads as not ready); a load balancer sends traffic only while this is 200."""
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError as error:
        db.session.rollback()
        raise ApiError(503, f"database unreachable: {type(error).__name__}", "not_ready") from None
    try:
        hubstate.prove_writable(db.engine)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or type(error).__name__)
        raise ApiError(503, f"database not writable: {reason}", "not_ready") from None
    return jsonify(status="ready", database="ok")


@bp.get("/api/log")
def log_status() -> Response:
    """How far the projector has applied the log: ``appended`` (the newest event's number) and
    ``pending`` (events stored but not yet visible in runs and jobs). Scripts that must read
    their own writes wait for ``pending`` to reach 0."""
    from .store import projector

    with db.engine.connect() as connection:
        return jsonify(
            appended=projector.log_head(connection), pending=projector.pending_events(connection)
        )


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text format: events ingested, request latency, runs by status."""
    return metrics.scrape(current_app._get_current_object())  # type: ignore[attr-defined]
