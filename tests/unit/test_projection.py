"""Projections: each format writes what the README says it writes."""

from __future__ import annotations

import pytest

from services.query import projection


@pytest.mark.parametrize(
    ("value", "fmt", "written"),
    [
        ("12.50", "number", 12.5),
        (3, "number", 3),
        (True, "number", 1),
        ("abc", "number", None),
        (2.5, "integer", 3),
        (-2.5, "integer", -3),
        (2.49, "integer", 2),
        ("7", "integer", 7),
        (0.257, "percent", "25.7%"),
        (1, "percent", "100%"),
        (0.5, "percent", "50%"),
        (-0.0001, "percent", "0%"),
        ("x", "percent", None),
        (42, "text", "42"),
        ("hi", "text", "hi"),
        (True, "text", "true"),
        ({"a": [1]}, "text", '{"a":[1]}'),
        (None, "text", None),
        (0, "datetime", "1970-01-01T00:00:00Z"),
        (1767225600.5, "datetime", "2026-01-01T00:00:00.500Z"),
        ("2026-01-02T04:04:05+01:00", "datetime", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05Z", "datetime", "2026-01-02T03:04:05Z"),
        ("yesterday", "datetime", None),
        (10**20, "datetime", None),
        ({"a": 1}, None, {"a": 1}),
    ],
)
def test_each_format_writes_what_is_documented(value, fmt, written):
    assert projection.render(value, fmt) == written


def test_the_chatblocks_example_projects_value_and_label():
    spec = {
        "fields": {
            "value": {"source": "value", "format": "number"},
            "label": {"literal": "Errors (1h)"},
        }
    }
    result = {"value": 7, "count": 3, "window": "1h", "op": "sum"}
    assert projection.apply(projection.parse(spec), result) == {"value": 7, "label": "Errors (1h)"}


def test_a_missing_path_gives_null():
    spec = projection.parse({"fields": {"x": {"source": "$.nope[0]", "format": "text"}}})
    assert projection.apply(spec, {"value": 1}) == {"x": None}
    assert projection.apply(spec, None) == {"x": None}
