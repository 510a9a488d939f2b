"""``POST /tasks/refresh``: fold rollups, trim retention, refresh blocks, schedule follow-ups.

Safe to run twice or concurrently: rollup changes are guarded by a precondition (module
``rollup_store``), block writes never replace a later refresh's, and the outbox markers deleted
at the end are only those created before this refresh started reading.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from typing import Any

from services.common import logs, outbox, source_store, store, tasks
from services.common.config import TaskSettings
from services.common.errors import BadRequest
from services.query import blocks, catalog, queries, rollup_store, rollups

REASONS = ("event", "followup", "delete")
# One run does bounded work (a Cloud Tasks attempt, and our storage budget, are finite); what is
# left is carried on by a follow-up task right away.
MAX_ROUNDS = 20
MIN_FOLLOWUP = dt.timedelta(seconds=60)


def parse(body: dict[str, Any]) -> tuple[str, str]:
    source_id, reason = body.get("sourceId"), body.get("reason", "event")
    if set(body) - {"sourceId", "reason"}:
        raise BadRequest("a refresh takes only sourceId and reason")
    if not isinstance(source_id, str) or not source_store.is_source_id(source_id):
        raise BadRequest("sourceId must be a source id")
    if reason not in REASONS:
        raise BadRequest(f"reason must be one of {', '.join(REASONS)}")
    return source_id, reason


def refresh(settings: TaskSettings, source_id: str, now: dt.datetime) -> dict[str, Any]:
    """One refresh of a source; every answer is a 2xx-worthy outcome (a deleted source too)."""
    snap = source_store.source_ref(source_id).get(retry=store.retry())
    if not snap.exists or snap.get("deleted"):
        blocks.refresh_source(source_id, now, deleted=True)
        outbox.complete(source_id, now)
        return {"status": blocks.SOURCE_DELETED}
    more = catch_up(source_id, int(snap.get("retention")), now)
    newest = record_statistics(source_id, snap)
    ran = blocks.refresh_source(source_id, now, deleted=False)
    due = next_refresh(source_id, ran, now, more, newest)
    if due is not None:
        schedule(settings, source_id, due)
    outbox.complete(source_id, now)
    return {"status": "ok", "blocks": len(ran), "more": more, "followupAt": due}


def catch_up(source_id: str, retention: int, now: dt.datetime) -> bool:
    """Fold settled events and trim beyond retention within a bounded number of rounds.
    True when work is left for the next run."""
    for _ in range(MAX_ROUNDS):
        _, folding = rollup_store.fold_once(source_id, now)
        _, trimming = rollup_store.trim_once(source_id, retention)
        if not (folding or trimming):
            return False
    return True


def record_statistics(source_id: str, snap) -> dt.datetime | None:
    """``eventCount`` and ``lastEventAt`` on the source document, so listing sources reads one
    document each (two reads here, once per refresh, instead of two per source per listing).
    Returns when the newest event arrived."""
    from google.cloud import firestore

    events = source_store.source_ref(source_id).collection(source_store.EVENTS)
    (count,) = events.count().get(retry=store.retry())[0]
    newest = list(
        events.order_by("receivedAt", direction=firestore.Query.DESCENDING)
        .select(["receivedAt"])
        .limit(1)
        .stream(retry=store.retry())
    )
    last = newest[0].get("receivedAt") if newest else None
    stats = {"eventCount": int(count.value), "lastEventAt": last}
    stored = snap.to_dict() or {}
    if any(stored.get(k, "unset") != v for k, v in stats.items()):
        from google.api_core import exceptions as gexc

        # A source document removed since it was read has no statistics left to keep; the next
        # refresh reads it missing and answers as for a deleted source. Not a 500.
        with contextlib.suppress(gexc.NotFound):
            snap.reference.update(stats, retry=store.retry())
    return last


def next_refresh(
    source_id: str,
    ran: list[catalog.Query],
    now: dt.datetime,
    more: bool,
    newest: dt.datetime | None,
) -> dt.datetime | None:
    """When this source needs a refresh without a new event, or None.

    A windowed aggregate changes when its oldest counted event leaves the window, that is when
    the window's start passes that event's minute: never sooner than ``MIN_FOLLOWUP`` from now.
    Events too recent to fold ask for one run once they have settled (retention trims then).
    Work left over from a bounded run continues at once.
    """
    if more:
        return now
    due = []
    leaving = []
    for window_s in {q.window_s for q in ran if isinstance(q, catalog.Aggregate)}:
        oldest = queries.oldest_in_window(source_id, window_s, now)
        if oldest is not None:
            leaves = rollups.bucket(oldest.timestamp(), rollups.MINUTE) + 60 + window_s
            leaving.append(dt.datetime.fromtimestamp(leaves, dt.UTC))
    if leaving:
        due.append(max(min(leaving), now + MIN_FOLLOWUP))
    if newest is not None and newest > now - rollup_store.SETTLE:
        due.append(newest + rollup_store.SETTLE + dt.timedelta(seconds=1))
    return min(due) if due else None


def schedule(settings: TaskSettings, source_id: str, due: dt.datetime) -> None:
    """A follow-up task at ``due``; named by source and second, so repeats coalesce."""
    second = int(due.timestamp())
    base = f"{source_id}-followup-{second}"
    name = f"{hashlib.sha256(base.encode()).hexdigest()[:8]}-{base}"
    try:
        tasks.enqueue(settings, name, {"sourceId": source_id, "reason": "followup"}, due)
    except Exception as err:  # the next event's refresh schedules again
        logs.warning("follow-up enqueue failed", sourceId=source_id, error_type=type(err).__name__)
