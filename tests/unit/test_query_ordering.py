"""webhook.list ordering: newest first, or by a path with a fixed order of kinds of values."""

from __future__ import annotations

import datetime as dt

from services.query import ordering

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def events(*bodies):
    return [
        ordering.StoredEvent(f"evt_{n:02d}", T0 + dt.timedelta(seconds=n), body)
        for n, body in enumerate(bodies)
    ]


def ids(ranked):
    return [e.id for e in ranked]


def test_without_sort_by_the_newest_come_first_or_the_oldest_with_asc():
    stored = events({}, {}, {})
    assert ids(ordering.order(stored, None, "desc", 2)) == ["evt_02", "evt_01"]
    assert ids(ordering.order(stored, None, "asc", 2)) == ["evt_00", "evt_01"]


def test_numbers_before_strings_then_other_values_then_null_and_missing():
    stored = events({"v": "b"}, {"v": None}, {"v": 2}, {}, {"v": True}, {"v": "a"}, {"v": 10.5})
    asc = ids(ordering.order(stored, ("v",), "asc", 10))
    assert asc == ["evt_02", "evt_06", "evt_05", "evt_00", "evt_04", "evt_03", "evt_01"]
    desc = ids(ordering.order(stored, ("v",), "desc", 10))
    assert desc == ["evt_06", "evt_02", "evt_00", "evt_05", "evt_04", "evt_03", "evt_01"]


def test_ties_come_newest_first_in_both_directions():
    stored = events({"v": 1}, {"v": 1}, {"v": 0})
    assert ids(ordering.order(stored, ("v",), "asc", 3)) == ["evt_02", "evt_01", "evt_00"]
    assert ids(ordering.order(stored, ("v",), "desc", 3)) == ["evt_01", "evt_00", "evt_02"]


def test_an_item_carries_id_receive_time_and_body():
    (item,) = [e.as_item() for e in events({"a": 1})]
    assert item == {"id": "evt_00", "receivedAt": "2026-01-01T00:00:00Z", "body": {"a": 1}}
