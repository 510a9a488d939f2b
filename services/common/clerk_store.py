"""Applying Clerk changes to Firestore: once per delivery, in version order, durably.

Each delivery is one optimistic transaction of two RPCs. One read fetches the delivery record and
the stored object together; the pure version rules decide; one atomic commit writes the object's
new state and the delivery's outcome, with preconditions that fail if anything read has changed:
- the delivery record must still be absent (or still be the failed attempt that was read), so of
  20 concurrent copies of one delivery exactly one commits and the others find it done;
- the object must still carry the update time that was read, so concurrent events of one object
  cannot interleave: the loser reads again and decides again (docs/clerk-sync.md).
No lock is held between the read and the commit, so duplicates never wait on each other (the
emulator times out contended lock-based transactions, docs/local-stack.md), and nothing is
written
until the outcome is final: a crash leaves nothing to clean up, and Svix's retry starts afresh.

Backfill (``apply_change``) runs the same steps without a delivery record, so objects read from
Clerk's Backend API obey exactly the version rules webhooks do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.common import source_store, store
from services.common.clerk_events import MEMBERSHIPS, Change, decide
from services.common.contention import Contended, retry_contended

DELIVERIES = "deliveries"
# Memberships are removed on delete (docs/clerk-sync.md); their version and tombstone live here, so
# a late update cannot bring a deleted membership back.
MEMBERSHIP_VERSIONS = "membership_versions"
DELIVERY_RETENTION = dt.timedelta(days=30)
FINAL = ("processed", "ignored")


class Unstorable(Exception):
    """Firestore refuses the object as it is (a permanent condition: retrying cannot help)."""


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | ignored
    reason: str = ""
    duplicate: bool = False


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def deliver(
    svix_id: str,
    event_type: str,
    change: Change | None,
    actor: str,
    on_sources_deleted: Callable[[list[str]], None] | None = None,
) -> Outcome:
    """Apply one verified delivery exactly once; raises on storage failure (answer 503).

    ``on_sources_deleted`` hears the ids of the data sources this delivery deleted (their owner
    was deleted in Clerk), so their blocks can be refreshed to ``source-deleted``."""
    delivery = store.client().collection(DELIVERIES).document(svix_id)
    return _settle(change, delivery, event_type, actor, on_sources_deleted)


def apply_change(change: Change) -> Outcome:
    """Apply one change outside any delivery (backfill): same version rules, nothing recorded."""
    return _settle(change, None, "", "backfill")


def record_failure(svix_id: str, event_type: str, error: str) -> None:
    """The only write for a signed but malformed delivery."""
    store.client().collection(DELIVERIES).document(svix_id).set(
        _delivery_record(event_type, "failed", error, 1, now()), retry=store.retry()
    )


def _settle(
    change: Change | None,
    delivery,
    event_type: str,
    actor: str,
    on_sources_deleted: Callable[[list[str]], None] | None = None,
) -> Outcome:
    from google.api_core import exceptions as gexc

    db = store.client()
    received = now()
    owner_cleared = False

    def attempt() -> Outcome:
        nonlocal owner_cleared
        refs = ([delivery] if delivery else []) + (_object_refs(db, change) if change else [])
        read = {snap.reference.path: snap for snap in db.get_all(refs, retry=store.retry())}
        seen = read[delivery.path] if delivery else None
        if seen is not None and seen.exists and seen.get("status") in FINAL:
            return Outcome(seen.get("status"), seen.get("error") or "", duplicate=True)
        if change is not None and change.owner and not owner_cleared:
            # Deleting a user or organization deletes its data sources (docs/ingest.md), before
            # the delivery can be recorded as done.
            deleted = source_store.delete_owned(change.owner, actor)
            if deleted and on_sources_deleted is not None:
                on_sources_deleted(deleted)
            owner_cleared = True
        batch = db.batch()
        if change is None:
            outcome = Outcome("ignored", "unknown event type")
        else:
            outcome = _stage(db, batch, change, read)
        if seen is not None:
            _stage_delivery(db, batch, delivery, seen, event_type, outcome, received)
        try:
            batch.commit(retry=store.retry())
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
            raise Contended from None  # something that was read has changed: read, decide again
        except (gexc.InvalidArgument, ValueError, OverflowError) as err:
            # Refused by Firestore, or by its wire encoding (UnicodeEncodeError is a ValueError;
            # an integer beyond 64 bits is a ValueError or OverflowError): permanent, not a 500.
            raise Unstorable(type(err).__name__) from None
        return outcome

    return retry_contended(attempt, message="the object is being changed concurrently, retry")


def _object_refs(db, change: Change) -> list:
    refs = [db.collection(change.collection).document(change.doc_id)]
    if change.collection == MEMBERSHIPS:
        refs.append(db.collection(MEMBERSHIP_VERSIONS).document(change.doc_id))
    return refs


def _stage(db, batch, change: Change, read: dict[str, Any]) -> Outcome:
    """Decide with the pure rules and add the guarded writes to ``batch``."""
    target, *ledger = _object_refs(db, change)
    guard = read[(ledger[0] if ledger else target).path]  # the document carrying the version
    stored = guard.to_dict() if guard.exists else None
    decision = decide(stored, change)
    if not decision.apply:
        return Outcome("ignored", decision.reason)
    at = now()
    upsert = change.action == "upsert"
    if upsert:
        record = {**change.record, "version": change.version.to_record(), "syncedAt": at}
    else:
        # Tombstone: every personal field removed, terminal (Clerk never reuses ids).
        record = {"id": change.doc_id, "deleted": True, "deletedAt": at}
    if ledger:
        # A membership is removed on delete; its guarded ledger keeps the version and tombstone.
        if upsert:
            batch.set(target, record)
            record = {"version": record["version"], "deleted": False}
        else:
            batch.delete(target)
            record = {**record, "version": (stored or {}).get("version")}
    _replace(db, batch, guard.reference, guard, record)
    return Outcome("processed")


def _replace(db, batch, ref, snap, record: dict[str, Any]) -> None:
    """Write the whole document, only if it is still as it was read."""
    if not snap.exists:
        batch.create(ref, record)
        return
    from google.cloud import firestore

    dropped = {key: firestore.DELETE_FIELD for key in snap.to_dict() if key not in record}
    option = db.write_option(last_update_time=snap.update_time)
    batch.update(ref, {**record, **dropped}, option=option)


def _stage_delivery(db, batch, ref, seen, event_type, outcome, received: dt.datetime) -> None:
    """The delivery's outcome, committed with the change it describes."""
    if seen.exists:  # a failed attempt, retried: take it over unless someone else just did
        attempts = int(seen.get("attempts") or 1) + 1
        record = _delivery_record(event_type, outcome.status, outcome.reason, attempts, received)
        batch.update(ref, record, option=db.write_option(last_update_time=seen.update_time))
    else:
        record = _delivery_record(event_type, outcome.status, outcome.reason, 1, received)
        batch.create(ref, record)


def _delivery_record(
    event_type: str, status: str, error: str, attempts: int, received: dt.datetime
) -> dict[str, Any]:
    return {
        "type": event_type,
        "status": status,
        "error": error or None,
        "attempts": attempts,
        "receivedAt": received,
        "finishedAt": now(),
        "expireAt": received + DELIVERY_RETENTION,
    }
