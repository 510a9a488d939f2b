"""``POST /tasks/refresh``: fold rollups, trim retention, refresh blocks, schedule follow-ups.

Safe to run twice or concurrently: rollup changes are guarded by a precondition (module
``rollup_store``), block writes never replace a later refresh's nor touch a block rebound to
another source, and the outbox markers deleted at the end are only those this refresh served.

A refresh answers 5xx only when storage is unavailable: one block whose query or projection
fails for any other reason gets ``status: error`` with a message, and the others refresh.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from services.common import outbox, source_store, store
from services.common.config import TaskSettings
from services.common.errors import BadRequest
from services.query import blocks, catalog, queries, rollup_store, rollups

# event: ingest stored events; followup: a scheduled follow-up; delete: the source is gone;
# change: a block was written or a field registered (the rollups and follow-ups catch up);
# quarantine: ingest kept refused events, whose overflow past the bound this run drops.
REASONS = ("event", "followup", "delete", "change", "quarantine")
# One run does bounded work (a Cloud Tasks attempt, and our storage budget, are finite); what is
# left is carried on by a follow-up task right away.
MAX_ROUNDS = 20
MIN_FOLLOWUP = dt.timedelta(seconds=60)
# Follow-up times sit on a grid, so the refreshes of one burst all ask for the same few tasks:
# settling on 10 s, windows on the minute (a window's value changes on the minute anyway).
SETTLE_GRID_S, WINDOW_GRID_S = 10, 60
STATISTICS_EVERY = dt.timedelta(minutes=1)  # eventCount / lastEventAt on the source document


def parse(body: dict[str, Any]) -> tuple[str, str]:
    source_id, reason = body.get("sourceId"), body.get("reason", "event")
    if set(body) - {"sourceId", "reason"}:
        raise BadRequest("a refresh takes only sourceId and reason")
    if not isinstance(source_id, str) or not source_store.is_source_id(source_id):
        raise BadRequest("sourceId must be a source id")
    if reason not in REASONS:
        raise BadRequest(f"reason must be one of {', '.join(REASONS)}")
    return source_id, reason


def refresh(
    settings: TaskSettings, source_id: str, now: dt.datetime, reason: str = "event"
) -> dict[str, Any]:
    """One refresh of a source; every answer is a 2xx-worthy outcome (a deleted source too)."""
    snap = source_store.source_ref(source_id).get(retry=store.retry())
    if not snap.exists or snap.get("deleted"):
        refresh_blocks(source_id, now, deleted=True)
        outbox.complete(source_id, now)
        return {"status": blocks.SOURCE_DELETED}
    more, trimmed = catch_up(source_id, int(snap.get("retention")), now)
    dropped = 0
    if reason == "quarantine":
        dropped = trim_quarantine(settings, source_id, int(snap.get("retention")))
    statistics = record_statistics(source_id, snap, now, trimmed)
    ran = refresh_blocks(source_id, now, deleted=False)
    due = next_refresh(source_id, ran, now, more, statistics)
    if due is not None:
        outbox.schedule_followup(settings, source_id, due)
    outbox.complete(source_id, now)
    answer = {"status": "ok", "blocks": len(ran), "more": more, "followupAt": due}
    return {**answer, "quarantineDropped": dropped} if reason == "quarantine" else answer


def trim_quarantine(settings: TaskSettings, source_id: str, retention: int) -> int:
    """Drop the quarantine's overflow past its bound, oldest first, in at most ``MAX_ROUNDS``
    batches; what is left is carried on by another "quarantine" refresh a second later."""
    cap = source_store.quarantine_cap(retention)
    dropped = 0
    for _ in range(MAX_ROUNDS):
        cut, more = source_store.trim_quarantine_once(source_id, cap)
        dropped += cut
        if not more:
            return dropped
    outbox.schedule_refresh(settings, source_id, "quarantine")
    return dropped


def catch_up(source_id: str, retention: int, now: dt.datetime) -> tuple[bool, bool]:
    """Bring the rollups up to date within a bounded number of rounds: refold a state written
    under older rules, fold settled events, trim beyond retention, retire idle fields and delete
    buckets nothing reads. Returns whether work is left for the next run, and whether any
    event was trimmed."""
    rollup_store.retire_once(source_id, now)
    trimmed = False
    for _ in range(MAX_ROUNDS):
        _, folding = rollup_store.fold_once(source_id, now)
        cut, trimming = rollup_store.trim_once(source_id, retention)
        _, orphans = rollup_store.delete_orphans_once(source_id)
        trimmed = trimmed or cut
        if not (folding or trimming or orphans):
            return False, trimmed
    return True, trimmed


@dataclass(frozen=True)
class Statistics:
    newest: dt.datetime | None  # when the newest event arrived
    due: dt.datetime | None  # when the skipped write may be made, if one is owed


def record_statistics(source_id: str, snap, now: dt.datetime, trimmed: bool) -> Statistics:
    """``eventCount`` and ``lastEventAt`` on the source document, so listing sources reads one
    document each. Written only when they changed, and at most once a minute per source: the
    source document is also where rotations and schema changes are guarded on its update time.
    A write held back by that minute is owed: the follow-up refresh makes it."""
    from google.api_core import exceptions as gexc
    from google.cloud import firestore

    events = source_store.source_ref(source_id).collection(source_store.EVENTS)
    newest = list(
        events.order_by("receivedAt", direction=firestore.Query.DESCENDING)
        .select(["receivedAt"])
        .limit(1)
        .stream(retry=store.retry())
    )
    last = newest[0].get("receivedAt") if newest else None
    stored = snap.to_dict() or {}
    unchanged = stored.get("lastEventAt") == last and not trimmed
    written = stored.get("statisticsAt")
    # A source that never had an event already reads as 0 events, none last (source_view).
    if unchanged and ("eventCount" in stored or last is None):
        return Statistics(last, None)
    if written is not None and written > now - STATISTICS_EVERY:
        return Statistics(last, written + STATISTICS_EVERY)
    (count,) = source_store.stored_events(source_id).count().get(retry=store.retry())[0]
    stats = {"eventCount": int(count.value), "lastEventAt": last}
    if all(stored.get(k, "unset") == v for k, v in stats.items()):
        return Statistics(last, None)
    try:
        # Conditional on the document as read: a rotation or schema change in between wins,
        # and the next refresh writes the statistics instead.
        snap.reference.update(
            {**stats, "statisticsAt": now},
            option=store.client().write_option(last_update_time=snap.update_time),
            retry=store.retry(),
        )
    except gexc.FailedPrecondition:
        return Statistics(last, now + STATISTICS_EVERY)
    except gexc.NotFound:
        pass  # a source removed since it was read: the next refresh answers as for a deleted one
    return Statistics(last, None)


def next_refresh(
    source_id: str,
    ran: list[catalog.Query],
    now: dt.datetime,
    more: bool,
    statistics: Statistics,
) -> dt.datetime | None:
    """When this source needs a refresh without a new event, or None.

    A windowed aggregate changes when its oldest counted event leaves the window, that is when
    the window's start passes that event's minute: never sooner than ``MIN_FOLLOWUP`` from now,
    on the minute. Events too recent to fold ask for one run once they have settled (retention
    trims then), on a 10 s grid; statistics held back by their one-a-minute rule, on the
    minute. Work left over from a bounded run continues at once.
    """
    if more:
        return now
    newest = statistics.newest
    due = []
    leaving = []
    windowed = (catalog.Aggregate, catalog.Series)  # a series' points change as events leave
    for window_s in {q.window_s for q in ran if isinstance(q, windowed)}:
        oldest = queries.oldest_in_window(source_id, window_s, now)
        if oldest is not None:
            leaves = rollups.bucket(oldest.timestamp(), rollups.MINUTE) + 60 + window_s
            leaving.append(dt.datetime.fromtimestamp(leaves, dt.UTC))
    if leaving:
        due.append(_on_grid(max(min(leaving), now + MIN_FOLLOWUP), WINDOW_GRID_S))
    if newest is not None and newest > now - rollup_store.SETTLE:
        due.append(_on_grid(newest + rollup_store.SETTLE + dt.timedelta(seconds=1), SETTLE_GRID_S))
    if statistics.due is not None:
        due.append(_on_grid(statistics.due, WINDOW_GRID_S))
    return min(due) if due else None


def _on_grid(at: dt.datetime, grid_s: int) -> dt.datetime:
    """The first grid point at or after ``at``."""
    return dt.datetime.fromtimestamp(math.ceil(at.timestamp() / grid_s) * grid_s, dt.UTC)


def refresh_blocks(source_id: str, now: dt.datetime, *, deleted: bool) -> list[catalog.Query]:
    """Refresh every block bound to a source; returns the queries they ran (for follow-ups)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    bound = (
        store.client()
        .collection(blocks.BLOCKS)
        .where(filter=FieldFilter("dataSourceId", "==", source_id))
        .stream(retry=store.retry())
    )
    results = blocks.Results(source_id, now)
    ran = []
    for snap in bound:
        query = _refresh_one(snap, source_id, results, now, deleted)
        if query is not None:
            ran.append(query)
    return ran


def _refresh_one(snap, source_id: str, results, now: dt.datetime, deleted: bool):
    """Write one block's refresh unless a newer refresh or write got there first, or the block
    was rebound to another source meanwhile."""
    from google.api_core import exceptions as gexc

    db = store.client()
    for _ in range(3):
        record = snap.to_dict()
        if record.get("dataSourceId") != source_id:
            return None  # rebound: the other source's refresh owns it now
        stored_at = record.get("refreshedAt")
        if stored_at is not None and stored_at > now:
            return None  # a later refresh has written it already
        if deleted:
            update, query = {"status": blocks.SOURCE_DELETED, "message": None}, None
        else:
            update, query = blocks.refreshed(record, results)
        update["refreshedAt"] = now
        try:
            snap.reference.update(update, option=db.write_option(last_update_time=snap.update_time))
            return query
        except (gexc.FailedPrecondition, gexc.NotFound):
            snap = snap.reference.get(retry=store.retry())
            if not snap.exists:
                return None
    return None
