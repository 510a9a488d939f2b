"""Rollups are never an approximation: after any interleaving of arrivals, folds, field
registrations and retention trims over eight days, every window x op x field read through
rollups equals a brute-force fold of the retained events, computed here. Runs against the
Firestore emulator.

Time is simulated: a clock advances through eight days, events arrive stamped up to five
seconds before the clock (ingest stamps an event before its commit lands, never later than the
settle time), and folds run at the clock."""

from __future__ import annotations

import datetime as dt
import decimal
import secrets
from fractions import Fraction

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.common import json_text
from services.query import catalog, queries, rollup_store
from tests import oracle
from tests.support import store_events

START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=8)
FIELDS = (None, ("v",), ("n", "x"), ("arr", "0"))

scalars = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.from_regex(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", fullmatch=True).filter(
        lambda s: len(s) < 40
    ),
    st.sampled_from(["1e400", "-1e999", "NaN", "abc", "", "1,5", " 2", "\u0663", "1e-400", "0.1"]),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars,
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    st.lists(scalars, max_size=2),
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "v": values,
        "n": st.one_of(st.fixed_dictionaries({"x": values}), values),
        "arr": st.lists(values, max_size=3),
    },
)
arrivals = st.lists(st.tuples(st.integers(0, 5_000), bodies), min_size=1, max_size=10)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 2 * 86400 * 1000)),
        st.tuples(st.just("arrive"), arrivals),
        st.tuples(st.just("fold"), st.integers(1, 4)),
        st.tuples(st.just("trim"), st.integers(1, 20)),
        st.tuples(st.just("register"), st.sampled_from(FIELDS[1:])),
    ),
    min_size=1,
    max_size=14,
)


def brute_force(retained, now, window, op, field):
    window_s = catalog.WINDOWS[window]
    start = (int(now.timestamp()) - window_s) // 60 * 60  # the minute holding now - window
    counted = []
    for at, body in retained:
        if at.timestamp() < start:
            continue
        value = Fraction(0) if field is None else oracle.value(oracle.resolve(body, field))
        if value is not None:
            counted.append(value)
    return {**oracle.fold(counted, op), "window": window, "op": op}


def comparable(result):
    value = result["value"]
    if isinstance(value, json_text.RawNumber):
        return {**result, "value": decimal.Decimal(value.text)}
    return result


def retained_events(db, source_id):
    events = db.collection("sources").document(source_id).collection("events").stream()
    return {e.id: (e.get("receivedAt"), oracle.parse_body(e.get("body"))) for e in events}


@settings(
    max_examples=30,
    deadline=None,
    # Shrinking re-runs examples against the emulator for minutes; a failure prints its seed.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
def test_every_aggregate_equals_the_brute_force_fold_of_the_retained_events(
    stack, db, monkeypatch, plan
):
    monkeypatch.setattr(rollup_store, "FOLD_CHUNK", 3)  # many small folds: more interleavings
    source_id = "src_" + secrets.token_hex(10)  # a fresh source's own subcollections
    clock = START
    inserted = {}
    retention = None
    for kind, arg in plan:
        if kind == "advance":
            clock += dt.timedelta(milliseconds=arg)
        elif kind == "arrive":
            events = [(clock - dt.timedelta(milliseconds=ms), body) for ms, body in arg]
            inserted.update(zip(store_events(db, source_id, events), events, strict=True))
        elif kind == "fold":
            for _ in range(arg):
                rollup_store.fold_once(source_id, clock)
        elif kind == "trim":
            retention = arg
            while rollup_store.trim_once(source_id, arg)[0]:
                pass
        else:
            rollup_store.register(source_id, arg, clock)
    kept = retained_events(db, source_id)
    assert set(kept) <= set(inserted)
    # Trimming removes the oldest: every deleted event is older than every kept one.
    if retention is not None and kept and len(kept) < len(inserted):
        oldest_kept = min((at.timestamp(), i) for i, (at, _) in kept.items())
        gone = [i for i in inserted if i not in kept]
        assert all((inserted[i][0].timestamp(), i) <= oldest_kept for i in gone)
    for window in catalog.WINDOWS:
        for op in catalog.OPS:
            for field in FIELDS:
                if field is None and op != "count":
                    continue
                query = catalog.Aggregate(window=window, op=op, field=field)
                got = queries.aggregate(source_id, query, clock)
                expected = brute_force(kept.values(), clock, window, op, field)
                assert comparable(got) == expected, (window, op, field)
