"""Group commit's raw writes (services/common/group_commit.py ``create_write``) are the messages
the Firestore client's own ``create`` builds, value kind by value kind."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write

from services.common.group_commit import create_write

PATH = "projects/p/databases/(default)/documents/sources/src_1/events/evt_1"
EAST = dt.timezone(dt.timedelta(hours=2))


def client_write(data: dict) -> write.Write:
    (made,) = _helpers.pbs_for_create(PATH, data)
    return write.Write.pb(made)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        "ünï\u2028",
        b"\x00raw",
        b"",
        True,
        False,
        0,
        -(2**63),
        2**63 - 1,
        42.5,
        float("inf"),
        None,
        dt.datetime(2026, 12, 5, 13, 45, 1, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 5, 13, 45, 1, 123456, tzinfo=EAST),
        dt.datetime(2026, 12, 5, 13, 45, 1, 999999),  # naive: read as UTC by both
        dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),  # before the epoch
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        DatetimeWithNanoseconds(2026, 12, 5, 1, 2, 3, nanosecond=123456789, tzinfo=dt.UTC),
        {"nested": {"a": [1, "two", None]}},
        [1, 2.5, "x", b"y"],
        firestore.GeoPoint(48.85, 2.35),
    ],
    ids=repr,
)
def test_each_value_kind_is_written_as_the_client_writes_it(value):
    data = {"field": value, "receivedAt": dt.datetime.now(dt.UTC), "size": 3}
    assert create_write(PATH, data) == client_write(data)


def test_an_event_is_the_same_message_and_the_same_bytes():
    now = dt.datetime.now(dt.UTC)
    event = {
        "receivedAt": now,
        "signedAt": now,
        "idempotencyKey": "order-1",
        "bodySha256": bytes(32),
        "size": 51,
        "body": b'{"type":"order.paid"}',
        "keyId": "key_1",
        "scheme": "inlet",
    }
    ours, theirs = create_write(PATH, event), client_write(event)
    assert ours == theirs
    assert ours.current_document.exists is False and ours.HasField("current_document")
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )


def test_an_integer_past_64_bits_is_refused_as_the_client_refuses_it():
    with pytest.raises(ValueError):
        client_write({"n": 2**63})
    with pytest.raises(ValueError):
        create_write(PATH, {"n": 2**63})


def test_a_transform_has_no_place_in_a_group_commit():
    with pytest.raises(TypeError):
        create_write(PATH, {"at": firestore.SERVER_TIMESTAMP})
