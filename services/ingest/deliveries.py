"""The delivery inspector: what a source's partner sent and what Inlet answered (README
"Debugging your integration").

Accepted events need no second record: the event document is the audit entry (time, scheme,
key id, size, idempotency key). Requests refused after the source was identified (steps 6-8'
of docs/ingest.md's table, schema violations) and 200 duplicates are kept in a bounded ring
per source, ``sources/{id}/delivery_ring/{slot}`` with ``slot = unix second mod 256``:

- each instance writes at most once a second per source (``DeliveryRing.record``), and every
  instance writing in the same second writes the same slot, so a flood of bad signatures costs
  at most one write a second per instance and the ring never holds more than 256 documents;
- the write is best effort: a short deadline, no retry, any failure swallowed and only counted
  in the request's log line. It never changes the answer.

Nothing of a request's body, signature or secret is ever recorded, only what the partner needs
to see what went wrong: status, error code, scheme, key id, size and idempotency key.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from services.common import context, source_store, store
from services.common.errors import BadRequest
from services.common.source_view import iso

if TYPE_CHECKING:
    from services.ingest.keys import Entry
    from services.ingest.signature import SignedRequest

RING_SLOTS = 256
# One write to a small document: on a healthy database it takes milliseconds. The deadline
# bounds what one refused request in a second can wait when Firestore is slow.
WRITE_DEADLINE_S = 1.0
MAX_SOURCES = 10_000  # limiter entries per instance, as many as the key cache holds
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A cursor names the last item of the page before: its time in microseconds, its kind (an
# event or a ring slot) and its id. At equal times events come before ring entries.
_CURSOR = re.compile(r"^([0-9]{1,17})\.(e\.evt_[A-Za-z0-9_-]{1,64}|r\.[0-9]{3})\Z")
_EVENT_FIELDS = ["receivedAt", "scheme", "keyId", "size", "idempotencyKey"]


class DeliveryRing:
    """Records refusals and duplicates of identified sources, once a second per source.

    The limiter is a dict from source id to the unix second of its last write. The path a
    flood takes (a second already written) is a clock read and one dict lookup, without a lock
    or a Firestore call; only the first refusal of a second takes the lock, so two threads
    cannot both write in one second. The dict is bounded: past ``MAX_SOURCES`` the longest-idle
    source goes first (at worst it gets a second write in the same second).
    """

    def __init__(self, max_sources: int = MAX_SOURCES) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()
        self._max = max_sources

    def record(
        self,
        source_id: str,
        status: int,
        code: str,
        signed: SignedRequest,
        size: int,
        key_id: str | None,
    ) -> None:
        """Write one ring entry unless this source's entry was written in this second."""
        now = time.time()
        second = int(now)
        if self._last.get(source_id) == second:
            return  # a flood's path: one lookup, nothing written
        if not self.admit(source_id, second):
            return
        entry = {
            "at": dt.datetime.fromtimestamp(now, dt.UTC),  # in the slot's second
            "status": status,
            "code": code,
            "scheme": signed.scheme,
            "keyId": key_id,
            "size": size,
            "idempotencyKey": signed.idempotency_key,
        }
        ring = source_store.source_ref(source_id).collection(source_store.DELIVERY_RING)
        outcome: dict[str, Any] = {"deliveryRing": "written"}
        try:
            ring.document(slot_id(second)).set(entry, retry=None, timeout=WRITE_DEADLINE_S)
        except Exception as err:  # best effort: whatever failed, the answer stays the same
            outcome = {"deliveryRing": "failed", "deliveryRingError": type(err).__name__}
        ctx = context.current()
        if ctx is not None:
            ctx.log_fields.update(outcome)

    def admit(self, source_id: str, second: int) -> bool:
        """Whether this source may write in ``second``; at most one caller per second is told
        yes (under the lock, which only the first refusal of each second takes)."""
        with self._lock:
            if self._last.get(source_id) == second:
                return False
            self._last.pop(source_id, None)  # re-inserted last: the dict stays in idle order
            while len(self._last) >= self._max:
                self._last.pop(next(iter(self._last)))
            self._last[source_id] = second
            return True


def slot_id(second: int) -> str:
    return f"{second % RING_SLOTS:03d}"


def newest_key_id(entry: Entry) -> str | None:
    """The key a partner should be signing with: the source's current one (listed first)."""
    return entry.keys[0].key_id if entry.keys else None


# -- the listing ---------------------------------------------------------------------------------


def parse_cursor(cursor: str | None) -> tuple[dt.datetime, str, str] | None:
    """(time, kind, id) of the item a page continues after; a cursor of another shape is 400."""
    if cursor is None:
        return None
    found = _CURSOR.match(cursor)
    if not found:
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor")
    kind, _, item_id = found.group(2).partition(".")
    return _EPOCH + dt.timedelta(microseconds=int(found.group(1))), kind, item_id


def encode_cursor(at: dt.datetime, kind: str, item_id: str) -> str:
    micros = (at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{kind}.{item_id}"


def list_page(
    source_id: str, after: tuple[dt.datetime, str, str] | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a source's deliveries, newest first, and the cursor of the next page.

    The order is (time desc, events before ring entries, id desc), the same for both
    collections, so each query starts right after the cursor and the two are merged: at most
    ``limit + 1`` documents are read from each, never a body. A ring slot rewritten while a
    client pages moves to the top of the list (it is a newer delivery); nothing else shifts.
    """
    from google.cloud.firestore_v1 import Query
    from google.cloud.firestore_v1.base_query import FieldFilter

    source = source_store.source_ref(source_id)
    events_ref = source.collection(source_store.EVENTS)
    ring_ref = source.collection(source_store.DELIVERY_RING)
    desc = Query.DESCENDING
    events = (
        events_ref.select(_EVENT_FIELDS)
        .order_by("receivedAt", direction=desc)
        .order_by("__name__", direction=desc)
    )
    ring = ring_ref.order_by("at", direction=desc).order_by("__name__", direction=desc)
    if after is not None:
        at, kind, item_id = after
        if kind == "e":
            events = events.start_after(
                {"receivedAt": at, "__name__": events_ref.document(item_id)}
            )
            ring = ring.where(filter=FieldFilter("at", "<=", at))
        else:
            events = events.where(filter=FieldFilter("receivedAt", "<", at))
            ring = ring.start_after({"at": at, "__name__": ring_ref.document(item_id)})
    found = [
        (snap.get("receivedAt"), "e", snap.id, _accepted(snap.to_dict()))
        for snap in events.limit(limit + 1).stream(retry=store.retry())
    ]
    found += [
        (snap.get("at"), "r", snap.id, _recorded(snap.to_dict()))
        for snap in ring.limit(limit + 1).stream(retry=store.retry())
    ]
    found.sort(key=lambda item: (item[0], item[1] == "e", item[2]), reverse=True)
    page = found[:limit]
    next_cursor = encode_cursor(*page[-1][:3]) if len(found) > limit else None
    return [item[3] for item in page], next_cursor


def _accepted(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": iso(event["receivedAt"]),
        "status": 202,
        "code": None,
        "scheme": event.get("scheme"),
        "keyId": event.get("keyId"),
        "size": event.get("size"),
        "idempotencyKey": event.get("idempotencyKey"),
    }


def _recorded(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": iso(entry["at"]),
        "status": entry.get("status"),
        "code": entry.get("code"),
        "scheme": entry.get("scheme"),
        "keyId": entry.get("keyId"),
        "size": entry.get("size"),
        "idempotencyKey": entry.get("idempotencyKey"),
    }
