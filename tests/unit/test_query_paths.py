"""Paths into event bodies: the two spellings, what is refused, and how values resolve."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import BadRequest
from services.query import paths, schemas


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        ("a", ("a",)),
        ("a.b.0", ("a", "b", "0")),
        ("$.a.b", ("a", "b")),
        ("$.a[0]", ("a", "0")),
        ("$['x.y']", ("x.y",)),
        ('$["x.y"].z', ("x.y", "z")),
        ("$['it\\'s']", ("it's",)),
        ("$", ()),
        ("amount_usd", ("amount_usd",)),
        ("$.données", ("données",)),
    ],
)
def test_both_spellings_parse_to_segments(raw, segments):
    assert paths.parse(raw) == segments


def test_dotted_and_jsonpath_spellings_share_one_key():
    assert paths.key(paths.parse("a.b.0")) == paths.key(paths.parse("$.a.b[0]"))
    assert paths.key(paths.parse("a.b")) != paths.key(paths.parse("$['a.b']"))


@pytest.mark.parametrize(
    "raw",
    [
        "$..x",
        "$[*]",
        "$.a.*",
        "a..b",
        ".a",
        "a.",
        "a.*",
        "$.a[?(@.b>1)]",
        "$.a[0:2]",
        "$.a[0,1]",
        "$.a[-1]",
        "$a",
        "a[0]",
        "$['unterminated]",
        "",
        ".".join(["a"] * 10_000),
        "$" + ".a" * 10_000,
        "a" * 600,
        "a b",
    ],
)
def test_wildcards_filters_and_malformed_paths_are_a_400_naming_what_is_allowed(raw):
    with pytest.raises(BadRequest) as refused:
        paths.parse(raw, "field")
    assert refused.value.status == 400
    assert "field" in refused.value.message and "dotted path" in refused.value.message


@pytest.mark.parametrize("raw", [None, 3, ["a"], {"a": 1}, True])
def test_a_path_that_is_not_a_string_is_a_400(raw):
    with pytest.raises(BadRequest):
        paths.parse(raw, "sortBy")


def test_digit_segments_index_arrays_and_key_objects():
    assert paths.resolve({"a": [5, 6]}, ("a", "1")) == 6
    assert paths.resolve({"a": {"1": 7}}, ("a", "1")) == 7
    assert paths.is_missing(paths.resolve({"a": [5]}, ("a", "3")))
    assert paths.is_missing(paths.resolve({"a": 5}, ("a", "b")))
    assert paths.is_missing(paths.resolve({"a": [5]}, ("a", "x")))
    assert paths.resolve({"a": None}, ("a",)) is None
    assert paths.resolve(4, ()) == 4


path_like = st.text(alphabet=st.sampled_from(list("ab0$.[]'\"*\\ ?@:,9")), max_size=24)


@settings(max_examples=2000, deadline=None)
@given(raw=st.one_of(path_like, st.text(max_size=24)))
def test_the_documented_path_pattern_is_exactly_the_language_the_parser_accepts(raw):
    """openapi.yaml's pattern for paths (schemas.PATH) and paths.parse never disagree, so a
    schema-valid path is never refused and a refused one is never schema-valid."""
    try:
        paths.parse(raw)
        parsed = True
    except BadRequest:
        parsed = False
    assert bool(re.fullmatch(schemas.PATH["pattern"], raw)) == parsed, raw
