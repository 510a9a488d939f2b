"""Which values count in an aggregate, and as what number (README "query"). Pure.

Numbers, booleans (1/0) and strings that are finite decimals count; null, missing, NaN, other
strings, objects and arrays are skipped. Values are exact ``Fraction``s (every float is a dyadic
rational), so a sum folded bucket by bucket equals the sum of the events one by one: rollups are
never an approximation.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

# the README's ``^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`` spelled without its ambiguity: in
# ``\d+\.?\d*`` the two digit runs can split a long number n ways, and a failing match then
# backtracks quadratically (a 256 KiB string of digits would take minutes).
DECIMAL = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def numeric(value: Any) -> Fraction | None:
    """The number ``value`` counts as, or None when it is skipped."""
    if isinstance(value, bool):
        return Fraction(int(value))
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value) if math.isfinite(value) else None
    if isinstance(value, str) and DECIMAL.fullmatch(value):
        parsed = float(value)
        return Fraction(parsed) if math.isfinite(parsed) else None
    return None


def to_json_number(value: Fraction | None) -> int | float | None:
    """An exact value as JSON: an integer when it is one, else the nearest double; a value
    beyond the double range (a sum of many huge numbers) is null rather than invalid JSON."""
    if value is None:
        return None
    if value.denominator == 1:
        return int(value)
    try:
        return float(value)
    except OverflowError:
        return None


def encode(value: Fraction) -> str:
    """Storable exact form: ``"n"`` or ``"n/d"``."""
    return str(value)


def decode(text: str) -> Fraction:
    return Fraction(text)
