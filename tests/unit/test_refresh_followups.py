"""Follow-up refreshes sit on a grid, so a burst's refreshes ask for the same few tasks."""

from __future__ import annotations

import datetime as dt

from services.query import catalog, refresh


def test_follow_ups_sit_on_a_grid_so_a_burst_costs_few_of_them():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    stats = refresh.Statistics
    times = set()
    for second in range(60):  # one refresh per second of a 60 s burst
        at = now + dt.timedelta(seconds=second, milliseconds=300)
        due = refresh.next_refresh("src_x", [], at, False, stats(at, None))
        assert due >= at + dt.timedelta(seconds=21)  # settled when it runs
        times.add(due)
    assert all(t.second % refresh.SETTLE_GRID_S == 0 and t.microsecond == 0 for t in times)
    assert len(times) <= 60 // 10 + 1


def test_unfinished_work_continues_at_once_and_held_statistics_on_the_minute(monkeypatch):
    now = dt.datetime(2026, 1, 1, 12, 0, 7, tzinfo=dt.UTC)
    stats = refresh.Statistics(now - dt.timedelta(hours=1), now + dt.timedelta(seconds=30))
    assert refresh.next_refresh("src_x", [], now, True, stats) == now
    assert refresh.next_refresh("src_x", [], now, False, stats) == now.replace(minute=1, second=0)
    window = catalog.Aggregate(window="15m", op="count", field=None)
    oldest = now - dt.timedelta(minutes=14, seconds=50)
    monkeypatch.setattr(refresh.queries, "oldest_in_window", lambda *a: oldest)
    quiet = refresh.Statistics(oldest, None)
    due = refresh.next_refresh("src_x", [window], now, False, quiet)
    # The event leaves the window at 12:01:00, but never sooner than a minute from now: the
    # next minute of the grid.
    assert due == now.replace(minute=2, second=0)
