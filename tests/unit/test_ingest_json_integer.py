"""JSON Schema's integer, which openapi.yaml promises for `retention` and `graceSeconds`."""

from __future__ import annotations

import pytest

from services.ingest.sources import json_integer


@pytest.mark.parametrize(("value", "expected"), [(8572, 8572), (8572.0, 8572), (0.0, 0), (-3, -3)])
def test_integers_and_integral_numbers_are_integers(value, expected):
    assert json_integer(value) == expected


@pytest.mark.parametrize("value", [True, False, 1.5, "8572", None, [], {}])
def test_anything_else_is_not(value):
    assert json_integer(value) is None
