"""Receiving one signed partner event, cheapest checks first (docs/ingest.md's table)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass

from flask import Request

from services.common import source_store, store, strict_json
from services.common.contention import Contended, retry_contended
from services.common.errors import (
    InletError,
    NotFound,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from services.common.group_commit import GroupCommit
from services.common.http import read_body
from services.ingest import signature
from services.ingest.contract_errors import SchemaTooComplex, SchemaViolation
from services.ingest.deliveries import DeliveryRing, newest_key_id
from services.ingest.keys import Entry, KeyCache
from services.ingest.limits import RateLimiter
from services.ingest.quarantine import Quarantine

MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Stored:
    event_id: str
    duplicate: bool


def receive(
    request: Request,
    source_id: str,
    keys: KeyCache,
    ring: DeliveryRing,
    limiter: RateLimiter,
    quarantine: Quarantine,
) -> Stored:
    body = read_body(request, MAX_BODY)  # 1: 413, also for chunked bodies
    signed = signature.parse_headers(request.headers)  # 2: 400 (the scheme, from headers)
    if request.mimetype != "application/json":  # 3: 415
        raise UnsupportedMediaType("Content-Type must be application/json")
    signature.check_timestamp(signed.timestamp, time.time())  # 4: 401 (none for GitHub)
    entry = keys.get(source_id)  # 5: 404 (cached, also when unknown)
    if not entry.found:
        raise NotFound("unknown source")
    key_id = None
    try:  # the source is identified: its partner sees refusals from here on (deliveries.py)
        key_id = matching_key(source_id, signed, body, entry, keys)  # 6: 401
        # 6b: 429 past the source's rate limit: after the signature, so an unsigned flood
        # spends none of a partner's budget; before parsing, so a refusal costs no more.
        limiter.admit(source_id, entry.rate_limit)
        with _creates.arriving():  # a sender may wait for this event to join it (group commit)
            document = strict_json.parse(body)  # 7: 400
            signed = signature.with_event_id(signed, document)  # 7: 400 (Stripe: the event id)
            if entry.contract is not None:
                try:
                    entry.contract.check(document)  # 7b: 422 schema_violation or too complex
                except (SchemaViolation, SchemaTooComplex) as refusal:
                    # Signed, well-formed, refused only by the schema: kept for replay.
                    quarantine.keep(source_id, signed, body, key_id, refusal)
                    raise
            # 8: 200, 8': 422 (inlet sources only: a provider's re-delivery is a duplicate),
            # 9: 202
            stored = store_event(
                source_id,
                signed,
                body,
                key_id,
                salt=entry.event_salt,
                refuse_reuse=entry.provider == "inlet",
            )
    except InletError as refusal:
        if refusal.status < 500:  # a 503 is storage failing: a ring write would fail too
            # Before a key verified (a 401), name the one the partner should sign with.
            tried = key_id or newest_key_id(keys.cached(source_id) or entry)
            ring.record(source_id, refusal.status, refusal.code, signed, len(body), tried)
        raise
    if stored.duplicate:
        ring.record(source_id, 200, "duplicate", signed, len(body), key_id)
    return stored


def matching_key(
    source_id: str, signed: signature.SignedRequest, body: bytes, entry: Entry, keys: KeyCache
) -> str:
    """Step 6: the id of the key that verifies the request, or a 401 saying why none does.

    A mismatch may mean a key set on another instance a moment ago: the entry is reloaded, at
    most once a second per source, before refusing. Every check here is O(keys) and allocation
    light: this is the refusal path a flood of bad signatures takes.
    """
    if not signature.accepts(entry.provider, entry.signing, signed.scheme):
        raise Unauthorized(
            f"this source does not accept {signed.scheme} signatures", code="scheme_not_accepted"
        )
    key_id = signature.matching_key(signed, body, entry.active_keys())
    if key_id is None:
        fresher = keys.reload_after_mismatch(source_id, entry)
        if fresher is not None and fresher.found:
            entry = fresher
            key_id = signature.matching_key(signed, body, entry.active_keys())
        if key_id is None and not entry.keys:
            # A provider source verifies nothing until its secret is set (rotate-secret).
            raise Unauthorized("this source has no secret set yet", code="no_secret_set")
        if key_id is None:
            raise Unauthorized("no signature matches", code="invalid_signature")
    return key_id


def new_event_id() -> str:
    """Random, never monotonic: sequential ids would hotspot one Firestore tablet."""
    return "evt_" + secrets.token_hex(12)


def event_id(salt: bytes | None, source_id: str, key: str) -> str:
    """The id of the event an idempotency key names first: a keyed hash of source and key, so
    ids stay random (no hotspot) and a partner cannot aim them. ``salt`` is the source's own
    ``eventSalt``; sources created before it existed hash with none (their ids are still
    uniformly spread, only predictable to someone who knows the key)."""
    mac = hmac.new(salt or b"", f"{source_id}\0{key}".encode(), hashlib.sha256)
    return "evt_" + mac.hexdigest()[:24]


# Concurrent events on one instance share Firestore RPCs (services/common/group_commit.py).
_creates = GroupCommit(store.client)


def store_event(
    source_id: str,
    signed: signature.SignedRequest,
    body: bytes,
    key_id: str,
    *,
    salt: bytes | None,
    refuse_reuse: bool = True,
    originally_received_at: dt.datetime | None = None,
) -> Stored:
    """Store the event with one document write, or find the one its idempotency key names.

    The event's document is its idempotency record (docs/ingest.md "Idempotency"): its id is
    ``event_id(salt, source, key)``, so a must-not-exist create is the dedupe and, of any number
    of concurrent repeats, exactly one commits. The event keeps the SHA-256 of its body: a
    repeat with the same bytes is a duplicate, one with other bytes is refused (422) and stores
    nothing, as the IETF Idempotency-Key draft says. ``refuse_reuse=False`` (GitHub and Stripe
    sources) answers every repeat as a duplicate: a provider re-renders fields such as Stripe's
    ``pending_webhooks`` when it re-delivers the same event.

    A key reused after its 24 h window stores a new event under a random id, and the first
    event (the chain's head) points at it: ``latest``, ``latestUntil`` and ``latestSha256``. So
    a repeat costs at most one read, and retention keeps a trimmed head as a tombstone while
    any key window it answers for is open (query/rollup_store.py ``trim_once``).
    ``originally_received_at`` is a replayed event's first arrival (ingest/replay.py).
    """
    key = signed.idempotency_key
    body_digest = hashlib.sha256(body).digest()
    if salt is None:  # a source from before one-write events: its old key records still count
        legacy = _legacy.find(source_id, key)
        if legacy is not None:
            return _repeat(legacy[0], legacy[1], body_digest, refuse_reuse)
    events = source_store.source_ref(source_id).collection(source_store.EVENTS)
    head = events.document(event_id(salt, source_id, key))
    tried: set[str] = set()  # the ids this call wrote, in case a retried RPC had landed

    def attempt() -> Stored:
        now = dt.datetime.now(dt.UTC)
        event = {
            "receivedAt": now,
            # GitHub signs no time: its events say when they arrived instead.
            "signedAt": now
            if signed.timestamp is None
            else dt.datetime.fromtimestamp(signed.timestamp, dt.UTC),
            "idempotencyKey": key,
            "bodySha256": body_digest,
            "size": len(body),
            "body": body,
            "keyId": key_id,
            "scheme": signed.scheme,
        }
        if originally_received_at is not None:
            event["originallyReceivedAt"] = originally_received_at
        tried.add(head.id)
        if _creates.create(head, event, retry=store.retry()):
            return Stored(head.id, duplicate=False)
        seen = head.get(retry=store.retry())
        if not seen.exists:
            raise Contended  # trimmed after its window closed, in between: try again
        record = seen.to_dict()
        if record.get("latest") in tried or (
            record.get("receivedAt") == now and record.get("bodySha256") == body_digest
        ):
            return Stored(record.get("latest") or head.id, duplicate=False)  # ours had landed
        live = _live(seen.id, record, now)
        if live is not None:
            return _repeat(live[0], live[1], body_digest, refuse_reuse)
        return _reuse(events, seen, record, event, now, tried)

    return retry_contended(
        attempt, message="idempotency key is contended, retry", code="idempotency_conflict"
    )


def _live(head_id: str, record: dict, now: dt.datetime) -> tuple[str, bytes | None] | None:
    """(event id, body digest) of the event the key names while its window is open, or None.
    The newest generation first: it exists only once the head's own window has closed."""
    if record.get("latestUntil") is not None and record["latestUntil"] > now:
        return record["latest"], record.get("latestSha256")
    received = record.get("receivedAt")
    until = (
        received + source_store.IDEMPOTENCY_WINDOW
        if received is not None
        else record.get("keyUntil")
    )
    if until is not None and until > now:
        return head_id, record.get("bodySha256")
    return None


def _reuse(events, seen, record: dict, event: dict, now: dt.datetime, tried: set[str]) -> Stored:
    """A key reused after its window: a new event under a random id, and the head pointing at
    it, in one commit guarded on the head as read (two writes, only on reuse)."""
    from google.api_core import exceptions as gexc

    db = store.client()
    reuse_id = new_event_id()
    tried.add(reuse_id)
    until = now + source_store.IDEMPOTENCY_WINDOW
    pointer = {"latest": reuse_id, "latestUntil": until, "latestSha256": event["bodySha256"]}
    if "expireAt" in record:
        pointer["expireAt"] = until  # a tombstone head: kept while this generation is open
    batch = db.batch()
    batch.update(seen.reference, pointer, option=db.write_option(last_update_time=seen.update_time))
    batch.create(events.document(reuse_id), {**event, "head": seen.id})
    try:
        batch.commit(retry=store.retry())
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
        raise Contended from None  # a concurrent repeat or trim won: read again
    return Stored(reuse_id, duplicate=False)


def _repeat(event_id: str, first_digest: bytes | None, digest: bytes, refuse_reuse: bool) -> Stored:
    reused = first_digest is not None and not hmac.compare_digest(first_digest, digest)
    if reused and refuse_reuse:
        raise Unprocessable(
            "this idempotency key was used with a different body", code="idempotency_key_reused"
        )
    return Stored(event_id, duplicate=True)


class LegacyKeys:
    """Key records stored the way Inlet did before one-write events (``idempotency/{sha256 of
    key}``), honoured until they expire. Only sources from before then (no ``eventSalt``) can
    have them, and no version writes them any more: once a source's records are gone (TTL
    collects them within about a day of expiring) this instance never reads them again. Until
    then each such event costs one read, and the check for any left one query a minute."""

    MAX_SOURCES = 10_000
    RECHECK = 60.0  # seconds

    def __init__(self) -> None:
        self._left: dict[str, float] = {}  # source id -> when (monotonic) to ask again
        self._lock = threading.Lock()

    def find(self, source_id: str, key: str) -> tuple[str, bytes | None] | None:
        keys = source_store.source_ref(source_id).collection(source_store.IDEMPOTENCY)
        if not self._any_left(source_id, keys):
            return None
        seen = keys.document(hashlib.sha256(key.encode()).hexdigest()).get(retry=store.retry())
        if not seen.exists or seen.get("expireAt") <= dt.datetime.now(dt.UTC):
            return None
        return seen.get("eventId"), (seen.to_dict() or {}).get("bodySha256")

    def _any_left(self, source_id: str, keys) -> bool:
        ask_at = self._left.get(source_id)
        if ask_at == math.inf:
            return False
        if ask_at is None or ask_at <= time.monotonic():
            left = any(True for _ in keys.select([]).limit(1).stream(retry=store.retry()))
            with self._lock:
                while len(self._left) >= self.MAX_SOURCES:
                    self._left.pop(next(iter(self._left)))
                self._left[source_id] = time.monotonic() + self.RECHECK if left else math.inf
            return left
        return True


_legacy = LegacyKeys()
