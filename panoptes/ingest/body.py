"""Decoding request bodies the way real clients send them."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from flask import Request

from ..errors import ApiError
from ..normalize import coerce

# Anything deeper than what is stored whole is refused rather than silently cut when stored.
MAX_DEPTH = coerce.MAX_JSON_DEPTH


def json_object(request: Request, required: bool = True) -> dict[str, Any]:
    """The body parsed as a JSON object, whatever the Content-Type says.

    Nextflow before 25.08 escapes non-ASCII, later sends UTF-8; both parse from the raw bytes.
    """
    return json_object_with_text(request, required)[0]


def json_object_with_text(
    request: Request, required: bool = True
) -> tuple[dict[str, Any], str | None]:
    """``json_object`` and the body's own text if it can be stored as it is
    (``coerce.parse_received``)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise ApiError(400, "The request body is empty; a JSON object was expected.")
        return {}, None
    try:
        value, text = coerce.parse_received(raw)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if coerce.nests_deeper_than(value, MAX_DEPTH):
        raise ApiError(400, f"The request body nests deeper than {MAX_DEPTH} levels.")
    return value, text


def json_or_form(request: Request) -> dict[str, Any]:
    """A JSON object or form fields: Snakemake 7.32 sends raw JSON with no Content-Type,
    others send forms; try JSON first, as the protocol notes advise."""
    raw = request.get_data(cache=True)
    stripped = raw.lstrip()
    if stripped.startswith(b"{"):
        return json_object(request)
    if request.mimetype == "application/x-www-form-urlencoded":
        # What werkzeug's form parser does for this type, without its multi-dict and stream
        # wrappers (a tenth of the cost of recording an event, bench/PROFILES.md).
        fields: dict[str, Any] = {}
        for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            fields.setdefault(name, value)  # the first of repeated fields, as werkzeug does
        return fields
    if request.form:
        return request.form.to_dict()
    if stripped:
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(
                400, "The request body is neither a JSON object nor form fields."
            ) from None
    return {}
