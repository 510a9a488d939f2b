"""Rollup arithmetic: window starts, the buckets that tile a window, exact folds."""

from __future__ import annotations

import datetime as dt
import itertools
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from services.query import rollups


def test_a_window_starts_at_the_minute_holding_now_minus_the_window():
    now = dt.datetime(2026, 1, 8, 12, 30, 45, tzinfo=dt.UTC)
    assert rollups.window_start(now, 3600) == dt.datetime(2026, 1, 8, 11, 30, tzinfo=dt.UTC)


@given(st.integers(min_value=0, max_value=10**7).map(lambda m: m * 60))
def test_the_plan_tiles_everything_from_the_start_with_few_buckets(start):
    spans = rollups.plan(start)
    assert spans[0].low == start and spans[-1].high is None
    for before, after in itertools.pairwise(spans):
        assert before.high == after.low
    for span in spans:
        size = rollups.SECONDS[span.granularity]
        assert span.low % size == 0
        if span.high is not None:
            assert (span.high - span.low) // size <= {"m": 59, "h": 23}[span.granularity]


def test_folding_in_then_trimming_out_leaves_nothing():
    fields = {"all": None, "n": ("n",)}
    events = [(100.0, {"n": 0.1}), (4000.0, {"n": "2"}), (90000.0, {"n": "x"})]
    added = rollups.deltas(events, fields)
    removed = rollups.deltas(events, fields, sign=-1)
    for slot, totals in added.items():
        totals.merge(removed[slot])
        assert totals.count == 0 and totals.sum == 0
    assert added[("n", "m", 60)].sum == 0
    assert rollups.deltas(events[:1], fields)[("n", "d", 0)].sum == Fraction(0.1)


def test_results_empty_sum_is_0_and_empty_avg_null():
    empty = rollups.Totals()
    assert rollups.result("sum", "1h", empty)["value"] == 0
    assert rollups.result("avg", "1h", empty)["value"] is None
    assert rollups.result("count", "1h", empty) == {
        "value": 0,
        "count": 0,
        "window": "1h",
        "op": "count",
    }


@given(
    st.integers(min_value=0, max_value=10**6).map(lambda m: m * 60),
    st.integers(min_value=0, max_value=8 * 86400),
)
def test_buckets_by_id_are_the_plans_buckets_up_to_the_cursor(start, ahead):
    until = start + ahead
    slots = rollups.buckets_from(start, until)
    assert len(slots) <= 59 + 23 + 9
    for granularity, begin in slots:
        assert begin >= start and begin <= until
        assert begin % rollups.SECONDS[granularity] == 0
    # Every event time in [start, until] lies in exactly one listed bucket.
    for at in (start, until, (start + until) / 2):
        holders = [(g, b) for g, b in slots if b <= at < b + rollups.SECONDS[g]]
        assert len(holders) == 1, (at, holders)


@given(
    st.integers(min_value=10**9 // 60, max_value=10**7 * 6).map(lambda m: m * 60),
    st.sampled_from([60, 300, 3600, 86400]),
)
def test_series_spans_tile_the_window_with_buckets_inside_one_point_each(start, bucket_s):
    spans = rollups.series_spans(start, bucket_s)
    assert spans[0].low == start and spans[-1].high is None
    for before, after in itertools.pairwise(spans):
        assert before.high == after.low
    for span in spans:
        size = rollups.SECONDS[span.granularity]
        assert size <= bucket_s and bucket_s % size == 0 and span.low % size == 0


def test_series_points_run_from_the_bucket_holding_the_start_to_the_one_holding_now():
    start = int(dt.datetime(2026, 1, 8, 11, 30, tzinfo=dt.UTC).timestamp())
    now = start + 3600 + 45
    hours = rollups.point_starts(start, now, 3600)
    assert [dt.datetime.fromtimestamp(t, dt.UTC).hour for t in hours] == [11, 12]
    assert len(rollups.point_starts(start, now, 60)) == 61
    assert rollups.point("avg", start, rollups.Totals()) == {
        "t": "2026-01-08T11:30:00Z",
        "value": None,
        "count": 0,
    }
