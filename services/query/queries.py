"""Running a query against one source's stored events and rollups (docs/query.md)."""

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
    if isinstance(query, catalog.Series):
        return series(source_id, query, now, on_new_field)
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
    start = rollups.window_start(now, query.window_s)
    state, entry = _field_state(source_id, query.field, now, on_new_field)
    totals = rollups.Totals()
    if entry is not None and entry.cursor is not None:
        totals.merge(
            rollup_store.read_window(
                source_id, entry.tag, int(start.timestamp()), entry.cursor, state.read_time
            )
        )
    if query.field is None:
        # Every event counts once and adds nothing: Firestore counts them (billed one read per
        # 1,000 index entries) rather than each being read, as a refresh would do every second
        # for the events not settled yet.
        unfolded = _unfolded_count(source_id, start, entry, state.read_time)
        totals.merge(rollups.Totals(count=unfolded))
    else:
        for _, value in _unfolded(source_id, query.field, start, entry, state.read_time):
            totals.add(value)
    return rollups.result(query.op, query.window, totals)


def series(
    source_id: str,
    query: catalog.Series,
    now: dt.datetime,
    on_new_field: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """``[{t, value, count}]`` oldest first: each point the aggregate of its bucket's values
    within the window (the first point's bucket counts from the window's start on, as the
    aggregate does, so the points' counts add up to the aggregate's).

    Read like ``aggregate``, at one ``read_time``: the state, then the field's buckets up to its
    cursor (``rollup_store.read_series``), then the events after the cursor."""
    start = rollups.window_start(now, query.window_s)
    start_s = int(start.timestamp())
    state, entry = _field_state(source_id, query.field, now, on_new_field)
    totals: dict[int, rollups.Totals] = {}
    if entry is not None and entry.cursor is not None:
        totals = rollup_store.read_series(
            source_id, entry.tag, start_s, query.bucket_s, entry.cursor, state.read_time
        )
    for at_s, value in _unfolded(source_id, query.field, start, entry, state.read_time):
        slot = int(at_s // query.bucket_s) * query.bucket_s
        totals.setdefault(slot, rollups.Totals()).add(value)
    until = max([now.timestamp(), *totals])  # an event stamped after ``now`` by a skewed clock
    return [
        rollups.point(query.op, t, totals.get(t, rollups.Totals()))
        for t in rollups.point_starts(start_s, until, query.bucket_s)
    ]


def _field_state(
    source_id: str,
    field: paths.Path | None,
    now: dt.datetime,
    on_new_field: Callable[[], None] | None,
) -> tuple[rollup_store.State, rollup_store.FieldState | None]:
    """The rollup state (its ``read_time`` is the answer's moment) and the field's entry, None
    when nothing of it is rolled up yet. A field not rolled up is registered, so the next
    refresh folds it; a rolled-up one is marked as asked for (retirement)."""
    key = rollups.ALL_EVENTS if field is None else paths.key(field)
    state = rollup_store.State.read(source_id)
    entry = None if state.stale else state.fields.get(key)
    if entry is None and field is not None and not state.stale:
        # Before the scan, so the next refresh folds the field even if this scan runs out of
        # time on a long history.
        if roll_up(source_id, field, now, state) and on_new_field is not None:
            on_new_field()
    elif entry is not None and field is not None:
        rollup_store.touch(source_id, key, state, now)
    return state, entry


def _unfolded(
    source_id: str,
    field: paths.Path | None,
    start: dt.datetime,
    entry: rollup_store.FieldState | None,
    read_time,
):
    """(receive time in Unix seconds, value) of the window's events after the field's cursor,
    as of ``read_time``, for those that count. At most ``MAX_SCAN`` are read; past it a 503 to
    retry once the refresh has folded them."""
    fields = ["receivedAt"] if field is None else ["receivedAt", "body"]
    scan = _after_cursor(source_id, start, entry).select(fields).limit(MAX_SCAN + 1)
    for scanned, doc in enumerate(scan.stream(retry=store.retry(), read_time=read_time), 1):
        if scanned > MAX_SCAN:
            raise StorageUnavailable(
                f"more than {MAX_SCAN} events of this window are not rolled up yet; the "
                "refresh is folding them, retry shortly",
                code="rollup_catching_up",
                headers={"Retry-After": "10"},
            )
        body = None if field is None else bodies.for_values(doc.get("body"))
        value = rollups.value_of(body, field)
        if value is not None:
            yield doc.get("receivedAt").timestamp(), value


def _unfolded_count(
    source_id: str, start: dt.datetime, entry: rollup_store.FieldState | None, read_time
) -> int:
    """How many of the window's events come after the all-events cursor, as of ``read_time``."""
    counted = (
        _after_cursor(source_id, start, entry).count().get(retry=store.retry(), read_time=read_time)
    )
    return int(counted[0][0].value)


def _after_cursor(source_id: str, start: dt.datetime, entry: rollup_store.FieldState | None):
    """The window's events after the field's cursor (all of the window's without one), in
    receive order."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    cursor = entry.cursor if entry else None
    events = _events(source_id)
    if cursor is not None and cursor.at >= start:
        after = events.order_by("receivedAt").order_by("__name__")
        return after.start_after({"receivedAt": cursor.at, "__name__": events.document(cursor.id)})
    return (
        events.where(filter=FieldFilter("receivedAt", ">=", start))
        .order_by("receivedAt")
        .order_by("__name__")
    )


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
