"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from . import apidoc, hubstate, metrics
from .apidoc import OPERATIONS, Answer
from .errors import ApiError
from .extensions import db

bp = Blueprint("ops", __name__)


class Health(TypedDict):
    status: str


class Ready(TypedDict):
    status: str
    database: str


class LogStatus(TypedDict):
    appended: int
    pending: int


@bp.get("/healthz")
@apidoc.operation(OPERATIONS, public=True, responses={200: Health})
def healthz() -> Response:
    """The process answers (nothing else is checked)."""
    return jsonify(Health(status="ok"))


@bp.get("/readyz")
@apidoc.operation(
    OPERATIONS, public=True, responses={200: Ready, 503: "the database is unreachable"}
)
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
    return jsonify(Ready(status="ready", database="ok"))


@bp.get("/api/log")
@apidoc.operation(apidoc.META, responses={200: LogStatus})
def log_status() -> Response:
    """How far the projector has applied the log: ``appended`` (the newest event's number) and
    ``pending`` (events stored but not yet visible in runs and jobs). Scripts that must read
    their own writes wait for ``pending`` to reach 0."""
    from .store import projector

    with db.engine.connect() as connection:
        return jsonify(
            LogStatus(
                appended=projector.log_head(connection),
                pending=projector.pending_events(connection),
            )
        )


@bp.get("/metrics")
@apidoc.operation(
    OPERATIONS, responses={200: Answer("Prometheus text format", "text/plain", {"type": "string"})}
)
def prometheus() -> Response:
    """Prometheus text format: events ingested, request latency, runs by status."""
    return metrics.scrape(current_app._get_current_object())  # type: ignore[attr-defined]
