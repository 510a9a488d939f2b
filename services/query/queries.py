"""Running a query against one source's stored events and rollups (README "query")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from services.common import source_store, store
from services.common.errors import StorageUnavailable, Unprocessable
from services.query import bodies, catalog, ordering, paths, rollup_store, rollups

# webhook.list with sortBy orders the newest events up to this many (a sort over a whole
# 100,000-event history would read every body on each query).
SORT_SCAN = 5_000
# Events one aggregate reads directly (those its field's rollup does not hold yet): a bound on
# every query's cost, whatever the backlog. Past it the answer is a 503 to retry.
MAX_SCAN = 10_000


def _events(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.EVENTS)


def _stored(doc) -> ordering.StoredEvent:
    return ordering.StoredEvent(doc.id, doc.get("receivedAt"), bodies.for_answer(doc.get("body")))


def run(
    source_id: str,
    query: catalog.Query,
    now: dt.datetime,
    on_new_field: Callable[[], None] | None = None,
) -> Any:
    """The ``result`` of a query (the caller has checked ownership). ``on_new_field`` runs when
    an aggregate registered a field to roll up (the caller schedules a refresh to fold it)."""
    if isinstance(query, catalog.Latest):
        return latest(source_id)
    if isinstance(query, catalog.Aggregate):
        return aggregate(source_id, query, now, on_new_field)
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
    """Newest (or oldest) first straight from the index; with ``sortBy`` the newest
    ``SORT_SCAN`` events stream through a heap of ``limit`` (memory bounded by the page)."""
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
    events = (_stored(doc) for doc in stream)
    return [e.as_item() for e in ordering.order(events, query.sort_by, query.order, query.limit)]


def aggregate(
    source_id: str,
    query: catalog.Aggregate,
    now: dt.datetime,
    on_new_field: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Rollups up to the field's cursor plus the events after it, exactly (module rollups).

    One moment: the state, the buckets and the unfolded events are read at the state's
    ``read_time``, so a fold committing between the reads is seen either wholly or not at all.
    At most ``MAX_SCAN`` events are read directly."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    start = rollups.window_start(now, query.window_s)
    start_s = int(start.timestamp())
    key = rollups.ALL_EVENTS if query.field is None else paths.key(query.field)
    state = rollup_store.State.read(source_id)
    read_time = state.read_time
    entry = None if state.stale else state.fields.get(key)
    if entry is None and query.field is not None and not state.stale:
        # Before the scan, so the next refresh folds the field even if this scan runs out of
        # time on a long history.
        if roll_up(source_id, query.field, now, state) and on_new_field is not None:
            on_new_field()
    elif entry is not None and query.field is not None:
        rollup_store.touch(source_id, key, state, now)
    cursor = entry.cursor if entry else None
    totals = rollups.Totals()
    events = _events(source_id)
    if cursor is not None:
        totals.merge(rollup_store.read_window(source_id, entry.tag, start_s, cursor, read_time))
    if cursor is not None and cursor.at >= start:
        loose = events.order_by("receivedAt").order_by("__name__")
        loose = loose.start_after({"receivedAt": cursor.at, "__name__": events.document(cursor.id)})
    else:
        loose = (
            events.where(filter=FieldFilter("receivedAt", ">=", start))
            .order_by("receivedAt")
            .order_by("__name__")
        )
    fields = ["receivedAt"] if query.field is None else ["receivedAt", "body"]
    scan = loose.select(fields).limit(MAX_SCAN + 1)
    for scanned, doc in enumerate(scan.stream(retry=store.retry(), read_time=read_time), 1):
        if scanned > MAX_SCAN:
            raise StorageUnavailable(
                f"more than {MAX_SCAN} events of this window are not rolled up yet; the "
                "refresh is folding them, retry shortly",
                code="rollup_catching_up",
                headers={"Retry-After": "10"},
            )
        body = None if query.field is None else bodies.for_values(doc.get("body"))
        value = rollups.value_of(body, query.field)
        if value is not None:
            totals.add(value)
    return rollups.result(query.op, query.window, totals)


def roll_up(
    source_id: str, field: paths.Path, now: dt.datetime, state: rollup_store.State | None = None
) -> bool:
    """Register a field to be rolled up; True when newly registered. A 422 naming the field
    when the source already rolls up as many fields as it may."""
    try:
        return rollup_store.register(source_id, field, now, state)
    except rollup_store.FieldsFull:
        raise Unprocessable(
            f"{paths.render(field)} cannot be rolled up: this source already rolls up "
            f"{rollup_store.MAX_FIELDS} fields (a field no query asks for in 7 days is retired)",
            code="too_many_fields",
        ) from None


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
