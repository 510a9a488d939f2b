"""An oracle for aggregates, written from the README's rules alone: it shares no code with the
query service (no ``coercion``, no ``rollups``), so a test comparing the two cannot pass by
repeating a bug. Decimal arithmetic on the text as written, then exact fractions."""

from __future__ import annotations

import decimal
import json
import re
from fractions import Fraction
from typing import Any

# The README's pattern, verbatim, with ASCII digits.
PATTERN = re.compile(r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
LARGEST, SMALLEST, DIGITS = decimal.Decimal("1e308"), decimal.Decimal("1e-308"), 1000
MISSING = object()


def parse_body(raw: bytes | str) -> Any:
    """A stored body with numbers as Decimals (exact, whatever their length)."""
    return json.loads(raw, parse_int=decimal.Decimal, parse_float=decimal.Decimal)


def resolve(body: Any, path: tuple[str, ...]) -> Any:
    node = body
    for segment in path:
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and segment.isascii():
            index = int(segment)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def value(item: Any) -> Fraction | None:
    """What one value counts as under the README's rules, or None."""
    if item is True or item is False:
        return Fraction(int(item))
    if isinstance(item, str):
        if "\n" in item or not PATTERN.match(item):
            return None
        try:
            number = decimal.Decimal(item)
        except decimal.InvalidOperation:
            return None  # an exponent past Decimal's own limit (about 1e18): far out of range
    elif isinstance(item, decimal.Decimal):
        number = item
    elif isinstance(item, int):
        number = decimal.Decimal(item)
    else:
        return None
    if number.is_nan() or number.is_infinite():
        return None
    if number != 0:
        if not SMALLEST <= number.copy_abs() < LARGEST:
            return None
        if len(number.normalize(decimal.Context(prec=10**6)).as_tuple().digits) > DIGITS:
            return None
    return Fraction(number)


def fold(values: list[Fraction], op: str, count_all: int | None = None) -> dict[str, Any]:
    """``{value, count}`` of an aggregate, ``value`` as the README renders it (a Decimal for
    the exponent form)."""
    count = len(values) if count_all is None else count_all
    if op == "count":
        return {"value": count, "count": count}
    total = sum(values, Fraction(0))
    if op == "sum":
        return {"value": render(total), "count": count}
    return {"value": render(total / count) if count else None, "count": count}


def render(number: Fraction) -> Any:
    if number.denominator == 1:
        return int(number)
    try:
        nearest = number.numerator / number.denominator
    except OverflowError:
        nearest = float("inf")
    if nearest not in (0.0, float("inf"), float("-inf")):
        return nearest
    with decimal.localcontext(decimal.Context(prec=17, Emax=10**9, Emin=-(10**9))):
        return +(decimal.Decimal(number.numerator) / decimal.Decimal(number.denominator))


def answer_value(text: str) -> Any:
    """An answer's JSON with exponent-form numbers beyond a double kept as Decimals."""

    def number(token: str) -> Any:
        as_float = float(token)
        if as_float in (float("inf"), float("-inf")) or (as_float == 0 and token.strip("-0.eE+")):
            return decimal.Decimal(token)
        return as_float

    return json.loads(text, parse_float=number)
