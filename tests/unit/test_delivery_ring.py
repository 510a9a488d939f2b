"""The delivery inspector (services/ingest/deliveries.py): cursor, slots, limiter; no I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.errors import BadRequest
from services.ingest import deliveries


def test_a_cursor_reads_back_the_item_it_names_to_the_microsecond():
    at = dt.datetime(2026, 11, 30, 2, 41, 7, 118204, tzinfo=dt.UTC)
    for kind, item_id in (("e", "evt_0123456789abcdef01234567"), ("r", "042")):
        cursor = deliveries.encode_cursor(at, kind, item_id)
        assert deliveries.parse_cursor(cursor) == (at, kind, item_id)


@pytest.mark.parametrize(
    "cursor", ["", "x", "1.e.", "1.r.25", "1.r.1234", "1.q.evt_1", "1.e.evt_a/b", "1.e.evt_x\n"]
)
def test_a_cursor_of_another_shape_is_400(cursor):
    with pytest.raises(BadRequest) as refused:
        deliveries.parse_cursor(cursor)
    assert refused.value.code == "invalid_cursor"


def test_slots_cycle_through_256_documents():
    slots = {deliveries.slot_id(second) for second in range(1_700_000_000, 1_700_001_000)}
    assert len(slots) == deliveries.RING_SLOTS
    assert deliveries.slot_id(1_700_000_000) == deliveries.slot_id(1_700_000_256)


def test_the_limiter_admits_a_source_once_a_second():
    ring = deliveries.DeliveryRing()
    assert ring.admit("src_a", 100) and not ring.admit("src_a", 100)
    assert ring.admit("src_b", 100)  # per source
    assert ring.admit("src_a", 101) and not ring.admit("src_a", 101)


def test_the_limiter_is_bounded_and_forgets_the_longest_idle_source_first():
    ring = deliveries.DeliveryRing(max_sources=2)
    assert ring.admit("src_a", 100) and ring.admit("src_b", 100)
    assert ring.admit("src_a", 101)  # src_a is now the most recent; src_b the longest idle
    assert ring.admit("src_c", 101)  # evicts src_b
    assert not ring.admit("src_a", 101) and not ring.admit("src_c", 101)
    assert ring.admit("src_b", 100)  # forgotten: admitted again (at worst a second write)
