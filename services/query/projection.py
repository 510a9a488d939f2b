"""Projections: a query result mapped onto a widget's fields (docs/query.md). Pure.

A projection is ``{"fields": {<widget field>: {"source": <path>, "format"?: …} |
{"literal": <value>}}}``, the ChatBlocks shape. A missing path gives null. Formats:

- ``number``: the value as a JSON number (numeric strings and booleans coerce as in aggregates),
  else null. ``"12.50"`` → ``12.5``.
- ``integer``: that number rounded half away from zero, else null. ``2.5`` → ``3``.
- ``percent``: a ratio as text with at most one decimal: ``0.257`` → ``"25.7%"``, ``1`` →
  ``"100%"``, else null.
- ``text``: strings as they are, numbers and booleans as JSON writes them, objects and arrays as
  compact JSON, null stays null. ``42`` → ``"42"``.
- ``datetime``: an ISO 8601 string or Unix seconds as ``"2026-01-02T03:04:05Z"`` (UTC), else null.
- no format: the value itself.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from services.query import coercion, paths

FORMATS = ("number", "integer", "percent", "text", "datetime")


@dataclass(frozen=True)
class FromResult:
    path: paths.Path
    format: str | None = None


@dataclass(frozen=True)
class Literal:
    value: Any


Projection = dict[str, FromResult | Literal]


def parse(raw: dict[str, Any]) -> Projection:
    """A projection already checked against its JSON schema, with its paths parsed."""
    fields: Projection = {}
    for name, spec in raw["fields"].items():
        if "literal" in spec:
            fields[name] = Literal(spec["literal"])
        else:
            fields[name] = FromResult(
                paths.parse(spec["source"], f"fields.{name}.source"), spec.get("format")
            )
    return fields


def apply(projection: Projection, result: Any) -> dict[str, Any]:
    """The widget fields a query result projects to."""
    out: dict[str, Any] = {}
    for name, spec in projection.items():
        if isinstance(spec, Literal):
            out[name] = spec.value
            continue
        value = paths.resolve(result, spec.path)
        out[name] = None if paths.is_missing(value) else render(value, spec.format)
    return out


def render(value: Any, fmt: str | None) -> Any:
    """One value in one format (see the module docstring)."""
    if fmt is None:
        return value
    if fmt == "text":
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if fmt == "datetime":
        return _datetime(value)
    number = coercion.numeric(value)
    if number is None:
        return None
    if fmt == "number":
        return coercion.to_json_number(number)
    if fmt == "integer":
        return _round_half_away(number)
    if fmt == "percent":
        return _percent(number)
    raise ValueError(f"unknown format {fmt}")


def _round_half_away(number: Fraction) -> int:
    magnitude = math.floor(abs(number) + Fraction(1, 2))
    return magnitude if number >= 0 else -magnitude


def _percent(number: Fraction) -> str | None:
    scaled = number * 100
    if abs(scaled) > 10**15:
        return None  # not a ratio
    text = Decimal(scaled.numerator) / Decimal(scaled.denominator)
    rounded = text.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP).normalize()
    shown = format(rounded, "f")
    return f"{'0' if shown == '-0' else shown}%"


def _datetime(value: Any) -> str | None:
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            at = dt.datetime.fromtimestamp(value, dt.UTC)
        elif isinstance(value, str) and len(value) <= 64:
            at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo is None:
                at = at.replace(tzinfo=dt.UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    at = at.astimezone(dt.UTC)
    text = at.isoformat(timespec="milliseconds" if at.microsecond else "seconds")
    return text.replace("+00:00", "Z")
