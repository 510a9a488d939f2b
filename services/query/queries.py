"""Running a query against one source's stored events and rollups (README "query")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.common import source_store, store
from services.query import catalog, ordering, paths, rollup_store, rollups

# webhook.list with sortBy orders the newest events up to this many (a sort over a whole
# 100,000-event history would read every body on each query).
SORT_SCAN = 5_000


def _events(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.EVENTS)


def _stored(doc) -> ordering.StoredEvent:
    return ordering.StoredEvent(
        doc.id, doc.get("receivedAt"), rollup_store.decode_body(doc.get("body"))
    )


def run(source_id: str, query: catalog.Query, now: dt.datetime) -> Any:
    """The ``result`` of a query (the caller has checked ownership)."""
    if isinstance(query, catalog.Latest):
        return latest(source_id)
    if isinstance(query, catalog.Aggregate):
        return aggregate(source_id, query, now)
    return listing(source_id, query)


def latest(source_id: str) -> Any:
    from google.cloud import firestore

    newest = (
        _events(source_id)
        .order_by("receivedAt", direction=firestore.Query.DESCENDING)
        .order_by("__name__", direction=firestore.Query.DESCENDING)
        .select(["receivedAt", "body"])
        .limit(1)
    )
    for doc in newest.stream(retry=store.retry()):
        return _stored(doc).body
    return None


def listing(source_id: str, query: catalog.Listing) -> list[dict[str, Any]]:
    from google.cloud import firestore

    direction = firestore.Query.DESCENDING
    if query.sort_by is None and query.order == "asc":
        direction = firestore.Query.ASCENDING
    limit = query.limit if query.sort_by is None else SORT_SCAN
    stream = (
        _events(source_id)
        .order_by("receivedAt", direction=direction)
        .order_by("__name__", direction=direction)
        .select(["receivedAt", "body"])
        .limit(limit)
        .stream(retry=store.retry())
    )
    events = [_stored(doc) for doc in stream]
    return [e.as_item() for e in ordering.order(events, query.sort_by, query.order, query.limit)]


def aggregate(source_id: str, query: catalog.Aggregate, now: dt.datetime) -> dict[str, Any]:
    """Rollups up to the field's cursor plus the events after it, exactly (module rollups)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    start = rollups.window_start(now, query.window_s)
    start_s = int(start.timestamp())
    key = rollups.ALL_EVENTS if query.field is None else paths.key(query.field)
    state = rollup_store.State.read(source_id)
    entry = state.fields.get(key)
    if entry is None and query.field is not None:
        # Before the scan, so the next refresh folds the field even if this scan runs out of
        # time on a long history.
        rollup_store.register(source_id, query.field, state)
    cursor = entry.cursor if entry else None
    totals = rollups.Totals()
    events = _events(source_id)
    loose = events.order_by("receivedAt").order_by("__name__")
    if cursor is not None:
        totals.merge(rollup_store.read_window(source_id, key, start_s, cursor))
    if cursor is not None and cursor.at >= start:
        loose = loose.start_after({"receivedAt": cursor.at, "__name__": events.document(cursor.id)})
    else:
        loose = (
            events.where(filter=FieldFilter("receivedAt", ">=", start))
            .order_by("receivedAt")
            .order_by("__name__")
        )
    for doc in loose.select(["receivedAt", "body"]).stream(retry=store.retry()):
        value = rollups.value_of(rollup_store.decode_body(doc.get("body")), query.field)
        if value is not None:
            totals.add(value)
    return rollups.result(query.op, query.window, totals)


def oldest_in_window(source_id: str, window_s: int, now: dt.datetime) -> dt.datetime | None:
    """When the oldest event still inside a window arrived (follow-up scheduling)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    start = rollups.window_start(now, window_s)
    query = (
        _events(source_id)
        .where(filter=FieldFilter("receivedAt", ">=", start))
        .order_by("receivedAt")
        .select(["receivedAt"])
        .limit(1)
    )
    for doc in query.stream(retry=store.retry()):
        return doc.get("receivedAt")
    return None
