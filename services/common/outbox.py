"""Coalesced refresh scheduling with a Firestore outbox (SPEC section 2, "Refresh scheduling").

A "refresh pending" marker per source and one-second bucket is written before the task is
enqueued, so a failed enqueue loses nothing: ``sweep`` re-enqueues old markers, and the refresh
handler deletes the markers it has served. Within one instance a bucket costs one marker write
and one enqueue however many events arrive in it; across instances the marker's must-not-exist
precondition decides who enqueues, because the tasks emulator does not refuse repeated names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time

from services.common import logs, store, tasks
from services.common.config import TaskSettings

MARKERS = "refresh_pending"
BUCKET_S = 1
SWEEP_AFTER = dt.timedelta(minutes=1)
REENQUEUE_AFTER = dt.timedelta(minutes=10)  # enqueued but never served: the task was lost
GIVE_UP_AFTER = dt.timedelta(days=1)

_recent_lock = threading.Lock()
_recent: dict[tuple[str, str], int] = {}  # (source id, reason) -> last bucket this instance took


def task_id(source_id: str, reason: str, bucket: int, attempt: str = "") -> str:
    # A hashed prefix spreads task names (Cloud Tasks slows on sequential names).
    base = f"{source_id}-{reason}-{bucket}{attempt}"
    return f"{hashlib.sha256(base.encode()).hexdigest()[:8]}-{base}"


def schedule_refresh(settings: TaskSettings, source_id: str, reason: str = "event") -> None:
    """Make sure one refresh of the source runs just after the current bucket closes.

    Never raises for a Tasks failure: the marker stays and the sweep retries it.
    """
    bucket = int(time.time()) // BUCKET_S
    key = (source_id, reason)
    with _recent_lock:
        if _recent.get(key) == bucket:
            return
        if len(_recent) > 10_000:
            _recent.clear()  # only this second's entries matter
        _recent[key] = bucket
    from google.api_core import exceptions as gexc

    db = store.client()
    marker = db.collection(MARKERS).document(f"{source_id}_{reason}_{bucket}")
    now = dt.datetime.now(dt.UTC)
    try:
        marker.create(
            {
                "sourceId": source_id,
                "reason": reason,
                "bucket": bucket,
                "createdAt": now,
                # Optimistic, so the usual path costs one write; a failed enqueue clears it.
                "enqueuedAt": now,
                "expireAt": now + GIVE_UP_AFTER,
            },
            retry=store.retry(),
        )
    except gexc.AlreadyExists:
        return  # another instance owns this bucket
    except store.storage_errors() as err:
        # The event is stored already; let the next event of this window try again.
        with _recent_lock:
            _recent.pop(key, None)
        logs.warning(
            "refresh marker not written", sourceId=source_id, error_type=type(err).__name__
        )
        return
    run_at = dt.datetime.fromtimestamp((bucket + 1) * BUCKET_S, dt.UTC)
    if not _enqueue(settings, source_id, reason, task_id(source_id, reason, bucket), run_at):
        _mark(marker, None)


def _enqueue(settings, source_id: str, reason: str, name: str, run_at: dt.datetime) -> bool:
    try:
        tasks.enqueue(settings, name, {"sourceId": source_id, "reason": reason}, run_at)
    except Exception as err:  # an outage of Cloud Tasks must not fail the event
        logs.warning(
            "refresh enqueue failed; the sweep will retry",
            sourceId=source_id,
            error_type=type(err).__name__,
        )
        return False
    return True


def _mark(marker, enqueued_at: dt.datetime | None) -> None:
    """Best effort: if this write is lost, the sweep re-enqueues after REENQUEUE_AFTER."""
    with contextlib.suppress(*store.storage_errors()):
        marker.update({"enqueuedAt": enqueued_at}, retry=store.retry())


def sweep(settings: TaskSettings, limit: int = 500) -> tuple[dict[str, int], set[str]]:
    """Re-enqueue refreshes whose marker is old: never enqueued, or enqueued and never served.

    Returns the counts and the ids of the sources that had old markers.
    """
    from google.cloud.firestore_v1.base_query import FieldFilter

    db = store.client()
    now = dt.datetime.now(dt.UTC)
    stale = (
        db.collection(MARKERS)
        .where(filter=FieldFilter("createdAt", "<", now - SWEEP_AFTER))
        .order_by("createdAt")
        .limit(limit)
    )
    counts = {"reenqueued": 0, "dropped": 0, "failed": 0}
    sources: set[str] = set()
    for snap in stale.stream(retry=store.retry()):
        marker = snap.to_dict()
        sources.add(marker["sourceId"])
        if marker["createdAt"] < now - GIVE_UP_AFTER:
            snap.reference.delete()
            counts["dropped"] += 1
            logs.warning("refresh marker dropped after a day", sourceId=marker["sourceId"])
            continue
        enqueued = marker.get("enqueuedAt")
        if enqueued is not None and enqueued > now - REENQUEUE_AFTER:
            continue
        minute = int(now.timestamp()) // 60
        name = task_id(marker["sourceId"], marker["reason"], marker["bucket"], f"-s{minute}")
        ok = _enqueue(settings, marker["sourceId"], marker["reason"], name, now)
        if ok:
            _mark(snap.reference, now)
        counts["reenqueued" if ok else "failed"] += 1
    return counts, sources


def complete(source_id: str, served_at: dt.datetime) -> int:
    """Delete the source's markers created before a refresh started (the consumer's side)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    db = store.client()
    done = 0
    query = db.collection(MARKERS).where(filter=FieldFilter("sourceId", "==", source_id)).limit(500)
    batch = db.batch()
    for snap in query.stream(retry=store.retry()):
        if snap.get("createdAt") <= served_at:
            batch.delete(snap.reference)
            done += 1
    if done:
        batch.commit(retry=store.retry())
    return done
