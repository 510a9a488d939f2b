"""Which values count in an aggregate, and exactly as what (README "query")."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from services.query import coercion


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (3, Fraction(3)),
        (-2.5, Fraction(-5, 2)),
        (True, Fraction(1)),
        (False, Fraction(0)),
        ("12", Fraction(12)),
        ("-0.5", Fraction(-1, 2)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("1e3", Fraction(1000)),
        ("2.5E-1", Fraction(1, 4)),
        (10**30, Fraction(10**30)),
        (0.1, Fraction(0.1)),
    ],
)
def test_numbers_booleans_and_finite_decimal_strings_count(value, number):
    assert coercion.numeric(value) == number


@pytest.mark.parametrize(
    "value",
    [
        None,
        "abc",
        "",
        "1,5",
        "0x10",
        "1e400",
        "NaN",
        "inf",
        " 1",
        "1 ",
        "+1",
        "--1",
        {},
        [],
        [1],
        {"a": 1},
        "1e",
        ".",
    ],
)
def test_everything_else_is_skipped(value):
    assert coercion.numeric(value) is None


def test_a_long_digit_string_is_checked_in_linear_time():
    hostile = "1" * 200_000 + "x"
    started = time.perf_counter()
    assert coercion.numeric(hostile) is None
    assert time.perf_counter() - started < 1.0


def test_exact_values_render_as_json_numbers():
    assert coercion.to_json_number(Fraction(6)) == 6
    assert isinstance(coercion.to_json_number(Fraction(6)), int)
    assert coercion.to_json_number(Fraction(1, 4)) == 0.25
    assert coercion.to_json_number(Fraction(10**400, 3)) is None  # beyond a double: null
    assert coercion.decode(coercion.encode(Fraction(0.1))) == Fraction(0.1)
