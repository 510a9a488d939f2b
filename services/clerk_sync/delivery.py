"""One verified Clerk delivery: parse, map, apply; what a malformed one leaves behind.

The failure rules (docs/clerk-sync.md): after a good signature, a body that is not strict JSON,
not a
Clerk event, or an object Firestore refuses is a 400, and the delivery record (status ``failed``)
is the only write, so Clerk's dashboard and an operator can see it; Svix may retry it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.common import clerk_store as sync
from services.common import strict_json
from services.common.clerk_events import MalformedEvent, change_from_event
from services.common.errors import BadRequest


def deliver(
    svix_id: str, body: bytes, on_sources_deleted: Callable[[list[str]], None] | None = None
) -> sync.Outcome:
    """Apply one delivery whose signature verified; raises BadRequest after recording a failure.

    ``on_sources_deleted`` hears the ids of the data sources the delivery deleted (their owner
    was deleted in Clerk), so their blocks can be refreshed to ``source-deleted``."""
    envelope: Any = None
    try:
        envelope = strict_json.parse(body)
        change = change_from_event(envelope)
    except (BadRequest, MalformedEvent) as err:
        sync.record_failure(svix_id, _event_type(envelope), type(err).__name__)
        raise BadRequest("payload is not a Clerk event", code="malformed_event") from None
    event_type = envelope["type"]
    try:
        return sync.deliver(svix_id, event_type, change, f"clerk:{event_type}", on_sources_deleted)
    except sync.Unstorable:
        sync.record_failure(svix_id, event_type, "Unstorable")
        raise BadRequest("the event's object cannot be stored", code="unstorable") from None


def _event_type(envelope: Any) -> str:
    """The type to record, as far as the payload tells it."""
    found = envelope.get("type") if isinstance(envelope, dict) else None
    return found if isinstance(found, str) and found else "unknown"
