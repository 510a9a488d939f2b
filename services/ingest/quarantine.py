"""The quarantine: signed, well-formed events refused only by the source's schema, kept 7 days
for replay (docs/ingest.md "Quarantine and replay").

Layout: ``sources/{id}/quarantine/{q_<first 32 hex of SHA-256(idempotency key)>}`` holds one
refused event with its violation; ``sources/{id}/quarantine_state/state`` counts those dropped
past the bound. Keyed by the idempotency key, so a partner retrying a refused event (Standard
Webhooks senders retry any non-2xx) overwrites its own entry instead of adding copies, and a
replay can only ever store a key once.

Cost: keeping an event is one write (a ``set``; the partner still gets its 422). The bound —
at most ``source_store.quarantine_cap(retention)`` kept — is kept off the request path: every
``TRIM_EVERY``-th event an instance quarantines for a source (the first included) asks for a
"quarantine" refresh through the outbox, and that task drops the overflow, oldest first, in
bounded batches (``source_store.trim_quarantine_once``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from typing import TYPE_CHECKING, Any

from services.common import json_text, logs, outbox, source_store, store
from services.common.config import TaskSettings
from services.common.errors import BadRequest, InletError, StorageUnavailable
from services.common.source_view import iso

if TYPE_CHECKING:
    from services.ingest.signature import SignedRequest

KEEP_FOR = dt.timedelta(days=7)  # the TTL field expireAt (common/indexes.py)
TRIM_EVERY = 500  # quarantined events per instance and source between two trim requests
MAX_SOURCES = 10_000  # tally entries per instance, as many as the key cache holds
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_PAGE_BYTES = 8 * 1024 * 1024  # stored body bytes one page may carry (at least one item)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ID = re.compile(r"q_[0-9a-f]{32}")
# A cursor names the last item of the page before: its receive time in microseconds and its id.
_CURSOR = re.compile(r"^([0-9]{1,17})\.(q_[0-9a-f]{32})\Z")


def entry_id(idempotency_key: str) -> str:
    return "q_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def collection(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.QUARANTINE)


class Quarantine:
    """Keeps refused events (one write each) and asks for the bound to be enforced."""

    def __init__(
        self, tasks: TaskSettings, trim_every: int = TRIM_EVERY, max_sources: int = MAX_SOURCES
    ) -> None:
        self._tasks = tasks
        self._trim_every = trim_every
        self._max = max_sources
        self._kept: dict[str, int] = {}  # source id -> events this instance quarantined
        self._lock = threading.Lock()

    def keep(
        self,
        source_id: str,
        signed: SignedRequest,
        body: bytes,
        key_id: str,
        refusal: InletError,
    ) -> None:
        """Keep the event ``refusal`` (a schema 422) refused. A failed write is a 503: the
        partner retries later and nothing is lost, which a 422 would not promise."""
        key = signed.idempotency_key
        assert key is not None  # read from the body by step 7 at the latest (Stripe)
        now = dt.datetime.now(dt.UTC)
        record = {
            "receivedAt": now,
            "expireAt": now + KEEP_FOR,  # TTL field: 7 days
            # GitHub signs no time: its events say when they arrived instead (as stored events).
            "signedAt": now
            if signed.timestamp is None
            else dt.datetime.fromtimestamp(signed.timestamp, dt.UTC),
            "idempotencyKey": key,
            "scheme": signed.scheme,
            "keyId": key_id,
            "size": len(body),
            "body": body,
            **violation(refusal),
        }
        ref = collection(source_id).document(entry_id(key))
        try:
            ref.set(record, retry=store.retry())
        except store.storage_errors() as err:
            raise StorageUnavailable("the refused event could not be kept, retry") from err
        if self._trim_due(source_id):
            try:
                outbox.schedule_refresh(self._tasks, source_id, "quarantine")
            except StorageUnavailable:
                self._forget(source_id)  # the next event asks again
                logs.warning("quarantine trim not scheduled", sourceId=source_id)

    def _trim_due(self, source_id: str) -> bool:
        """True for the 1st, (1 + TRIM_EVERY)th, … event this instance kept for the source."""
        with self._lock:
            kept = self._kept.pop(source_id, 0) + 1  # re-inserted last: idle order
            while len(self._kept) >= self._max:
                self._kept.pop(next(iter(self._kept)))
            self._kept[source_id] = kept
            return kept % self._trim_every == 1 or self._trim_every == 1

    def _forget(self, source_id: str) -> None:
        with self._lock:
            self._kept.pop(source_id, None)


def violation(refusal: InletError) -> dict[str, Any]:
    """The stored (and listed) form of a schema refusal: code, message, pointer, keyword."""
    return {
        "code": refusal.code,
        "message": refusal.message,
        "pointer": refusal.details.get("pointer"),
        "keyword": refusal.details.get("keyword"),
    }


# -- the listing ---------------------------------------------------------------------------------


def parse_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if cursor is None:
        return None
    found = _CURSOR.match(cursor)
    if not found:
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor")
    return _EPOCH + dt.timedelta(microseconds=int(found.group(1))), found.group(2)


def encode_cursor(at: dt.datetime, item_id: str) -> str:
    return f"{(at - _EPOCH) // dt.timedelta(microseconds=1)}.{item_id}"


def list_page(source_id: str, after: tuple[dt.datetime, str] | None, limit: int) -> dict[str, Any]:
    """One page of the kept events, newest first, with their bodies; at most ``limit`` items and
    ``MAX_PAGE_BYTES`` of bodies. ``dropped`` counts those the bound has dropped."""
    from google.cloud.firestore_v1 import Query

    kept = collection(source_id)
    desc = Query.DESCENDING
    query = kept.order_by("receivedAt", direction=desc).order_by("__name__", direction=desc)
    if after is not None:
        at, item_id = after
        query = query.start_after({"receivedAt": at, "__name__": kept.document(item_id)})
    snaps = list(query.limit(limit + 1).stream(retry=store.retry()))
    page, size = [], 0
    for snap in snaps[:limit]:
        size += int(snap.get("size") or 0)
        if page and size > MAX_PAGE_BYTES:
            break
        page.append(snap)
    more = len(page) < len(snaps)
    cursor = encode_cursor(page[-1].get("receivedAt"), page[-1].id) if more else None
    return {
        "items": [shown(snap) for snap in page],
        "nextCursor": cursor,
        "dropped": source_store.quarantine_dropped(source_id),
    }


def shown(snap) -> dict[str, Any]:
    kept = snap.to_dict()
    return {
        "id": snap.id,
        "receivedAt": iso(kept["receivedAt"]),
        "expiresAt": iso(kept["expireAt"]),
        "idempotencyKey": kept.get("idempotencyKey"),
        "scheme": kept.get("scheme"),
        "keyId": kept.get("keyId"),
        "size": kept.get("size"),
        "violation": {k: kept.get(k) for k in ("code", "pointer", "keyword", "message")},
        "body": _body(kept.get("body")),
    }


def _body(raw: Any) -> Any:
    """The kept body as JSON (it passed strict JSON); None if it cannot be shown as such."""
    try:
        return json_text.loads(raw)
    except (TypeError, ValueError, RecursionError, json.JSONDecodeError):
        return None
