"""The one error body of the hub, and the app-level handlers that produce it.

Every 4xx/5xx answer, on every route, is::

    {"error": "<short code>", "message": "<what went wrong, for a person>", "status": <int>}

Nextflow prints ``message`` to the user; the other keys are for scripts.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from sqlalchemy import exc as sa
from werkzeug.exceptions import HTTPException, InternalServerError

# Blueprints that take events from pipelines: a client there must never be told 500 for a
# database that cannot take a write (Nextflow and Snakemake abort on it); 503 asks it to retry.
INGESTION_BLUEPRINTS = frozenset({"snakemake", "tower", "tower_api", "events"})
# Failures of the database itself rather than of the statement: unreachable, restarting, a
# broken connection, a read-only or full disk, an exhausted pool. SQLAlchemy's wrappers, and
# the drivers' own classes should one ever escape unwrapped. (Ingestion keeps events in the
# journal before it gets here: store/journal.py.)
_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.InternalError,
    sa.TimeoutError,
    sa.DisconnectionError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.InternalError,
)
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa.DBAPIError,
    sa.TimeoutError,
    sa.DisconnectionError,
    sqlite3.Error,
    psycopg.Error,
)


class ApiError(Exception):
    """Raise from a view to answer with the error body."""

    @classmethod
    def from_validation(cls, error: ValidationError) -> ApiError:
        """A 400 naming every field pydantic refused and why."""
        details = [
            {"field": ".".join(str(part) for part in item["loc"]), "problem": item["msg"]}
            for item in error.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{d['field'] or 'body'}: {d['problem']}" for d in details)
        return cls(400, f"Invalid request: {summary}", "invalid", details)

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _default_code(status)
        self.details = details
        self.retry_after = retry_after  # seconds, sent as Retry-After (429, 503)


def _default_code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        410: "gone",
        413: "too_large",
        415: "unsupported_media_type",
        422: "invalid",
        429: "too_many_requests",
        503: "unavailable",
    }.get(status, "server_error" if status >= 500 else "error")


def error_response(
    status: int, message: str, code: str | None = None, details: Any = None
) -> Response:
    """The error body as a response; the only place its shape is defined."""
    body: dict[str, Any] = {
        "error": code or _default_code(status),
        "message": message,
        "status": status,
    }
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def _refuse_nul_bytes() -> None:
    """No id, name or search term contains NUL, and PostgreSQL cannot even compare with one:
    refuse it in the path or the query string before any view looks it up."""
    # On the raw URL (the path arrives decoded, the query string encoded): parsing the query
    # string of every request only to look for one character cost more than the check.
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    if "\x00" in environ.get("PATH_INFO", "") or "%00" in query or "\x00" in query:
        raise ApiError(400, "The URL contains a NUL character.")


def register(app: Flask) -> None:
    """App-level handlers: blueprint handlers would miss routing errors such as 404 and 405."""
    app.before_request(_refuse_nul_bytes)

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        response = error_response(error.status, error.message, error.code, error.details)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, error.description or error.name)
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    from .store.journal import Unavailable

    @app.errorhandler(Unavailable)
    def _unavailable(error: Unavailable) -> Response:
        # Never 500: clients retry a 503 (Nextflow, our plugins) instead of aborting the run.
        response = error_response(503, f"The hub cannot store events now ({error}).", "unavailable")
        response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        app.logger.exception("unhandled error", exc_info=error)
        return error_response(500, InternalServerError.description)

    def _database_error(error: Exception) -> Response:
        """503 and Retry-After when the database itself cannot serve, and for any database
        error while taking events; elsewhere other database errors are bugs (500)."""
        invalidated = getattr(error, "connection_invalidated", False)
        if (
            isinstance(error, _UNAVAILABLE)
            or invalidated
            or request.blueprint in INGESTION_BLUEPRINTS
        ):
            app.logger.warning("database unavailable: %s", error)
            response = error_response(
                503,
                "The database cannot take this request right now; please retry shortly.",
                "database_unavailable",
            )
            response.headers["Retry-After"] = str(int(app.config["DATABASE_RETRY_AFTER_SECONDS"]))
            return response
        return _unexpected(error)

    for kind in _DATABASE_ERRORS:
        app.register_error_handler(kind, _database_error)

    @app.errorhandler(RecursionError)
    def _too_deep(error: RecursionError) -> Response:
        # Only input nested beyond any parser's depth gets this far.
        app.logger.warning("input nested too deeply: %s", error)
        return error_response(400, "The request nests too deeply to be read.")
