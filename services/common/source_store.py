"""Data sources in Firestore: the records every service reads, deletion and the purge.

Layout (docs/ingest.md): ``sources/{id}`` holds the source and its sealed signing keys; each
source's events and rollups live in its own subcollections, so one source's monotonically
increasing receive times cap only that source's write rate. An event's document is also its
idempotency record (ingest/receive.py ``store_event``); ``idempotency`` holds the key records
of Inlet versions before that, until they expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.common import store
from services.common.admin_keys import AdminPrincipal
from services.common.auth import Principal
from services.common.contention import Contended, retry_contended
from services.common.errors import NotFound

if TYPE_CHECKING:
    from services.common.crypto import Keyring

SOURCES = "sources"
EVENTS = "events"
IDEMPOTENCY = "idempotency"  # key records of older versions: read until they expire
# How long an idempotency key names its first event (docs/ingest.md "Idempotency").
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
# The fields ``trim_event`` decides by (besides the size retention's chunking reads).
TRIMMED_READS = ["receivedAt", "size", "bodySha256", "head", "latestUntil"]
ROLLUPS = "rollups"
ROLLUP_STATE = "rollup_state"
AUDIT = "audit"
# The delivery inspector's bounded ring of refusals (ingest/deliveries.py). Not "deliveries":
# collection-group rules (TTL, index exemptions) would then also apply to clerk-sync's records.
DELIVERY_RING = "delivery_ring"
RATE_LEASES = "rate_leases"  # a second's rate-limit budget (ingest/limits.py)
# Events refused only by the schema, kept for replay (ingest/quarantine.py), and the count of
# those dropped past the bound.
QUARANTINE = "quarantine"
QUARANTINE_STATE = "quarantine_state"
# Clerk's users and organizations as clerk-sync keeps them; a deleted one is a tombstone.
USERS = "users"
ORGANIZATIONS = "organizations"
# The rollup state goes first: a fold still running commits only against the state it read,
# so once the state is gone no bucket can be written again (module query.rollup_store).
SUBCOLLECTIONS = (
    ROLLUP_STATE,
    EVENTS,
    IDEMPOTENCY,
    ROLLUPS,
    DELIVERY_RING,
    RATE_LEASES,
    QUARANTINE,
    QUARANTINE_STATE,
)
AUDIT_RETENTION = dt.timedelta(days=365)


def stored_events(source_id: str):
    """A source's events without the tombstones (``trim_event``): for counting them."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    events = source_ref(source_id).collection(EVENTS)
    return events.where(filter=FieldFilter("receivedAt", ">=", _EPOCH))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def trim_event(batch, snap, now: dt.datetime) -> None:
    """Take a retained event out of the source's history (retention), in ``batch``.

    ``snap`` carries at least ``receivedAt``, ``bodySha256``, ``head`` and ``latestUntil``. An
    event that heads its key's chain (``store_event``) while a key window is still open stays
    as a tombstone, collected by TTL when the window closes: without it, a repeat of the key
    would be stored again. A tombstone keeps the key, the body's digest and the pointer to a
    newer generation; everything else goes, ``receivedAt`` first: ordered queries skip a
    document without it, so a tombstone is invisible to every reader but dedupe. Both writes
    are guarded on the document as read, so a concurrent
    reuse of the key (which points the head at a new generation) is never undone.
    """
    from google.cloud import firestore

    record = snap.to_dict() or {}
    guard = store.client().write_option(last_update_time=snap.update_time)
    own_until = record["receivedAt"] + IDEMPOTENCY_WINDOW
    until = max(own_until, record.get("latestUntil") or own_until)
    heads_chain = "bodySha256" in record and "head" not in record  # not an older version's
    if not heads_chain or until <= now:
        batch.delete(snap.reference, option=guard)
        return
    stripped = {
        name: firestore.DELETE_FIELD
        for name in (
            "receivedAt",
            "signedAt",
            "size",
            "body",
            "keyId",
            "scheme",
            "originallyReceivedAt",
        )
    }
    batch.update(
        snap.reference,
        {**stripped, "keyUntil": own_until, "expireAt": until},
        option=guard,
    )


PURGE_BATCH = 400
# Purge only once no instance can still hold the source's keys in its cache (30 s, ingest/keys.py)
# and no refresh that started before the deletion can still be folding (its storage budget).
PURGE_AFTER = dt.timedelta(seconds=store.TASK_STORAGE_BUDGET_S + 60)
# A source id is ``src_`` + 20 random hex + a 12-hex keyed check (a truncated HMAC of the random
# part), so the receiver refuses ids it did not mint before any lookup or cache (docs/ingest.md).
# Ids minted before the check carry none: ``src_`` + 20 hex ("legacy"), accepted only if listed.
_SOURCE_ID = re.compile(r"src_[0-9a-f]{20}(?:[0-9a-f]{12})?")
_RANDOM_HEX = 20
_CHECK_HEX = 12
_CHECK_PURPOSE = b"inlet source id check v1"


def is_source_id(value: str) -> bool:
    """Whether ``value`` has the shape of a source id (checked or legacy); says nothing of the
    check itself, which needs the key (``SourceIds.recognised``)."""
    return _SOURCE_ID.fullmatch(value) is not None  # not match + "$": that allows a final "\n"


class SourceIds:
    """Mints source ids and recognises the ones this deployment minted, without Firestore.

    The check key is derived from each key-encryption key in ``SOURCE_KEK``: ids are minted
    under the current one and recognised under any listed one, so putting a new KEK first keeps
    old ids valid for as long as the old KEK stays listed (as its sealed secrets need anyway).
    """

    def __init__(self, check_keys: tuple[bytes, ...], legacy: frozenset[str] = frozenset()):
        if not check_keys:
            raise ValueError("at least one check key is required")
        # Keyed once: each check copies a keyed state instead of setting up HMAC again.
        self._macs = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in check_keys)
        self._legacy = legacy

    @classmethod
    def from_keyring(cls, keyring: Keyring, legacy: tuple[str, ...] = ()) -> SourceIds:
        return cls(keyring.derive(_CHECK_PURPOSE), frozenset(legacy))

    @staticmethod
    def is_legacy(value: str) -> bool:
        return len(value) == 4 + _RANDOM_HEX and is_source_id(value)

    def new(self) -> str:
        random_part = secrets.token_hex(_RANDOM_HEX // 2)
        return f"src_{random_part}{self._check(self._macs[0], random_part)}"

    def recognised(self, value: str) -> bool:
        """Minted here (its check verifies) or a listed legacy id. Constant-time per key."""
        if len(value) != 4 + _RANDOM_HEX + _CHECK_HEX or not is_source_id(value):
            return value in self._legacy
        random_part, check = value[4 : 4 + _RANDOM_HEX], value[4 + _RANDOM_HEX :]
        found = False
        for mac in self._macs:
            found |= hmac.compare_digest(self._check(mac, random_part), check)
        return found

    @staticmethod
    def _check(keyed: hmac.HMAC, random_part: str) -> str:
        mac = keyed.copy()
        mac.update(random_part.encode())
        return mac.hexdigest()[:_CHECK_HEX]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def source_ref(source_id: str):
    return store.client().collection(SOURCES).document(source_id)


def owned(principal: Principal, source_id: str, *, allow_deleted: bool = False):
    """The caller's source snapshot; someone else's (or a missing one) is a 404, decided before
    anything else of the source is read."""
    return _fetch(source_id, principal.owner, allow_deleted=allow_deleted)


def readable(caller: Principal | AdminPrincipal, source_id: str):
    """A source the caller may query: its own (``owned``), or any live source for an admin API
    key, which is deployment-wide (docs/query.md). A 404 otherwise, before anything else."""
    owner = None if isinstance(caller, AdminPrincipal) else caller.owner
    return _fetch(source_id, owner, allow_deleted=False)


def _fetch(source_id: str, owner: str | None, *, allow_deleted: bool):
    """The source's snapshot when it exists, belongs to ``owner`` (any owner when None) and is
    live (or ``allow_deleted``); else a 404 that says nothing of which rule refused it."""
    if not is_source_id(source_id):
        raise NotFound("no such source")
    snap = source_ref(source_id).get(retry=store.retry())
    if not snap.exists or (owner is not None and snap.get("owner") != owner):
        raise NotFound("no such source")
    if snap.get("deleted") and not allow_deleted:
        raise NotFound("no such source")
    return snap


def change_owned(
    principal: Principal,
    source_id: str,
    change: Callable[[Any], tuple[dict[str, Any], dict[str, Any]] | None],
    *,
    first: Any = None,
) -> tuple[Any, dict[str, Any] | None]:
    """Update the caller's source as ``change(snapshot)`` decides: ``(fields, audit entry)``,
    or None to write nothing. The update is conditional on the document as read and carries its
    audit entry in the same commit; a concurrent change (a rotation, a deletion) makes it read
    the source again and decide again, under the one contention policy. ``first`` is a
    snapshot already read by the caller. Returns the snapshot decided on and the fields written.
    """
    from google.api_core import exceptions as gexc

    db = store.client()
    read = [first] if first is not None else []

    def attempt() -> tuple[Any, dict[str, Any] | None]:
        snap = read.pop() if read else owned(principal, source_id)
        decided = change(snap)
        if decided is None:
            return snap, None
        fields, audit = decided
        batch = db.batch()
        batch.update(
            snap.reference, fields, option=db.write_option(last_update_time=snap.update_time)
        )
        batch.set(db.collection(AUDIT).document(), audit)
        try:
            batch.commit(retry=store.retry())
        except gexc.FailedPrecondition:
            raise Contended from None  # changed since it was read: read it again
        return snap, fields

    return retry_contended(attempt, message="the source is being changed concurrently, retry")


def audit_entry(action: str, actor: str, source_id: str, **details: Any) -> dict[str, Any]:
    at = now()
    return {
        "action": action,
        "actor": actor,
        "sourceId": source_id,
        "at": at,
        "expireAt": at + AUDIT_RETENTION,
        **details,
    }


def write_audit(action: str, actor: str, source_id: str, **details: Any) -> None:
    db = store.client()
    db.collection(AUDIT).document().set(
        audit_entry(action, actor, source_id, **details), retry=store.retry()
    )


def owner_deleted(user_id: str, org_id: str | None) -> bool:
    """Whether Clerk has deleted the caller or its organization (clerk-sync left a tombstone).

    A session token outlives its user by up to its expiry; a deleted owner must not create a
    source that the deletion's cleanup has already passed over. One batched read.
    """
    db = store.client()
    refs = [db.collection(USERS).document(user_id)]
    if org_id:
        refs.append(db.collection(ORGANIZATIONS).document(org_id))
    return any(
        snap.exists and snap.get("deleted") is True
        for snap in db.get_all(refs, field_paths=["deleted"], retry=store.retry())
    )


def mark_deleted(source_id: str, actor: str) -> bool:
    """Stop accepting events at once; the purge removes the data later. True if newly deleted."""
    from google.api_core import exceptions as gexc

    db = store.client()
    ref = source_ref(source_id)

    def attempt() -> bool:
        snap = ref.get(retry=store.retry())
        if not snap.exists or snap.get("deleted"):
            return False
        batch = db.batch()
        batch.update(
            ref,
            {"deleted": True, "deletedAt": now(), "keys": []},
            option=db.write_option(last_update_time=snap.update_time),
        )
        batch.set(db.collection(AUDIT).document(), audit_entry("source.deleted", actor, source_id))
        try:
            batch.commit(retry=store.retry())
        except gexc.FailedPrecondition:
            raise Contended from None  # changed under us (a rotation): look again
        return True

    return retry_contended(attempt, message="the source is being changed concurrently, retry")


def delete_owned(owner: str, actor: str) -> list[str]:
    """Delete every live source of an owner (a deleted Clerk user or organization)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (
        store.client()
        .collection(SOURCES)
        .where(filter=FieldFilter("owner", "==", owner))
        .where(filter=FieldFilter("deleted", "==", False))
    )
    deleted = []
    for snap in query.stream(retry=store.retry()):
        if mark_deleted(snap.id, actor):
            deleted.append(snap.id)
    return deleted


def purge(source_id: str, max_docs: int = 5000) -> tuple[bool, int]:
    """Delete a deleted source's events, idempotency records, rollups, delivery ring and
    quarantine in batches, at most ``max_docs``. Safe to run again after any failure; returns
    (nothing left, deleted count)."""
    ref = source_ref(source_id)
    removed = 0
    for name in SUBCOLLECTIONS:
        removed += _delete_matching(ref.collection(name), max_docs - removed)
        if removed >= max_docs:
            return False, removed
    ref.update({"purgedAt": now()}, retry=store.retry())
    return True, removed


def _delete_matching(query, budget: int) -> int:
    """Delete what ``query`` matches, a batch at a time, at most ``budget`` documents."""
    db = store.client()
    removed = 0
    while removed < budget:
        docs = list(query.limit(min(PURGE_BATCH, budget - removed)).select([]).stream())
        if not docs:
            break
        batch = db.batch()
        for doc in docs:
            batch.delete(doc.reference)
        batch.commit(retry=store.retry())
        removed += len(docs)
    return removed


def pending_purges(limit: int = 20) -> list[str]:
    """Deleted sources whose data has not been purged yet, once no instance can still hold
    their keys in its cache (so no event can land after the purge)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (
        store.client()
        .collection(SOURCES)
        .where(filter=FieldFilter("deleted", "==", True))
        .where(filter=FieldFilter("purgedAt", "==", None))
        .where(filter=FieldFilter("deletedAt", "<", now() - PURGE_AFTER))
        .order_by("deletedAt")
        .limit(limit)
    )
    return [snap.id for snap in query.stream(retry=store.retry())]


# -- the quarantine's bound ------------------------------------------------------------------------
# At most max(retention, QUARANTINE_FLOOR) events are kept per source (docs/ingest.md
# "Quarantine and replay"). Ingest writes one document per quarantined event and asks for a
# "quarantine" refresh now and then (ingest/quarantine.py); the refresh task drops the
# overflow, oldest first.
QUARANTINE_FLOOR = 10_000
QUARANTINE_TRIM_BATCH = 400  # deletes per commit, with the counter's Increment


def quarantine_cap(retention: int) -> int:
    return max(retention, QUARANTINE_FLOOR)


def trim_quarantine_once(source_id: str, cap: int) -> tuple[int, bool]:
    """Drop the oldest kept events beyond ``cap``, one bounded batch, and count them in
    ``quarantine_state/state.dropped`` in the same commit. Returns (dropped, more).

    The size comes from a count() aggregation (one read per 1,000 documents), so keeping an
    event stays one write. Each delete is conditional on the document as listed: a concurrent
    trim, a replay or the same key quarantined again makes the commit fail whole, so nothing is
    counted twice; the caller's next round lists again.
    """
    from google.api_core import exceptions as gexc
    from google.cloud import firestore

    db = store.client()
    kept = source_ref(source_id).collection(QUARANTINE)
    (count,) = kept.count().get(retry=store.retry())[0]
    excess = int(count.value) - cap
    if excess <= 0:
        return 0, False
    oldest = kept.order_by("receivedAt").order_by("__name__").select([])
    docs = list(oldest.limit(min(excess, QUARANTINE_TRIM_BATCH)).stream(retry=store.retry()))
    if not docs:
        return 0, False
    batch = db.batch()
    for doc in docs:
        batch.delete(doc.reference, option=db.write_option(last_update_time=doc.update_time))
    state = source_ref(source_id).collection(QUARANTINE_STATE).document("state")
    batch.set(state, {"dropped": firestore.Increment(len(docs)), "droppedAt": now()}, merge=True)
    try:
        batch.commit(retry=store.retry())
    except (gexc.FailedPrecondition, gexc.NotFound):
        return 0, True  # changed under us: list again
    return len(docs), excess > len(docs)


def quarantine_dropped(source_id: str) -> int:
    """How many kept events the bound has dropped from the source's quarantine."""
    snap = (
        source_ref(source_id)
        .collection(QUARANTINE_STATE)
        .document("state")
        .get(field_paths=["dropped"], retry=store.retry())
    )
    return int(snap.get("dropped") or 0) if snap.exists else 0
