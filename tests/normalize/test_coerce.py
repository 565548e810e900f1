"""Defensive conversions, without an app."""

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panoptes.normalize import coerce
from tests.normalize.test_snakemake import json_values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-11-05T10:15+01:00", datetime(2024, 11, 5, 9, 15, tzinfo=UTC)),
        ("2024-11-05T10:15:30+01:00", datetime(2024, 11, 5, 9, 15, 30, tzinfo=UTC)),
        ("2024-11-05T10:15:30.123+01:00", datetime(2024, 11, 5, 9, 15, 30, 123000, tzinfo=UTC)),
        (
            "2024-11-05T10:15:30.123456789+01:00",
            datetime(2024, 11, 5, 9, 15, 30, 123456, tzinfo=UTC),
        ),
        ("2024-10-27T17:47:00Z", datetime(2024, 10, 27, 17, 47, tzinfo=UTC)),
        (" 2024-10-27T17:47:00.5z ", datetime(2024, 10, 27, 17, 47, 0, 500000, tzinfo=UTC)),
        ("2024-10-27T17:47:00.123456789z", datetime(2024, 10, 27, 17, 47, 0, 123456, tzinfo=UTC)),
        ("2024-10-27T17:47:00", datetime(2024, 10, 27, 17, 47, tzinfo=UTC)),
        ("not a date", None),
        (1730798130, None),
    ],
)
def test_tower_dates_of_every_precision(raw, expected):
    assert coerce.iso_datetime(raw) == expected


def test_numbers_never_raise():
    assert coerce.integer("12") == 12
    assert coerce.integer(3.0) == 3
    assert coerce.integer(3.5) is None
    assert coerce.integer(True) is None
    assert coerce.integer(10**30) is None
    assert coerce.integer([1]) is None
    assert coerce.number(float("nan")) is None
    assert coerce.epoch_seconds(1795301541.87) == datetime.fromtimestamp(1795301541.87, UTC)
    assert coerce.epoch_seconds(-5) is None
    assert coerce.epoch_seconds(1e20) is None


def test_text_drops_nul_and_caps_length():
    assert coerce.text("a\x00b") == "ab"
    assert coerce.text("x" * 10, limit=4) == "xxxx"
    assert coerce.text({"a": 1}) is None


def test_json_safe_makes_any_value_storable():
    value = {"a": "x\x00", "b": [float("inf"), 10**40], "c": {"d": True}}
    assert coerce.json_safe(value) == {"a": "x", "b": [None, str(10**40)], "c": {"d": True}}


def test_json_text_keeps_clean_values_and_serialises_them_once():
    value = {"name": "ok", "numbers": [1, 2.5, -3], "nested": {"flag": True, "none": None}}
    safe, text = coerce.json_text(value)
    assert safe is value
    assert json.loads(text) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": "x\x00y"}, {"a": "xy"}),
        ({"a": [float("nan"), float("-inf")]}, {"a": [None, None]}),
        ({"a": 10**40}, {"a": str(10**40)}),
        ({"a": "1234567890123456789012"}, {"a": "1234567890123456789012"}),  # only looks big
        ({(1, 2): "tuple key"}, {"(1, 2)": "tuple key"}),
    ],
)
def test_json_text_walks_values_that_need_it(value, expected):
    safe, text = coerce.json_text(value)
    assert safe == expected == coerce.json_safe(value)
    assert json.loads(text) == expected


def test_json_safe_returns_clean_documents_as_they_are_and_still_cuts_deep_ones():
    clean = {"processes": [{"name": "align", "succeeded": 3}], "pending": 0}
    assert coerce.json_safe(clean) is clean
    deep: list = []
    innermost = deep
    for _ in range(70):
        innermost.append([])
        innermost = innermost[0]
    cut = coerce.json_safe(deep)
    assert cut is not deep and not coerce.nests_deeper_than(cut, coerce.MAX_JSON_DEPTH + 1)
    assert coerce.nests_deeper_than(deep, coerce.MAX_JSON_DEPTH)


def test_parse_received_keeps_the_text_of_bodies_that_need_no_change():
    raw = '{"b": 1,  "a": "naïve", "pcpu": 98.5, "hash": "59/e06cf8", "big": 1e300}'.encode()
    value, text = coerce.parse_received(raw)
    assert text == raw.decode()
    assert json.loads(text) == value == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": [-Infinity]}',
        b'{"a": 1e400}',
        b'{"a": "x\\u0000"}',
        b'{"a": 12345678901234567890}',
        '\ufeff{"a": 1}'.encode(),
        '{"a": "é"}'.encode("utf-16"),
    ],
)
def test_parse_received_leaves_bodies_that_need_a_change_to_json_text(raw):
    value, text = coerce.parse_received(raw)
    assert text is None
    assert json.dumps(value) == json.dumps(json.loads(raw))
    safe, stored = coerce.json_text(value)
    assert json.loads(stored) == safe == coerce.json_safe(value)


def test_parse_received_raises_what_json_loads_raises():
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        coerce.parse_received(b'{"a": ')


def test_lone_surrogates_become_replacement_characters_and_pairs_stay_whole():
    assert coerce.text("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert coerce.json_safe({"k\ud800": ["v\udc00", "😀"]}) == {"k\ufffd": ["v\ufffd", "😀"]}
    safe, stored = coerce.json_text({"emoji": "😀", "lone": "\ud83d"})
    assert safe == {"emoji": "😀", "lone": "\ufffd"}
    assert json.loads(stored) == safe
    value, text = coerce.parse_received('{"emoji": "😀"}'.encode())
    assert text == '{"emoji": "😀"}' and value == {"emoji": "😀"}
    assert coerce.parse_received(b'{"emoji": "\\ud83d\\ude00"}') == ({"emoji": "😀"}, None)


# Text with lone surrogates and control characters, which the default text strategy leaves out.
odd_text = st.text(st.characters(categories=["Cs", "Cc", "Ll", "So"]), max_size=6)


@settings(max_examples=400, deadline=None)
@given(value=json_values, odd=odd_text, ascii_only=st.booleans())
def test_a_body_stored_as_received_is_exactly_what_json_text_would_store(value, odd, ascii_only):
    body = {"v": value, odd: [odd]}
    raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    parsed, text = coerce.parse_received(raw)
    assert json.dumps(parsed) == json.dumps(json.loads(raw))  # read as Python reads it, types too
    safe, stored = coerce.json_text(parsed)
    if text is not None:
        assert json.loads(text) == json.loads(stored) == safe
        assert json.dumps(safe) == json.dumps(parsed)  # nothing needed changing
    else:
        json.loads(stored)  # the fallback is storable JSON all the same
    # Either way nothing UTF-8 (or PostgreSQL) cannot hold is left: no lone surrogate, no NUL.
    held = json.dumps(safe, ensure_ascii=False)
    held.encode("utf-8")
    assert "\x00" not in held and "\\u0000" not in stored


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 18446744073709551616, "b": -9223372036854775809, "c": 123456789012345678901}',
        '{"a": 9223372036854775807, "b": 1.0, "c": -0.0, "d": 1e-320, "e": 0.1}',
        '{"a": NaN, "b": [Infinity, -Infinity], "c": 1e400}',
        '{"lone": "\\ud800", "pair": "\\ud83d\\ude00", "nul": "\\u0000"}',
        '\ufeff{"bom": 1}',
        "[1, 2] ",
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_loads_reads_json_exactly_as_python_does(text, as_bytes):
    given = text.encode() if as_bytes else text
    try:
        expected = json.loads(given)
    except ValueError as error:  # a BOM before a str: the same error, from json.loads
        with pytest.raises(ValueError, match=re.escape(str(error))):
            coerce.loads(given)
        return
    assert json.dumps(coerce.loads(given)) == json.dumps(expected)


def test_loads_raises_what_json_loads_raises():
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        coerce.loads('{"a": ')
    assert coerce.loads('{"a": "é"}'.encode("utf-16")) == {"a": "é"}


@settings(max_examples=400, deadline=None)
@given(value=json_values, odd=odd_text, ascii_only=st.booleans(), as_bytes=st.booleans())
def test_loads_agrees_with_json_loads_on_any_text(value, odd, ascii_only, as_bytes):
    text = json.dumps({"v": value, odd: [odd]}, ensure_ascii=ascii_only)
    given = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert json.dumps(coerce.loads(given)) == json.dumps(json.loads(given))


@settings(max_examples=400, deadline=None)
@given(value=json_values, odd=odd_text)
def test_dumps_writes_what_json_dumps_writes_of_a_storable_value(value, odd):
    safe = coerce.json_safe({"v": value, odd: [odd]})
    assert json.dumps(json.loads(coerce.dumps(safe))) == json.dumps(safe)
    # What orjson refuses is still written, by json.dumps.
    unusual = {1: 2**70, "lone": "\ud800"}
    assert coerce.dumps(unusual) == json.dumps(unusual)


@settings(max_examples=400, deadline=None)
@given(value=json_values, odd=odd_text)
def test_storable_text_stores_what_json_text_stores(value, odd):
    body = {"v": value, odd: [odd, 2**64, -(2**63)]}
    fast = coerce.storable_text(body)
    _, reference = coerce.json_text(body)
    # The same value (NaN compared as text); the texts may differ in how they escape.
    assert json.dumps(json.loads(fast)) == json.dumps(json.loads(reference))
    assert "\\u0000" not in fast and "\x00" not in fast
    fast.encode("utf-8")  # no lone surrogate left
