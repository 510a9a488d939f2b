"""Applying Clerk changes to Firestore: once per delivery, in version order, durably.

Two mechanisms keep the SPEC's promises (section 1):
- a delivery is *claimed* by creating ``deliveries/{svixId}`` with a must-not-exist
  precondition, so of 20 concurrent copies of one delivery exactly one applies it; the others
  see it processed (200) or still in progress (409, Svix retries);
- each change is applied in a transaction that reads the stored version and writes the document
  and the delivery's outcome together, so concurrent events of one object cannot interleave.

Backfill (``apply_change``) runs the same transaction without a delivery record, so objects read
from Clerk's Backend API obey exactly the version rules webhooks do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.clerk_sync.events import MEMBERSHIPS, Change, decide
from services.common import source_store, store
from services.common.errors import Conflict

DELIVERIES = "deliveries"
TOMBSTONES = "tombstones"  # memberships are removed on delete; this keeps them from returning
DELIVERY_RETENTION = dt.timedelta(days=30)
# A claim older than this is abandoned (its instance died) and may be taken over. Longer than
# one request's storage budget, so a live claim is never taken.
CLAIM_LEASE = dt.timedelta(seconds=15)
FINAL = ("processed", "ignored")


class DeliveryInProgress(Conflict):
    """Another instance is applying this delivery right now; Svix will retry."""

    code = "delivery_in_progress"

    def __init__(self) -> None:
        super().__init__("this delivery is being processed", headers={"Retry-After": "5"})


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | ignored
    reason: str = ""
    duplicate: bool = False


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def deliver(svix_id: str, event_type: str, change: Change | None, actor: str) -> Outcome:
    """Apply one verified delivery exactly once; raises on storage failure (answer 503)."""
    db = store.client()
    ref = db.collection(DELIVERIES).document(svix_id)
    previous = _claim(ref, event_type)
    if previous is not None:
        return previous
    if change is None:
        _finish(ref, "ignored", "unknown event type")
        return Outcome("ignored", "unknown event type")
    try:
        if change.owner:
            # Deleting a user or organization deletes its data sources (SPEC section 2).
            source_store.delete_owned(change.owner, actor)
        return _apply(db, ref, change)
    except Exception as err:
        _finish_quietly(ref, "failed", type(err).__name__)
        raise


def record_failure(svix_id: str, event_type: str, error: str) -> None:
    """The only write for a signed but malformed delivery."""
    store.client().collection(DELIVERIES).document(svix_id).set(
        {**_delivery(event_type), "status": "failed", "error": error, "finishedAt": now()},
        retry=store.retry(),
    )


def _delivery(event_type: str) -> dict[str, Any]:
    received = now()
    return {
        "type": event_type,
        "receivedAt": received,
        "claimedAt": received,
        "expireAt": received + DELIVERY_RETENTION,
    }


def _claim(ref, event_type: str) -> Outcome | None:
    """Claim the delivery, or return how it already ended. Raises DeliveryInProgress."""
    from google.api_core import exceptions as gexc

    try:
        ref.create({**_delivery(event_type), "status": "processing", "error": None, "attempts": 1})
        return None
    except gexc.AlreadyExists:
        pass
    snap = ref.get(retry=store.retry())
    if not snap.exists:
        return _claim(ref, event_type)
    record = snap.to_dict()
    if record.get("status") in FINAL:
        return Outcome(record["status"], record.get("error") or "", duplicate=True)
    if record.get("status") == "processing" and record["claimedAt"] > now() - CLAIM_LEASE:
        raise DeliveryInProgress()
    # A failed delivery may be retried; take it over unless someone else just did.
    from google.cloud import firestore

    try:
        ref.update(
            {"status": "processing", "claimedAt": now(), "attempts": firestore.Increment(1)},
            option=store.client().write_option(last_update_time=snap.update_time),
        )
    except gexc.FailedPrecondition:
        raise DeliveryInProgress() from None
    return None


def apply_change(change: Change) -> Outcome:
    """Apply one change outside any delivery (backfill): same version rules, nothing recorded."""
    return _apply(store.client(), None, change)


def _apply(db, delivery_ref, change: Change) -> Outcome:
    """Apply a change in one transaction; with a delivery, record its outcome in the same one."""
    from google.cloud import firestore

    target = db.collection(change.collection).document(change.doc_id)
    tombstone = db.collection(TOMBSTONES).document(f"{change.collection}_{change.doc_id}")
    is_membership = change.collection == MEMBERSHIPS

    # Invariant: the stored document only ever moves to a newer version, and never back from a
    # tombstone, whatever the order in which concurrent deliveries commit.
    @firestore.transactional
    def apply_in_transaction(transaction) -> Outcome:
        stored = target.get(transaction=transaction, retry=store.retry())
        current = stored.to_dict() if stored.exists else None
        if (
            is_membership
            and current is None
            and tombstone.get(transaction=transaction, retry=store.retry()).exists
        ):
            current = {"deleted": True}
        decision = decide(current, change)
        if decision.apply:
            _write(transaction, target, tombstone, change)
        outcome = Outcome("processed") if decision.apply else Outcome("ignored", decision.reason)
        if delivery_ref is not None:
            transaction.update(
                delivery_ref,
                {"status": outcome.status, "error": outcome.reason or None, "finishedAt": now()},
            )
        return outcome

    return apply_in_transaction(db.transaction(max_attempts=5))


def _write(transaction, target, tombstone, change: Change) -> None:
    at = now()
    if change.action == "upsert":
        record = {**change.record, "version": change.version.to_record(), "syncedAt": at}
        transaction.set(target, record)
    elif change.collection == MEMBERSHIPS:
        transaction.delete(target)
        transaction.set(tombstone, {"id": change.doc_id, "deletedAt": at})
    else:
        # Tombstone: every personal field removed, terminal (Clerk never reuses ids).
        transaction.set(target, {"id": change.doc_id, "deleted": True, "deletedAt": at})


def _finish(ref, status: str, error: str | None) -> None:
    ref.update({"status": status, "error": error, "finishedAt": now()}, retry=store.retry())


def _finish_quietly(ref, status: str, error: str) -> None:
    """Best effort: when storage is down this fails too, and the claim's lease expires."""
    with contextlib.suppress(Exception):  # the original error is what the caller reports
        _finish(ref, status, error)
