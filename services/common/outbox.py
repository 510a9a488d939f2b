"""Coalesced refresh scheduling with a Firestore outbox (docs/ingest.md, "Refresh scheduling").

A "refresh pending" marker per source and one-second bucket is written before the task is
enqueued, so a failed enqueue loses nothing: ``sweep`` re-enqueues old markers, and the refresh
handler deletes the markers it has served. Within one instance a bucket costs one marker write
and one enqueue however many events arrive in it; across instances the marker's must-not-exist
precondition decides who enqueues, because the tasks emulator does not refuse repeated names.

Layout, for scale: ``refresh_pending/{source}_{reason}_{bucket}`` with a ``shard`` field
(``SHARDS`` values, from the source id). Every field that increases across sources (``createdAt``,
``enqueuedAt``, ``bucket``) is exempted from single-field indexing, and the sweep's queries run
per shard on composite indexes that lead with ``shard``: Firestore's ~500 writes/s ceiling for
an increasing indexed value then applies per shard, not to the whole collection (see
``services/common/indexes.py`` and the README's capacity model). One source writes at most one
marker per reason and second, far below any per-source ceiling.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import secrets
import threading
import time

from services.common import logs, store, tasks
from services.common.config import TaskSettings
from services.common.errors import StorageUnavailable

MARKERS = "refresh_pending"
SHARDS = 16  # about 16 x 500 markers/s across sources; the sweep runs 3 queries per shard
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


def shard_of(source_id: str) -> int:
    """The source's marker shard: stable, spread evenly by hashing the id."""
    return int.from_bytes(hashlib.sha256(source_id.encode()).digest()[:4], "big") % SHARDS


def schedule_refresh(settings: TaskSettings, source_id: str, reason: str = "event") -> None:
    """Make sure one refresh of the source runs just after the current bucket closes.

    Never raises for a Tasks failure alone: the marker stays and the sweep retries it. Raises
    ``StorageUnavailable`` when neither the marker nor the task could be recorded, since nothing
    durable would then remember the refresh: the caller answers 503 and its retry (a partner's
    duplicate, a task's redelivery) schedules again.
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
    claim = secrets.token_hex(8)  # tells this call's own committed create from another's
    try:
        marker.create(
            {
                "sourceId": source_id,
                "reason": reason,
                "bucket": bucket,
                "shard": shard_of(source_id),
                "claim": claim,
                "createdAt": now,
                # Optimistic, so the usual path costs one write; a failed enqueue clears it.
                "enqueuedAt": now,
                "dueAt": None,  # due when its bucket closes (a follow-up's is later)
                "expireAt": now + GIVE_UP_AFTER,
            },
            retry=store.retry(),
        )
        marked = True
    except gexc.AlreadyExists:
        # Another instance owns this bucket, unless the create was retried after its first
        # attempt had committed (its answer lost): then the marker carries our claim.
        if not _claimed(marker, claim):
            return
        marked = True
    except store.storage_errors() as err:
        marked = False  # the task name is deterministic: enqueueing without the marker is safe
        logs.warning(
            "refresh marker not written", sourceId=source_id, error_type=type(err).__name__
        )
    run_at = dt.datetime.fromtimestamp((bucket + 1) * BUCKET_S, dt.UTC)
    if _enqueue(settings, source_id, reason, task_id(source_id, reason, bucket), run_at):
        return
    if marked:
        _mark(marker, None)  # the sweep re-enqueues it after a minute
        return
    with _recent_lock:  # neither marker nor task: the next attempt of this window retries
        _recent.pop(key, None)
    raise StorageUnavailable("the refresh could not be scheduled, retry")


def schedule_followup(settings: TaskSettings, source_id: str, due: dt.datetime) -> None:
    """Make sure one refresh of the source runs at ``due`` (a follow-up: a window moving on,
    events settling). Recorded like an event's refresh, so a failed enqueue is not lost: the
    sweep re-enqueues the marker for its due time. Callers put ``due`` on a grid, so the
    refreshes of one burst ask for the same marker and task (created once, must-not-exist)."""
    from google.api_core import exceptions as gexc

    due_s = int(due.timestamp())
    marker = store.client().collection(MARKERS).document(f"{source_id}_due_{due_s}")
    now = dt.datetime.now(dt.UTC)
    try:
        marker.create(
            {
                "sourceId": source_id,
                "reason": "followup",
                "bucket": due_s,
                "shard": shard_of(source_id),
                "claim": secrets.token_hex(8),
                "createdAt": now,
                "dueAt": due,
                # "Enqueued for": a marker served late is lost only REENQUEUE_AFTER past due.
                "enqueuedAt": due,
                "expireAt": max(now, due) + GIVE_UP_AFTER,
            },
            retry=store.retry(),
        )
    except gexc.AlreadyExists:
        return  # this follow-up is recorded and enqueued already
    except store.storage_errors() as err:
        # Without the marker the follow-up could be lost: the refresh answers 503 and its
        # retry schedules again.
        raise StorageUnavailable("the follow-up could not be recorded, retry") from err
    name = task_id(source_id, "due", due_s)
    if not _enqueue(settings, source_id, "followup", name, due):
        _mark(marker, None)  # the sweep re-enqueues it


def _claimed(marker, claim: str) -> bool:
    """Whether the existing marker is this call's own. If that cannot be read, assume so: an
    extra enqueue under the bucket's deterministic task name costs at most one refresh."""
    try:
        snap = marker.get(field_paths=["claim"], retry=store.retry())
    except store.storage_errors():
        return True
    return snap.exists and snap.get("claim") == claim


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
    """Best effort: if this write is lost, the sweep re-enqueues after REENQUEUE_AFTER. A marker
    gone meanwhile was served (a refresh completed it): there is nothing left to mark."""
    from google.api_core import exceptions as gexc

    with contextlib.suppress(gexc.NotFound, *store.storage_errors()):
        marker.update({"enqueuedAt": enqueued_at}, retry=store.retry())


def sweep(settings: TaskSettings, limit: int = 200) -> tuple[dict[str, int], set[str]]:
    """Re-enqueue the refreshes still owed: markers never enqueued (after a minute) and markers
    enqueued but never served (after ten). One task per source and reason; stops at the first
    enqueue failure, since Cloud Tasks is then down and the next sweep will try again. Each shard
    is queried on its own (``limit`` is shared out between them).

    Returns the counts and the ids of the sources with markers older than a minute.
    """
    from google.cloud.firestore_v1.base_query import FieldFilter

    markers = store.client().collection(MARKERS)
    now = dt.datetime.now(dt.UTC)
    per_shard = max(1, math.ceil(limit / SHARDS))
    counts = {"reenqueued": 0, "dropped": 0, "failed": 0}
    sources: set[str] = set()
    owed: dict[tuple[str, str], list] = {}
    for shard in range(SHARDS):
        in_shard = markers.where(filter=FieldFilter("shard", "==", shard))
        old = in_shard.where(filter=FieldFilter("createdAt", "<", now - SWEEP_AFTER))
        for snap in old.order_by("createdAt").limit(per_shard).stream(retry=store.retry()):
            sources.add(snap.get("sourceId"))
            if snap.get("createdAt") < now - GIVE_UP_AFTER:
                snap.reference.delete(retry=store.retry())
                counts["dropped"] += 1
                logs.warning("refresh marker dropped after a day", sourceId=snap.get("sourceId"))
        never = old.where(filter=FieldFilter("enqueuedAt", "==", None)).order_by("createdAt")
        lost = in_shard.where(filter=FieldFilter("enqueuedAt", "<", now - REENQUEUE_AFTER))
        for query in (never.limit(per_shard), lost.order_by("enqueuedAt").limit(per_shard)):
            for snap in query.stream(retry=store.retry()):
                if snap.get("createdAt") >= now - GIVE_UP_AFTER:
                    owed.setdefault((snap.get("sourceId"), snap.get("reason")), []).append(snap)
    minute = int(now.timestamp()) // 60
    for (source_id, reason), snaps in owed.items():
        # A follow-up is owed at its due time, never sooner; the earliest owed one stands for all
        # (the refresh it runs schedules whatever comes next).
        due = [(s.to_dict() or {}).get("dueAt") for s in snaps]
        run_at = max(now, min(due)) if None not in due else now
        name = task_id(source_id, reason, snaps[0].get("bucket"), f"-s{minute}")
        if not _enqueue(settings, source_id, reason, name, run_at):
            counts["failed"] += 1
            break
        for snap in snaps:
            _mark(snap.reference, run_at)
        counts["reenqueued"] += 1
    return counts, sources


def complete(source_id: str, served_at: dt.datetime) -> int:
    """Delete the source's markers created before a refresh started (the consumer's side),
    except follow-ups due later: they stand for a task still to run."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    db = store.client()
    done = 0
    query = db.collection(MARKERS).where(filter=FieldFilter("sourceId", "==", source_id)).limit(500)
    batch = db.batch()
    for snap in query.stream(retry=store.retry()):
        due = (snap.to_dict() or {}).get("dueAt")
        if snap.get("createdAt") <= served_at and (due is None or due <= served_at):
            batch.delete(snap.reference)
            done += 1
    if done:
        batch.commit(retry=store.retry())
    return done
