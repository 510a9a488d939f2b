"""Strict JSON for event bodies (docs/ingest.md, step 7)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import BadRequest
from services.common.strict_json import MAX_DEPTH, depth
from services.common.strict_json import parse as parse_strict


def nested_arrays(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def nested_objects(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def refused(body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        parse_strict(body)
    assert raised.value.status == 400
    assert raised.value.code == "invalid_json"
    return raised.value


def test_an_object_body_parses_to_its_value():
    assert parse_strict(b'{"order": 42, "items": [1, 2.5, "x", null, true]}') == {
        "order": 42,
        "items": [1, 2.5, "x", None, True],
    }


@pytest.mark.parametrize(
    ("body", "value"),
    [(b"0", 0), (b"-1.5e3", -1500.0), (b'"text"', "text"), (b"true", True), (b"null", None)],
)
def test_scalars_at_the_top_level_are_accepted(body, value):
    assert parse_strict(body) == value


@pytest.mark.parametrize(
    "body",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"[NaN]",
        b'{"x": Infinity}',
        b'{"x": [1, -Infinity]}',
    ],
)
def test_nan_and_infinity_are_refused_anywhere(body):
    refused(body)


@pytest.mark.parametrize(
    "body",
    [b"{} {}", b"[1]]", b'{"a":1}x', b"1 2", b"null,", b'{"a":1}\x00', b"[] /* comment */"],
)
def test_trailing_data_is_refused(body):
    refused(body)


@pytest.mark.parametrize("body", [b'  {"a":1}', b'{"a":1}\n', b'\r\n\t {"a":1} \t\r\n', b" 7 "])
def test_json_whitespace_around_the_value_is_allowed(body):
    assert parse_strict(body) in ({"a": 1}, 7)


@pytest.mark.parametrize("body", [b"\x0c{}", b"{}\x0b", b"\xc2\xa0{}", b"\xef\xbb\xbf{}"])
def test_other_whitespace_and_a_byte_order_mark_are_refused(body):
    refused(body)


@pytest.mark.parametrize("body", [b"", b"   ", b"{", b"[1,]", b"{'a': 1}", b'{"a" 1}', b"01"])
def test_empty_or_malformed_bodies_are_refused(body):
    refused(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "caf\xe9"}',  # latin-1
        b'"\xff"',
        b'"\xed\xa0\x80"',  # an encoded surrogate is not UTF-8
        '{"x": 1}'.encode("utf-16"),
    ],
)
def test_bodies_that_are_not_utf8_are_refused(body):
    refused(body)


def test_utf8_text_is_decoded():
    assert parse_strict('{"name": "Zo\u00eb \U0001f600"}'.encode()) == {
        "name": "Zo\u00eb \U0001f600"
    }


@pytest.mark.parametrize("shape", [nested_arrays, nested_objects])
def test_nesting_of_exactly_the_limit_is_accepted(shape):
    assert MAX_DEPTH == 64
    assert depth(parse_strict(shape(64))) == 64


@pytest.mark.parametrize("shape", [nested_arrays, nested_objects])
def test_nesting_one_past_the_limit_is_refused(shape):
    assert "deeper than 64" in refused(shape(65)).message


def test_mixed_array_and_object_nesting_counts_every_level():
    body = b'{"a":[' * 32 + b"1" + b"]}" * 32  # 64 levels
    assert depth(parse_strict(body)) == 64
    refused(b"[" + body + b"]")


def test_depth_is_the_deepest_branch_not_the_first():
    shallow_then_deep = b"[[1], " + nested_arrays(64) + b"]"
    refused(shallow_then_deep)


@pytest.mark.parametrize(
    "body",
    [
        nested_arrays(100_000),
        b"[" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"a":[' * 50_000,
    ],
)
def test_hostile_nesting_is_a_bad_request_not_a_recursion_error(body):
    refused(body)


def test_many_brackets_that_do_not_nest_are_accepted():
    # More than 64 brackets, counted first, then the value walked: wide is not deep.
    wide = b"[" + b",".join([b"[]"] * 200) + b"]"
    in_strings = b'{"a": "' + b"[{" * 200 + b'", "b": [[1]]}'
    assert depth(parse_strict(wide)) == 2
    assert depth(parse_strict(in_strings)) == 3


def test_depth_of_scalars_is_zero_and_of_empty_containers_is_one():
    assert [depth(v) for v in (1, "s", None, [], {}, [1, 2], {"a": 1})] == [0, 0, 0, 1, 1, 1, 1]


def test_depth_is_computed_without_recursion():
    value: list = []
    for _ in range(100_000):
        value = [value]

    assert depth(value) > MAX_DEPTH


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(deadline=None)
@given(_JSON, st.booleans(), st.sampled_from([None, 2]))
def test_any_json_document_from_json_dumps_parses_back_equal(value, ensure_ascii, indent):
    body = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode()

    assert parse_strict(body) == value
