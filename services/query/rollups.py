"""Rollup arithmetic: time buckets, window plans and exact folds (docs/query.md). Pure.

Every folded event adds its value to three buckets per rolled-up field: its minute, its hour and
its (UTC) day. A window starts at a minute boundary (the start of the minute holding
``now - window``), so the folded part of a window is exactly the union of

- the minute buckets from the start to the next hour boundary (at most 59),
- the hour buckets from there to the next day boundary (at most 23),
- every day bucket from there on (at most 7 for ``7d``),

which is at most 90 documents whatever the number of events, read by id in one batch: the cost
of a ``7d`` aggregate does not grow with history. Sums are exact fractions, so the order of
folding does not matter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from services.query import coercion, paths

MINUTE, HOUR, DAY = "m", "h", "d"
SECONDS = {MINUTE: 60, HOUR: 3600, DAY: 86400}
GRANULARITIES = (MINUTE, HOUR, DAY)
ALL_EVENTS = "_all"  # the rollup of every event: counts without a field, and eventCount


@dataclass
class Totals:
    """What a set of values folds to: their exact sum and how many counted."""

    sum: Fraction = field(default_factory=Fraction)
    count: int = 0

    def add(self, value: Fraction, sign: int = 1) -> None:
        self.sum += sign * value
        self.count += sign

    def merge(self, other: Totals) -> None:
        self.sum += other.sum
        self.count += other.count


def epoch(at: dt.datetime) -> float:
    return at.timestamp()


def bucket(at_s: float, granularity: str) -> int:
    """The start (Unix seconds) of the bucket holding ``at_s``."""
    size = SECONDS[granularity]
    return int(at_s // size) * size


def window_start(now: dt.datetime, window_s: int) -> dt.datetime:
    """The start of the minute that holds ``now - window``."""
    start = bucket(epoch(now) - window_s, MINUTE)
    return dt.datetime.fromtimestamp(start, dt.UTC)


@dataclass(frozen=True)
class Span:
    """Buckets of one granularity whose start lies in ``[low, high)`` (high None: no end)."""

    granularity: str
    low: int
    high: int | None


def plan(start_s: int) -> list[Span]:
    """The bucket ranges that tile ``[start_s, ∞)``; ``start_s`` is minute aligned."""
    hour = -(-start_s // 3600) * 3600
    day = -(-start_s // 86400) * 86400
    spans = []
    if start_s < hour:
        spans.append(Span(MINUTE, start_s, hour))
    if hour < day:
        spans.append(Span(HOUR, hour, day))
    spans.append(Span(DAY, day, None))
    return spans


def buckets_from(start_s: int, until_s: float) -> list[tuple[str, int]]:
    """Every bucket (granularity, start) of ``plan(start_s)`` that can hold an event received
    at or before ``until_s``: at most 59 + 23 + 8 for a ``7d`` window, fetched by id."""
    found = []
    for span in plan(start_s):
        size = SECONDS[span.granularity]
        last = bucket(until_s, span.granularity)
        high = last + size if span.high is None else min(span.high, last + size)
        found.extend((span.granularity, t) for t in range(span.low, high, size))
    return found


def series_spans(start_s: int, bucket_s: int) -> list[Span]:
    """The stored buckets that tile ``[start_s, ∞)`` without crossing a point of a series in
    ``bucket_s`` buckets: a bucket no larger than the point, so each lies inside one point.

    ``1m`` and ``5m`` points read minute buckets; ``1h`` points minute buckets up to the first
    hour boundary, then hour buckets; ``1d`` points the window plan (minutes, hours, days)."""
    if bucket_s < SECONDS[HOUR]:
        return [Span(MINUTE, start_s, None)]
    spans = plan(start_s)
    if bucket_s >= SECONDS[DAY]:
        return spans
    hour = -(-start_s // 3600) * 3600
    return [*(s for s in spans if s.granularity == MINUTE), Span(HOUR, hour, None)]


def point_starts(start_s: int, now_s: float, bucket_s: int) -> list[int]:
    """Every point of a series, oldest first: the bucket holding the window's start up to the
    bucket holding now. Buckets are aligned on Unix time (UTC days)."""
    first = start_s // bucket_s * bucket_s
    return list(range(first, int(now_s // bucket_s) * bucket_s + 1, bucket_s))


def value_of(body: Any, path: paths.Path | None) -> Fraction | None:
    """What one event contributes to a field's rollup (None: it does not count)."""
    if path is None:
        return Fraction(0)  # every event counts once in the all-events rollup
    return coercion.numeric(paths.resolve(body, path))


BucketKey = tuple[str, str, int]  # (field key, granularity, bucket start)


def deltas(
    events: list[tuple[float, Any]], fields: dict[str, paths.Path | None], sign: int = 1
) -> dict[BucketKey, Totals]:
    """The change to every bucket when ``events`` ((receive time, body) pairs) are folded in
    (sign 1) or trimmed out (sign -1), for each field key and its path."""
    changes: dict[BucketKey, Totals] = {}
    for at_s, body in events:
        for key, path in fields.items():
            value = value_of(body, path)
            if value is None:
                continue
            for granularity in GRANULARITIES:
                slot = (key, granularity, bucket(at_s, granularity))
                changes.setdefault(slot, Totals()).add(value, sign)
    return changes


def point(op: str, t: int, totals: Totals) -> dict[str, Any]:
    """One ``webhook.series`` point: ``t`` the bucket's start, value and count as an aggregate
    of that bucket's values would give them."""
    folded = result(op, "", totals)
    at = dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")
    return {"t": at, "value": folded["value"], "count": folded["count"]}


def result(op: str, window: str, totals: Totals) -> dict[str, Any]:
    """The ``webhook.aggregate`` result for a window's totals (empty sum 0, empty avg null)."""
    if op == "count":
        value: Any = totals.count
    elif op == "sum":
        value = coercion.to_json_number(totals.sum)
    else:
        value = coercion.to_json_number(totals.sum / totals.count) if totals.count else None
    return {"value": value, "count": totals.count, "window": window, "op": op}
