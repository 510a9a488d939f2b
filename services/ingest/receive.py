"""Receiving one signed partner event, cheapest checks first (docs/ingest.md's table)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
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
from services.common.http import read_body
from services.ingest import signature
from services.ingest.contract_errors import SchemaTooComplex, SchemaViolation
from services.ingest.deliveries import DeliveryRing, newest_key_id
from services.ingest.keys import Entry, KeyCache
from services.ingest.limits import RateLimiter
from services.ingest.quarantine import Quarantine

MAX_BODY = 256 * 1024
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)


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
        document = strict_json.parse(body)  # 7: 400
        signed = signature.with_event_id(signed, document)  # 7: 400 (Stripe: the event's id)
        if entry.contract is not None:
            try:
                entry.contract.check(document)  # 7b: 422 schema_violation or schema_too_complex
            except (SchemaViolation, SchemaTooComplex) as refusal:
                # Signed, well-formed, refused only by the schema: kept for replay (one write).
                quarantine.keep(source_id, signed, body, key_id, refusal)
                raise
        # 8: 200, 8': 422 (inlet sources only: a provider's re-delivery is a duplicate), 9: 202
        stored = store_event(
            source_id, signed, body, key_id, refuse_reuse=entry.provider == "inlet"
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


def store_event(
    source_id: str,
    signed: signature.SignedRequest,
    body: bytes,
    key_id: str,
    *,
    refuse_reuse: bool = True,
    originally_received_at: dt.datetime | None = None,
) -> Stored:
    """Store the event, or find the one its idempotency key already names.

    The key's document keeps the SHA-256 of the first body: a repeat with the same bytes is a
    duplicate, a repeat with other bytes is refused (422) and stores nothing, as the IETF
    Idempotency-Key draft says. Key documents written before the digest was kept carry none;
    their repeats stay duplicates until the key expires (24 h). ``refuse_reuse=False`` (GitHub
    and Stripe sources) answers every repeat as a duplicate: a provider re-renders fields such
    as Stripe's ``pending_webhooks`` when it re-delivers the same event.
    ``originally_received_at`` is a replayed event's first arrival (ingest/replay.py).
    """
    from google.api_core import exceptions as gexc

    db = store.client()
    source = source_store.source_ref(source_id)
    digest = hashlib.sha256(signed.idempotency_key.encode()).hexdigest()
    key_ref = source.collection(source_store.IDEMPOTENCY).document(digest)
    body_digest = hashlib.sha256(body).digest()

    def attempt() -> Stored:
        now = dt.datetime.now(dt.UTC)
        event_id = new_event_id()
        # Lean documents: every field costs encoding time on the hot path. The key itself is in
        # the event; the key document only points at it and says when it expires.
        key_record = {
            "eventId": event_id,
            "bodySha256": body_digest,
            "expireAt": now + IDEMPOTENCY_WINDOW,  # TTL field: garbage collection only
        }
        event = {
            "receivedAt": now,
            # GitHub signs no time: its events say when they arrived instead.
            "signedAt": now
            if signed.timestamp is None
            else dt.datetime.fromtimestamp(signed.timestamp, dt.UTC),
            "idempotencyKey": signed.idempotency_key,
            "size": len(body),
            "body": body,
            "keyId": key_id,
            "scheme": signed.scheme,
        }
        if originally_received_at is not None:
            event["originallyReceivedAt"] = originally_received_at
        # Invariant: one event per (source, idempotency key). The key document is created with a
        # must-not-exist precondition in the same commit as the event, so of any number of
        # concurrent repeats exactly one commits (no read-then-write transaction to contend).
        batch = db.batch()
        batch.create(key_ref, key_record)
        batch.create(source.collection(source_store.EVENTS).document(event_id), event)
        try:
            batch.commit(retry=store.retry())
            return Stored(event_id, duplicate=False)
        except gexc.AlreadyExists:
            pass
        seen = key_ref.get(retry=store.retry())
        if not seen.exists:
            raise Contended  # the key expired and was collected in between: try again
        if seen.get("eventId") == event_id:
            return Stored(event_id, duplicate=False)  # our commit landed; its retry did not
        if seen.get("expireAt") > now:
            first_digest = seen.to_dict().get("bodySha256")
            reused = first_digest is not None and not hmac.compare_digest(first_digest, body_digest)
            if reused and refuse_reuse:
                raise Unprocessable(
                    "this idempotency key was used with a different body",
                    code="idempotency_key_reused",
                )
            return Stored(seen.get("eventId"), duplicate=True)
        # An expired key the TTL sweep has not collected yet: replace it, unless a concurrent
        # request replaced it first (then the next round finds theirs).
        batch = db.batch()
        batch.update(key_ref, key_record, option=db.write_option(last_update_time=seen.update_time))
        batch.create(source.collection(source_store.EVENTS).document(event_id), event)
        try:
            batch.commit(retry=store.retry())
        except (gexc.FailedPrecondition, gexc.AlreadyExists):
            raise Contended from None
        return Stored(event_id, duplicate=False)

    return retry_contended(
        attempt, message="idempotency key is contended, retry", code="idempotency_conflict"
    )
