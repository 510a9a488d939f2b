"""The public shape of a data source (docs/operations.md "Configuration"). Pure: rendering reads no
storage.

``eventCount`` and ``lastEventAt`` are kept on the source document by the query service's
refresh task, so they are as of the last refresh (which follows events within about a second).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# Events per second a source accepts when its record predates rate limits (docs/ingest.md "Rate
# limits"): what one source's events collection sustains in production.
DEFAULT_RATE_LIMIT = 500


def view(record: dict[str, Any], base_url: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """``{id, label, retention, rateLimit, url, eventCount, lastEventAt, createdAt, provider,
    signing, schema, keyId, previousKeyExpiresAt}`` (+ ``secret`` when the record carries one: at
    creation and rotation of an ``inlet``/``hmac`` source only). Records older than providers
    and ed25519 read as ``inlet``/``hmac``; ``schema`` says whether the source has a schema
    contract. ``keyId`` names the current key (the one the delivery inspector reports a partner
    should sign with; null until a provider source's secret is set) and
    ``previousKeyExpiresAt`` when the key it replaced stops verifying (null when none still
    verifies at ``now``)."""
    current, previous_ends = keys_shown(record.get("keys") or [], now or dt.datetime.now(dt.UTC))
    shown = {
        "id": record["id"],
        "label": record["label"],
        "retention": record["retention"],
        "rateLimit": record.get("rateLimit", DEFAULT_RATE_LIMIT),
        "url": f"{base_url.rstrip('/')}/webhooks/inbound/{record['id']}",
        "eventCount": int(record.get("eventCount") or 0),
        "lastEventAt": iso(record.get("lastEventAt")),
        "createdAt": iso(record["createdAt"]),
        "provider": record.get("provider", "inlet"),
        "signing": record.get("signing", "hmac"),
        "schema": record.get("schema") is not None,
        "keyId": current,
        "previousKeyExpiresAt": iso(previous_ends),
    }
    if "secret" in record:
        shown["secret"] = record["secret"]
    return shown


def keys_shown(
    keys: list[dict[str, Any]], now: dt.datetime
) -> tuple[str | None, dt.datetime | None]:
    """The current key's id, and when the previous key's grace ends if it has not ended yet.
    Only ids and times: a key's sealed secret or public key is never shown."""
    current = next((k.get("id") for k in keys if k.get("expiresAt") is None), None)
    ends = [k["expiresAt"] for k in keys if k.get("expiresAt") is not None]
    live = [e for e in ends if e > now]
    return current, max(live) if live else None


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``, as every API answer writes times."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None
