"""A series is the aggregate of each of its buckets: after any interleaving of arrivals, folds,
field registrations and trims over eight days, every point of every window x bucket x op x field
equals a brute-force fold of the retained events in that bucket (from the window's start on),
computed by the oracle that shares no code with the service (``tests/oracle.py``). Runs against
the Firestore emulator, with the simulated clock of ``test_rollup_properties``."""

from __future__ import annotations

import datetime as dt
import secrets
from fractions import Fraction

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.query import catalog, queries, rollup_store
from tests import oracle
from tests.integration.test_rollup_properties import (
    FIELDS,
    START,
    comparable,
    retained_events,
    steps,
)
from tests.support import store_events

BUCKETS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
SERIES = [
    (window, bucket)
    for window in catalog.WINDOWS
    for bucket in BUCKETS
    if not (window == "7d" and bucket in ("1m", "5m"))
]


def brute_force_points(retained, now, window, bucket, op, field):
    """Every point from the bucket holding the window's start to the one holding now, each the
    README's fold of the retained events received in it at or after the window's start."""
    size = BUCKETS[bucket]
    start = (int(now.timestamp()) - catalog.WINDOWS[window]) // 60 * 60
    first, last = start // size * size, int(now.timestamp()) // size * size
    counted: dict[int, list[Fraction]] = {t: [] for t in range(first, last + 1, size)}
    for at, body in retained:
        if at.timestamp() < start:
            continue
        value = Fraction(0) if field is None else oracle.value(oracle.resolve(body, field))
        if value is not None:
            counted.setdefault(int(at.timestamp()) // size * size, []).append(value)
    return [
        {
            "t": dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z"),
            **oracle.fold(values, op),
        }
        for t, values in sorted(counted.items())
    ]


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=steps, picks=st.lists(st.sampled_from(SERIES), min_size=2, max_size=4, unique=True))
def test_every_series_point_equals_the_brute_force_fold_of_its_bucket(
    stack, db, monkeypatch, plan, picks
):
    monkeypatch.setattr(rollup_store, "FOLD_CHUNK", 3)  # many small folds: more interleavings
    source_id = "src_" + secrets.token_hex(10)
    clock = START
    for kind, arg in plan:
        if kind == "advance":
            clock += dt.timedelta(milliseconds=arg)
        elif kind == "arrive":
            store_events(
                db, source_id, [(clock - dt.timedelta(milliseconds=ms), b) for ms, b in arg]
            )
        elif kind == "fold":
            for _ in range(arg):
                rollup_store.fold_once(source_id, clock)
        elif kind == "trim":
            while rollup_store.trim_once(source_id, arg)[0]:
                pass
        else:
            rollup_store.register(source_id, arg, clock)
    kept = list(retained_events(db, source_id).values())
    for window, bucket in picks:
        for op in catalog.OPS:
            for field in FIELDS:
                if field is None and op != "count":
                    continue
                query = catalog.Series(window=window, bucket=bucket, op=op, field=field)
                got = [comparable(p) for p in queries.series(source_id, query, clock)]
                want = brute_force_points(kept, clock, window, bucket, op, field)
                assert got == want, (window, bucket, op, field)
                aggregate = catalog.Aggregate(window=window, op=op, field=field)
                total = queries.aggregate(source_id, aggregate, clock)["count"]
                assert sum(p["count"] for p in got) == total  # the points add up to the window


def test_a_fold_committed_between_a_series_reads_is_counted_once(clean, db, monkeypatch):
    """The state is read, a refresh folds the tail and commits, then the buckets and the
    events after the cursor are read: at the state's read_time, so each event counts once."""
    source_id = "src_" + secrets.token_hex(10)
    now = dt.datetime.now(dt.UTC)
    store_events(db, source_id, [(now - dt.timedelta(minutes=5), {"v": 1}) for _ in range(10)])
    while rollup_store.fold_once(source_id, now)[0]:
        pass
    store_events(db, source_id, [(now - dt.timedelta(minutes=4), {"v": 2}) for _ in range(5)])
    read_series = rollup_store.read_series

    def fold_first(*args, **kw):
        while rollup_store.fold_once(source_id, now)[0]:
            pass
        return read_series(*args, **kw)

    monkeypatch.setattr(rollup_store, "read_series", fold_first)
    for field in (None, ("v",)):
        query = catalog.Series("1h", "1m", "sum" if field else "count", field)
        points = queries.series(source_id, query, now)
        assert len(points) == 61
        assert sum(p["value"] for p in points) == (20 if field else 15)
