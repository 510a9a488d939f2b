"""Which values count in an aggregate, and as what number (docs/query.md "Which values count").
Pure.

A value counts when it is a JSON number, a boolean (1/0) or a string that is a decimal in ASCII
digits, and its magnitude is zero or between ``1e-308`` and ``1e308`` (the range of a double)
with at most ``MAX_DIGITS`` significant digits. Everything else is skipped: null, missing, NaN,
larger and smaller magnitudes, other strings, objects and arrays.

Values are exact ``Fraction``s, parsed from their decimal text (never through a float), so a sum
folded bucket by bucket equals the sum of the events one by one: rollups are never an
approximation. The bounds keep every sum of up to millions of values a few thousand digits long,
cheap to add and storable as text (Python refuses ``str(int)`` past 4,300 digits).
"""

from __future__ import annotations

import decimal
import math
import re
from fractions import Fraction
from typing import Any

from services.common.json_text import RawNumber

# ^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$ spelled without its ambiguity (in
# ``[0-9]+\.?[0-9]*`` two digit runs can split a long number n ways, and a failing match then
# backtracks quadratically), ASCII digits only (``\d`` would take "٣" as 3).
DECIMAL = re.compile(r"(-?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]+))?")
MAX_DIGITS = 1000  # significant digits of one value
LOWEST_EXPONENT, HIGHEST_EXPONENT = -308, 307  # 1e-308 <= |value| < 1e308
_HUGE_EXPONENT_DIGITS = 7  # an exponent this long is far outside the range whatever the mantissa


def numeric(value: Any) -> Fraction | None:
    """The number ``value`` counts as, or None when it is skipped."""
    if isinstance(value, bool):
        return Fraction(int(value))
    if isinstance(value, int):
        return Fraction(value) if -(10**308) < value < 10**308 else None
    if isinstance(value, float):
        if not math.isfinite(value) or not (value == 0 or 1e-308 <= abs(value) < 1e308):
            return None
        return Fraction(value)
    if isinstance(value, RawNumber):
        return parse_decimal(value.text)
    if isinstance(value, str):
        return parse_decimal(value)
    return None


def parse_decimal(text: str) -> Fraction | None:
    """A decimal string's exact value, or None when it is not one or falls outside the bounds.
    Costs time linear in the text: nothing is built before the bounds are checked."""
    match = DECIMAL.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, bare_fraction, exponent_text = match.groups()
    fraction = bare_fraction if bare_fraction is not None else (fraction or "")
    digits = (whole or "") + fraction
    significant = digits.lstrip("0")
    if not significant:
        return Fraction(0)  # zero, whatever its exponent
    stripped = significant.rstrip("0")
    if len(stripped) > MAX_DIGITS:
        return None
    exponent = 0
    if exponent_text:
        magnitude = exponent_text.lstrip("+-").lstrip("0")
        if len(magnitude) >= _HUGE_EXPONENT_DIGITS:
            return None
        exponent = int(exponent_text)
    # value = stripped * 10^scale, and its leading digit sits at 10^leading
    scale = exponent - len(fraction) + (len(significant) - len(stripped))
    leading = scale + len(stripped) - 1
    if not LOWEST_EXPONENT <= leading <= HIGHEST_EXPONENT:
        return None
    number = Fraction(int(stripped)) * Fraction(10) ** scale
    return -number if sign else number


def to_json_number(value: Fraction | None) -> int | float | RawNumber | None:
    """An exact value as a JSON number: an integer when it is one, else the nearest double in
    its shortest round-trip form, or 17 significant digits in exponent form beyond the range of
    a double (too large for one, or so small it would round to zero)."""
    if value is None:
        return None
    if value.denominator == 1:
        return int(value)
    try:
        nearest = float(value)
    except OverflowError:
        nearest = math.inf
    if math.isfinite(nearest) and nearest != 0:
        return nearest
    with decimal.localcontext(decimal.Context(prec=17, Emax=10**9, Emin=-(10**9))):
        exact = decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)
    return RawNumber(f"{exact:.16e}")


def encode(value: Fraction) -> str:
    """Storable exact form: ``"n"`` or ``"n/d"``."""
    return str(value)


def decode(text: str) -> Fraction:
    return Fraction(text)
