"""Replaying quarantined events against the source's current schema (docs/ingest.md
"Quarantine and replay").

Each kept event that now passes is stored by ``receive.store_event`` under its original
idempotency key, so a key already stored (within its 24 h window) is a duplicate, never a
second event, and leaves the quarantine either way. It is stored with ``receivedAt`` = now and
its first arrival as ``originallyReceivedAt``: the rollups fold events by receive time behind a
cursor (query/rollup_store.py), and an event stored with an old receive time would land behind
it, never folded yet subtracted when trimmed. Stored now, it is an ordinary new event and every
aggregate stays the exact fold of the retained events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from services.common import store, strict_json
from services.common.errors import BadRequest, InletError
from services.ingest import quarantine, receive
from services.ingest.signature import SignedRequest

MAX_EVENTS = 100  # kept events one replay call re-checks (ids given, or the oldest after cursor)
_FIELDS = ("ids", "cursor")


def parse(body: dict[str, Any]) -> tuple[list[str] | None, tuple[dt.datetime, str] | None]:
    """``{ids?, cursor?}``: up to ``MAX_EVENTS`` distinct quarantine ids, or none for the oldest
    kept events (after ``cursor``, the ``nextCursor`` of the previous replay)."""
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise BadRequest(f"a replay takes only ids and cursor, not {', '.join(unknown)}")
    ids = body.get("ids")
    if ids is not None:
        if (
            not isinstance(ids, list)
            or len(ids) > MAX_EVENTS
            or not all(isinstance(i, str) and quarantine.ID.fullmatch(i) for i in ids)
            or len(set(ids)) != len(ids)
        ):
            raise BadRequest(
                f"ids must be a list of at most {MAX_EVENTS} distinct quarantine ids (q_…)"
            )
        if "cursor" in body:
            raise BadRequest("ids and cursor cannot be combined")
    cursor = body.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise BadRequest("cursor must be the nextCursor of a previous replay")
    return ids, quarantine.parse_cursor(cursor)


def replay(
    source: Any, ids: list[str] | None, after: tuple[dt.datetime, str] | None
) -> dict[str, Any]:
    """Re-check kept events (oldest first) and store those that pass; what happened to each.

    ``source`` is the source's snapshot as read by the caller: its schema is the one applied
    (read now, never from a cache that may be 30 s old)."""
    record = source.to_dict() or {}
    contract = None
    if record.get("schema"):
        from services.ingest import contracts  # jsonschema and RE2: only for a schema

        contract = contracts.load(record["schema"])
    refuse_reuse = record.get("provider", "inlet") == "inlet"  # as receive.receive decides
    kept, failed, next_cursor = _kept(source.id, ids, after)
    stored: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for snap in kept:
        entry = snap.to_dict()
        try:
            document = strict_json.parse(entry["body"])
            if contract is not None:
                contract.check(document)
            outcome = receive.store_event(
                source.id,
                _signed(entry),
                entry["body"],
                entry.get("keyId"),
                salt=record.get("eventSalt"),
                refuse_reuse=refuse_reuse,
                originally_received_at=entry["receivedAt"],
            )
        except InletError as refusal:
            if refusal.status >= 500:
                raise
            failed.append({"id": snap.id, **quarantine.violation(refusal)})
            continue
        _release(snap)
        key = entry.get("idempotencyKey")
        item = {"id": snap.id, "eventId": outcome.event_id, "idempotencyKey": key}
        (duplicates if outcome.duplicate else stored).append(item)
    return {
        "stored": stored,
        "duplicates": duplicates,
        "failed": failed,
        "nextCursor": next_cursor,
    }


def _kept(
    source_id: str, ids: list[str] | None, after: tuple[dt.datetime, str] | None
) -> tuple[list[Any], list[dict[str, Any]], str | None]:
    """The kept events to re-check, oldest first; ids no longer kept (replayed, dropped or
    expired) as failures; and the cursor after the last one when more are kept."""
    kept_ref = quarantine.collection(source_id)
    if ids is not None:
        snaps = store.client().get_all([kept_ref.document(i) for i in ids], retry=store.retry())
        found = {snap.id: snap for snap in snaps if snap.exists}
        missing = [
            {
                "id": i,
                "code": "not_quarantined",
                "message": "no such event in the quarantine (replayed, dropped or expired)",
                "pointer": None,
                "keyword": None,
            }
            for i in ids
            if i not in found
        ]
        ordered = sorted(found.values(), key=lambda s: (s.get("receivedAt"), s.id))
        return ordered, missing, None
    query = kept_ref.order_by("receivedAt").order_by("__name__")
    if after is not None:
        at, item_id = after
        query = query.start_after({"receivedAt": at, "__name__": kept_ref.document(item_id)})
    snaps = list(query.limit(MAX_EVENTS + 1).stream(retry=store.retry()))
    page = snaps[:MAX_EVENTS]
    more = len(snaps) > MAX_EVENTS
    cursor = quarantine.encode_cursor(page[-1].get("receivedAt"), page[-1].id) if more else None
    return page, [], cursor


def _signed(entry: dict[str, Any]) -> SignedRequest:
    """The request as verified when it was kept: its scheme, signed time and key."""
    return SignedRequest(
        scheme=entry["scheme"],
        timestamp=int(entry["signedAt"].timestamp()),
        idempotency_key=entry["idempotencyKey"],
        signatures=(),
        headers={},
    )


def _release(snap) -> None:
    """Remove a replayed event from the quarantine, unless the partner sent the key again
    meanwhile (then its newer entry stays, and replays as a duplicate)."""
    from google.api_core import exceptions as gexc

    db = store.client()
    with contextlib.suppress(gexc.FailedPrecondition, gexc.NotFound):
        snap.reference.delete(
            option=db.write_option(last_update_time=snap.update_time), retry=store.retry()
        )
