"""Which values count in an aggregate, and exactly as what (docs/query.md "Which values count")."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from services.common import json_text
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
        ("0.1", Fraction(1, 10)),  # the decimal, not the double nearest it
        ("12345678901234567890123", Fraction(12345678901234567890123)),
        ("-12345678901234567890123.5", Fraction(-24691357802469135780247, 2)),
        ("9" * 308, Fraction(int("9" * 308))),  # just below 1e308
        ("1e-308", Fraction(1, 10**308)),
        ("0e999999999", Fraction(0)),  # zero, whatever its exponent
        ("-0.000", Fraction(0)),
        ("1" + "0" * 2000, None),  # 1e2000: too large
        ("1" + "0" * 300 + "e-290", Fraction(10**10)),  # trailing zeros are not significant
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
        "٣",  # an Arabic-Indic digit: ASCII digits only
        "1٣",
        "\uff11",  # a fullwidth digit
        "1e308",
        "-1e308",
        "1" * 309,
        "1e-309",
        "1e-99999999999999",
        "1e" + "9" * 5000,
        "0." + "1" * 1001,  # more than 1,000 significant digits
        10**308,
        -(10**400),
        float("nan"),
        float("inf"),
        5e-324,  # a double below 1e-308
        "12\n",
    ],
)
def test_everything_else_is_skipped(value):
    assert coercion.numeric(value) is None


def test_a_long_digit_string_is_refused_without_building_a_number():
    # 200,000 digits: int() would refuse past 4,300 and the regex must not backtrack.
    assert coercion.numeric("1" * 200_000 + "x") is None
    assert coercion.numeric("1" * 200_000) is None
    assert coercion.numeric("0." + "0" * 200_000 + "1") is None


def test_exact_values_render_as_json_numbers():
    assert coercion.to_json_number(Fraction(6)) == 6
    assert isinstance(coercion.to_json_number(Fraction(6)), int)
    assert coercion.to_json_number(Fraction(1, 4)) == 0.25
    assert coercion.to_json_number(Fraction(3, 10)) == 0.3  # shortest round-trip form
    assert coercion.to_json_number(None) is None
    assert coercion.decode(coercion.encode(Fraction(1, 10))) == Fraction(1, 10)


def test_an_integral_result_is_exact_however_long():
    big = Fraction(int("9" * 308)) * 1000
    assert coercion.to_json_number(big) == int("9" * 308) * 1000
    assert json_text.dumps({"v": coercion.to_json_number(big)}) == '{"v":' + "9" * 308 + "000}"


def test_beyond_the_double_range_a_result_has_17_significant_digits_in_exponent_form():
    huge = coercion.to_json_number(Fraction(10**400, 3))
    assert huge == json_text.RawNumber("3.3333333333333333e+399")
    tiny = coercion.to_json_number(Fraction(1, 3 * 10**400))
    assert tiny == json_text.RawNumber("3.3333333333333333e-401")
    written = json_text.dumps({"value": huge, "label": "x"})
    assert written == '{"value":3.3333333333333333e+399,"label":"x"}'
    assert json.loads(written)["label"] == "x"  # still JSON


def test_a_raw_number_cannot_be_forged_by_a_string_in_the_same_answer():
    text = json_text.dumps({"a": "\x000:0", "b": json_text.RawNumber("1e+400")})
    assert json.loads(text.replace("1e+400", "0"))["a"] == "\x000:0"


def test_several_raw_numbers_in_one_answer_keep_their_places():
    numbers = [json_text.RawNumber("1e+400"), 2, json_text.RawNumber("-3e+500")]
    assert json_text.dumps({"n": numbers, "s": "x"}) == '{"n":[1e+400,2,-3e+500],"s":"x"}'
