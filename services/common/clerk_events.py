"""Clerk webhook payloads to Firestore records, and the version rules between them. Pure.

Event shapes: https://clerk.com/docs/webhooks/overview (``{data, object, type, timestamp}``);
``data`` has the same shape as the Backend API's objects, which backfill reuses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from services.common.store import is_document_id, is_storable

USERS = "users"
ORGANIZATIONS = "organizations"
MEMBERSHIPS = "memberships"

_KINDS: dict[str, tuple[str, Literal["upsert", "delete"]]] = {
    "user.created": (USERS, "upsert"),
    "user.updated": (USERS, "upsert"),
    "user.deleted": (USERS, "delete"),
    "organization.created": (ORGANIZATIONS, "upsert"),
    "organization.updated": (ORGANIZATIONS, "upsert"),
    "organization.deleted": (ORGANIZATIONS, "delete"),
    "organizationMembership.created": (MEMBERSHIPS, "upsert"),
    "organizationMembership.updated": (MEMBERSHIPS, "upsert"),
    "organizationMembership.deleted": (MEMBERSHIPS, "delete"),
}

# Owners of data sources (docs/ingest.md): deleting these deletes the sources they own.
_OWNER_PREFIX = {USERS: "user", ORGANIZATIONS: "org"}

# Clerk's times are Unix milliseconds. Firestore stores 64-bit signed integers: a larger one
# would fail at write time, on every retry, instead of being refused as malformed.
MAX_TIME_MS = 2**63 - 1


class MalformedEvent(ValueError):
    """A signed payload that does not have the shape Clerk documents."""


@dataclass(frozen=True, order=True)
class Version:
    """An object's version: Clerk's ``updated_at``, then the envelope ``timestamp`` (ms)."""

    updated_at: int
    event_timestamp: int

    def to_record(self) -> dict[str, int]:
        return {"updatedAt": self.updated_at, "eventTimestamp": self.event_timestamp}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Version | None:
        if not record:
            return None
        return cls(int(record["updatedAt"]), int(record["eventTimestamp"]))


@dataclass(frozen=True)
class Change:
    """What one event asks of one document."""

    collection: str
    doc_id: str
    action: Literal["upsert", "delete"]
    record: dict[str, Any] | None
    version: Version | None

    @property
    def owner(self) -> str | None:
        """The data-source owner this change deletes, if any."""
        prefix = _OWNER_PREFIX.get(self.collection)
        return f"{prefix}:{self.doc_id}" if prefix and self.action == "delete" else None


def change_from_event(envelope: Any) -> Change | None:
    """The change a webhook event asks for; None for event types Inlet does not store."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("type"), str):
        raise MalformedEvent("event has no type")
    kind = _KINDS.get(envelope["type"])
    if kind is None:
        return None
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent("event has no data object")
    timestamp = envelope.get("timestamp")
    event_ts = 0 if timestamp is None else time_ms(timestamp, "timestamp")
    return change_from_object(kind[0], kind[1], data, event_ts)


def change_from_object(
    collection: str, action: Literal["upsert", "delete"], data: dict[str, Any], event_ts: int
) -> Change:
    """A change from a Clerk object (webhook ``data`` or a Backend API list item)."""
    doc_id = data.get("id")
    if not is_document_id(doc_id):
        raise MalformedEvent("object has no valid id")
    if action == "delete":
        return Change(collection, doc_id, "delete", None, None)
    version = Version(time_ms(data.get("updated_at"), "updated_at"), event_ts)
    record = _RECORDS[collection](data)
    return Change(collection, doc_id, "upsert", record, version)


def time_ms(value: Any, name: str) -> int:
    """A Clerk time: a JSON integer of Unix milliseconds, from 0 to 2**63 - 1.

    Not a bool, a float (``1e30`` or ``1.5``), a string or an integer beyond 64 bits: a version
    that cannot be compared or stored exactly is a malformed event (400), never a 500.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIME_MS:
        raise MalformedEvent(f"{name} is not a time in Unix milliseconds")
    return value


def _optional_time_ms(value: Any, name: str) -> int | None:
    return None if value is None else time_ms(value, name)


def user_record(data: dict[str, Any]) -> dict[str, Any]:
    """The stored user: never ``private_metadata`` or ``unsafe_metadata``."""
    addresses = [
        e
        for e in data.get("email_addresses") or []
        if isinstance(e, dict) and e.get("email_address")
    ]
    primary_id = data.get("primary_email_address_id")
    primary = next((e for e in addresses if e.get("id") == primary_id), None)
    if primary is None and addresses:
        primary = addresses[0]
    email = primary["email_address"] if primary else None
    first, last = _text(data.get("first_name")), _text(data.get("last_name"))
    username = _text(data.get("username"))
    return {
        "id": data["id"],
        "email": email,
        "emails": [e["email_address"] for e in addresses],
        "firstName": first,
        "lastName": last,
        "displayName": display_name(first, last, username, email),
        "username": username,
        "imageUrl": _text(data.get("image_url")) or _text(data.get("profile_image_url")),
        **_metadata(data.get("public_metadata")),
        "createdAt": _optional_time_ms(data.get("created_at"), "created_at"),
        "updatedAt": time_ms(data.get("updated_at"), "updated_at"),
        "deleted": False,
    }


def organization_record(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "name": _text(data.get("name")),
        "slug": _text(data.get("slug")),
        "imageUrl": _text(data.get("image_url")) or _text(data.get("logo_url")),
        **_metadata(data.get("public_metadata")),
        "createdAt": _optional_time_ms(data.get("created_at"), "created_at"),
        "updatedAt": time_ms(data.get("updated_at"), "updated_at"),
        "deleted": False,
    }


def membership_record(data: dict[str, Any]) -> dict[str, Any]:
    org = data.get("organization") if isinstance(data.get("organization"), dict) else {}
    user = data.get("public_user_data") if isinstance(data.get("public_user_data"), dict) else {}
    org_id, user_id = org.get("id"), user.get("user_id")
    if not isinstance(org_id, str) or not isinstance(user_id, str):
        raise MalformedEvent("membership has no organization id or user id")
    return {
        "id": data["id"],
        "orgId": org_id,
        "userId": user_id,
        "role": _text(data.get("role")),
        **_metadata(data.get("public_metadata")),
        "createdAt": _optional_time_ms(data.get("created_at"), "created_at"),
        "updatedAt": time_ms(data.get("updated_at"), "updated_at"),
    }


_RECORDS = {USERS: user_record, ORGANIZATIONS: organization_record, MEMBERSHIPS: membership_record}


def display_name(
    first: str | None, last: str | None, username: str | None, email: str | None
) -> str:
    """First and last name, else username, else email; never "None", "null" or blanks."""
    full = " ".join(part for part in (first, last) if part)
    return full or username or email or ""


@dataclass(frozen=True)
class Decision:
    apply: bool
    reason: str  # why not, when not


def decide(stored: dict[str, Any] | None, change: Change) -> Decision:
    """Whether a change may replace what is stored (docs/clerk-sync.md, "Order and duplicates").

    A tombstone is terminal; a deletion wins whatever its time; otherwise the newer version wins
    and an equal or older one is acknowledged without being applied.
    """
    if stored is not None and stored.get("deleted"):
        return Decision(False, "tombstoned")
    if change.action == "delete":
        return Decision(True, "")
    stored_version = Version.from_record(stored.get("version")) if stored else None
    if (
        stored_version is not None
        and change.version is not None
        and change.version <= stored_version
    ):
        return Decision(False, "stale")
    return Decision(True, "")


def _text(value: Any) -> str | None:
    """A display string: None, blanks and the literal words "None"/"null" read as absent."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return None if not value or value.lower() in ("none", "null", "undefined") else value


def _metadata(value: Any) -> dict[str, Any]:
    """Public metadata as a Firestore map; what Firestore cannot hold (arrays of arrays, maps
    nested past 20 levels, 64-bit overflow) is kept whole as JSON text instead."""
    metadata = value if isinstance(value, dict) else {}
    if is_storable(metadata):
        return {"publicMetadata": metadata}
    return {"publicMetadata": None, "publicMetadataJson": json.dumps(metadata)}
