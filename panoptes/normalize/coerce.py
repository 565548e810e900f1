"""Defensive conversions from untrusted JSON values to the types the schema stores.

Every function returns ``None`` instead of raising: an odd value in one field must never cost
the rest of the payload.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

INT64_MAX = 2**63 - 1
# Real documents nest a handful of levels (Nextflow params, manifests); deeper is cut.
MAX_JSON_DEPTH = 64
INT32_MAX = 2**31 - 1
# Free texts (config, error reports) are kept whole up to the largest accepted body.
MAX_TEXT = 64 * 1024 * 1024
_EPOCH_MIN = 0.0
_EPOCH_MAX = 253402300799.0  # 9999-12-31


def text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A clean string, or None. NUL characters are dropped (PostgreSQL text cannot hold them)."""
    if value is None:
        return None
    if isinstance(value, str):
        result = value
    elif isinstance(value, bool | int | float):
        result = str(value)
    else:
        return None
    return _storable(result)[:limit]


# UTF-16 surrogates: a JSON escape without its pair ("\\ud800") parses to one, and neither
# UTF-8 nor PostgreSQL's JSON can hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(value: str) -> str:
    """``value`` without NUL characters and with lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii() and _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    return value


def integer(value: Any, maximum: int = INT64_MAX) -> int | None:
    """An int within +-maximum, from an int, an integral float or a numeric string."""
    if value.__class__ is int:  # the common case first: a JSON integer (bool is not int here)
        return value if -maximum <= value <= maximum else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int) or abs(value) > maximum:
        return None
    return value


def scaled(value: Any, factor: float) -> int | None:
    """``value * factor`` rounded to an int (unit conversions), or None when it is not a
    finite number in range."""
    base = number(value)
    if base is None:
        return None
    result = base * factor
    if not math.isfinite(result) or abs(result) > INT64_MAX:
        return None
    return round(result)


def number(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def epoch_seconds(value: Any) -> datetime | None:
    """A UTC datetime from a float epoch in seconds (Snakemake 7/8 ``timestamp``)."""
    seconds = number(value)
    if seconds is None or not _EPOCH_MIN < seconds < _EPOCH_MAX:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def epoch_millis(value: Any) -> datetime | None:
    """A UTC datetime from epoch milliseconds (Tower ``instant``)."""
    millis = number(value)
    return None if millis is None else epoch_seconds(millis / 1000.0)


def iso_datetime(value: Any) -> datetime | None:
    """A UTC datetime from ISO 8601 with any precision and offset (Tower dates).

    Dates without an offset are taken as UTC.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    parsed: datetime | None
    try:  # what Nextflow sends parses as it is (Python 3.11 reads "Z" and 9 fraction digits)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _lenient_iso_datetime(value)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _lenient_iso_datetime(value: str) -> datetime | None:
    """ISO 8601 with what ``datetime.fromisoformat`` refuses: spaces around it, a lower-case
    "z", more than 6 fraction digits before "z"."""
    candidate = value.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    if "." in candidate:
        head, _, tail = candidate.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        if digits > 6:
            candidate = head + "." + tail[:6] + tail[digits:]
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


def str_list(value: Any) -> list[str] | None:
    """A list of strings from a list (other items stringified) or a single string."""
    if value is None:
        return None
    if isinstance(value, str):
        return [text(value) or ""]
    if isinstance(value, list | tuple):
        return [item for item in (text(v) for v in value) if item is not None]
    return None


def mapping(value: Any) -> dict[str, Any] | None:
    """A dict with string keys, or None."""
    if isinstance(value, dict):
        return {str(key): item for key, item in value.items()}
    return None


# A number that may not fit in 64 bits has 19 digits or more: in JSON text with every digit
# made "0" (a C-speed translation; a regular expression scanning for digit runs cost as much
# as the serialisation), such a run is a plain substring. Strings of digits match too, which
# only costs the walk.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _has_long_number(text: bytes) -> bool:
    """Whether the text holds a run of 19 digits or more (perhaps a number beyond 64 bits)."""
    return _NINETEEN_DIGITS in text.translate(_DIGITS_AS_ZEROS)


def loads(text: str | bytes) -> Any:
    """``json.loads``, at orjson's speed (about three times Python's) where orjson reads the
    text the same way. orjson refuses what Python's parser takes beyond strict JSON (``NaN``,
    numbers beyond a double, lone surrogates, a byte-order mark, UTF-16) and reads integers
    beyond 64 bits as floats: such texts, and any with a long digit run, go to ``json.loads``,
    whose errors (``ValueError``) pass."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if not _has_long_number(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


class JsonText(str):
    """JSON text already made (a request body stored as it was received): ``dumps`` returns
    it as it is, so a JSON column stores it without serialising it again."""

    __slots__ = ()


def dumps(value: Any) -> str:
    """Compact JSON text (non-ASCII as it is), made by orjson; ``json.dumps`` for what orjson
    refuses (keys that are not strings, integers beyond 64 bits, lone surrogates). Non-finite
    numbers become null, as ``json_safe`` makes them. ``JsonText`` is returned as it is."""
    if value.__class__ is JsonText:
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(value)


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether dicts and lists nest more than ``limit`` levels (iteratively: no recursion;
    only containers are visited)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    push = stack.append
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if child.__class__ is dict or child.__class__ is list:  # decoded JSON: exact types
                push((child, depth + 1))
    return False


def _may_need_changes(text: bytes) -> bool:
    """Whether JSON text may hold what ``json_safe`` changes, other than non-finite numbers: a
    NUL escape, a surrogate escape (perhaps a lone one; ``json.dumps`` also writes characters
    beyond U+FFFF as a pair, which then costs the walk) or a number of 19 digits or more."""
    return b"\\u0000" in text or b"\\ud" in text or b"\\uD" in text or _has_long_number(text)


def _stored_as_is(value: Any, depth_checked: bool = False) -> str | None:
    """The JSON text of ``value`` if ``json_safe`` would not change it, else None.

    One serialisation at C speed (and a look at containers only, unless ``depth_checked``)
    instead of a walk of every value, which is rarely needed.
    """
    if not depth_checked and nests_deeper_than(value, MAX_JSON_DEPTH):
        return None
    try:
        serialised = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    # json.dumps escapes every non-ASCII character, so the text is ASCII.
    return None if _may_need_changes(serialised.encode("ascii")) else serialised


def parse_received(raw: bytes) -> tuple[Any, str | None]:
    """A request body parsed as JSON (``json.loads``' errors pass), and the body's own text if
    it can be stored as it is, else None (then store ``json_text`` of the value).

    The checks ``_stored_as_is`` makes on a serialisation, made on the bytes received, so that
    a body is not serialised again: a look at the bytes, then orjson, which takes only strict
    UTF-8 JSON with finite numbers. What it refuses goes to Python's parser, which notes
    non-finite numbers (``NaN``, ``1e400``). Any doubt (an escaped backslash before "u0000",
    a surrogate escape, a hex digest of 19 digits, an encoding other than UTF-8) only costs
    that serialisation.
    """
    needs_changes = _may_need_changes(raw)
    if not needs_changes:
        try:
            value = orjson.loads(raw)  # strict JSON: finite numbers, UTF-8, no BOM
        except orjson.JSONDecodeError:
            pass  # not necessarily invalid: Python's parser, below, decides
        else:
            return value, raw.decode("utf-8")
    finite = True

    def parse_float(literal: str) -> float:
        nonlocal finite
        value = float(literal)
        finite = finite and math.isfinite(value)
        return value

    def parse_constant(name: str) -> float:  # NaN, Infinity, -Infinity
        nonlocal finite
        finite = False
        return float(name)

    value = json.loads(raw, parse_float=parse_float, parse_constant=parse_constant)
    if not finite or needs_changes:
        return value, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return value, None
    return value, None if text.startswith("\ufeff") else text


def json_text(value: Any) -> tuple[Any, str]:
    """``json_safe(value)`` and its JSON text, for storing a whole request body: the text is
    stored as it is instead of being serialised again. Bodies are at most ``MAX_JSON_DEPTH``
    levels deep already (``ingest/body.py`` refuses deeper ones)."""
    serialised = _stored_as_is(value, depth_checked=True)
    if serialised is not None:
        return value, serialised
    safe = json_safe(value)
    return safe, dumps(safe)


def storable_text(value: Any) -> str:
    """``json_text(value)[1]`` (the JSON text of ``json_safe(value)``) at orjson's speed when
    nothing needs changing: orjson writes non-finite numbers as null, as ``json_safe`` does,
    and refuses integers beyond 64 bits, lone surrogates and keys that are not strings; what
    it refuses or writes with a NUL, a surrogate or a long digit run takes ``json_text``.
    For bodies parsed and depth-checked as a whole, one event at a time (the batch routes)."""
    try:
        serialised = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError included
        return json_text(value)[1]
    if _may_need_changes(serialised):
        return json_text(value)[1]
    return serialised.decode()


SafeJson = Callable[[Any], Any]


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON value that any database can store: no NULs, no non-finite numbers, integers
    beyond 64 bits as text, at most ``MAX_JSON_DEPTH`` levels. Documents that need no change
    (nearly all) are returned as they are, others as a changed copy."""
    if depth == 0 and isinstance(value, dict | list) and _stored_as_is(value) is not None:
        return value
    if depth > MAX_JSON_DEPTH:
        return None
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return {
            json_safe(str(key), depth + 1): json_safe(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        return str(value)
    return value
