"""Users for the team's apps and backends: ``/v1/me`` and the admin ``/v1/users`` (docs/query.md).

Clerk's webhook keeps ``users/{id}`` in step, but a user can sign in before their
``user.created`` delivery lands. ``me`` then reads the user from Clerk's Backend API
(``GET /v1/users/{id}``) and stores it through ``clerk_store.apply_change``: the very rules the
webhook obeys, so a webhook landing at the same moment is never overwritten by an older copy and
a tombstone is never resurrected. What is answered is read back after the write, so the answer is
whatever won. Concurrent first calls for one user share one Clerk fetch per instance.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.common import clerk_store, logs, store
from services.common.auth import Principal
from services.common.clerk_api import (
    NO_RETRY,
    REQUEST_TIMEOUT_S,
    ClerkAPI,
    ClerkAPIError,
    ClerkAPISettings,
)
from services.common.clerk_events import MEMBERSHIPS, USERS, MalformedEvent, change_from_object
from services.common.config import Env
from services.common.errors import BadRequest, NotFound, UpstreamUnavailable
from services.common.http import page_limit

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
FLIGHT_WAIT_S = 10.0  # a caller waiting on another's Clerk fetch gives up after this
MAX_RETRY_AFTER_S = 300
# Why /v1/me is a 404, so whoever sees it knows what to fix (docs/users.md).
NOT_STORED_FALLBACK_OFF = (
    "no such user: no Clerk webhook (user.created) has stored this user, and the Clerk Backend "
    "API fallback is off (CLERK_SECRET_KEY is unset)"
)
NOT_STORED_CLERK_404 = (
    "no such user: no Clerk webhook (user.created) has stored this user, and Clerk's Backend "
    "API answered 404 for it"
)
# Stored for the version rules and the backfill, not part of a user's answer.
_INTERNAL = ("version", "syncedAt", "publicMetadataJson", "deleted")

T = TypeVar("T")


@dataclass(frozen=True)
class UsersSettings:
    """What the users API needs from the environment (docs/operations.md "Configuration")."""

    clerk: ClerkAPISettings | None  # None (no CLERK_SECRET_KEY): the Clerk fallback is off

    @classmethod
    def from_env(cls, env: Env | None = None) -> UsersSettings:
        return cls(clerk=ClerkAPISettings.from_env(env or Env()))


# --- /v1/me -------------------------------------------------------------------------------------


def me(principal: Principal, settings: UsersSettings) -> dict[str, Any]:
    """The calling user with their memberships; fetched from Clerk when not stored yet.

    NotFound for a tombstoned user, for a user Clerk does not know, and for a missing user when
    the fallback is off; UpstreamUnavailable (503, Retry-After) when Clerk fails or throttles.
    """
    user_id = principal.user_id
    if not store.is_document_id(user_id):
        raise NotFound("no such user")  # a signed `sub` Clerk could not have issued
    record = _read_user(user_id)
    if record is None and settings.clerk is None:
        raise NotFound(NOT_STORED_FALLBACK_OFF)
    if record is None:
        record = _flights.run(user_id, lambda: _fetch_and_store(user_id, settings.clerk))
    if record is None:
        raise NotFound(NOT_STORED_CLERK_404)
    if record.get("deleted"):
        raise NotFound("no such user: this user was deleted in Clerk")
    return {**user_view(record), "memberships": _memberships(user_id)}


def _fetch_and_store(user_id: str, clerk: ClerkAPISettings) -> dict[str, Any] | None:
    """Read the user from Clerk, apply it under the webhook's version rules, read back."""
    try:
        data = _clerk(clerk).get_user(user_id)
    except ClerkAPIError as err:
        # A refused key is an operator's problem, not the caller's: logged, answered as a 503.
        logs.warning("Clerk fallback failed", status=err.status, path="/v1/users/{id}")
        raise UpstreamUnavailable(
            "Clerk's Backend API is unavailable, retry later",
            retry_after_s=_retry_after(err.retry_after),
        ) from None
    if data is None:
        return None  # Clerk answers 404: no such user
    try:
        # Envelope timestamp 0, as for the backfill: between equal updated_at a webhook wins.
        change = change_from_object(USERS, "upsert", data, event_ts=0)
        clerk_store.apply_change(change)
    except (MalformedEvent, clerk_store.Unstorable) as err:
        logs.warning("Clerk fallback returned an unusable user", error=type(err).__name__)
        raise UpstreamUnavailable("Clerk's answer could not be stored, retry later") from None
    return _read_user(user_id)


def _retry_after(seconds: float | None) -> int:
    if seconds is None:
        return 5
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(seconds)))


@functools.lru_cache(maxsize=2)
def _clerk(settings: ClerkAPISettings) -> ClerkAPI:
    """One client per process: no in-request retries, short timeouts."""
    return ClerkAPI(settings, NO_RETRY, timeout=REQUEST_TIMEOUT_S, user_agent="inlet-query")


class _Flights:
    """Single flight: concurrent callers for one key share the first caller's result."""

    @dataclass
    class _Call:
        done: threading.Event
        result: Any = None
        error: BaseException | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Flights._Call] = {}

    def run(self, key: str, work: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = self._Call(threading.Event())
        if not leader:
            if not call.done.wait(FLIGHT_WAIT_S):
                raise UpstreamUnavailable("Clerk's Backend API is slow, retry later")
            if call.error is not None:
                raise call.error
            return call.result
        try:
            call.result = work()
            return call.result
        except BaseException as err:
            call.error = err
            raise
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.done.set()


_flights = _Flights()


# --- Admin: /v1/users/{id}, /v1/users -----------------------------------------------------------


def get_user(user_id: str) -> dict[str, Any]:
    """One stored user with their memberships, or their tombstone; NotFound if never stored."""
    record = _read_user(user_id) if store.is_document_id(user_id) else None
    if record is None:
        raise NotFound("no such user")
    if record.get("deleted"):
        return user_view(record)
    return {**user_view(record), "memberships": _memberships(user_id)}


def list_users(cursor: str | None = None, limit: int | str | None = None) -> dict[str, Any]:
    """A page of stored users in id order, tombstones as tombstones: ``{items, nextCursor}``.

    The cursor is opaque (the last id of the page before); ids are stable and never reused, so
    a user created or deleted while paging neither repeats nor shifts another one.
    """
    size = page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    db = store.client()
    users = db.collection(USERS)
    query = users.order_by(FieldPath.document_id())
    if cursor is not None:
        after = decode_cursor(cursor)
        query = query.where(filter=FieldFilter(FieldPath.document_id(), ">", users.document(after)))
    snaps = list(query.limit(size + 1).stream(retry=store.retry()))
    page = snaps[:size]
    items = [user_view(snap.to_dict() | {"id": snap.id}) for snap in page]
    more = len(snaps) > size
    return {"items": items, "nextCursor": encode_cursor(page[-1].id) if more else None}


# Clerk's ids (``user_`` and base62) are already URL-safe: the cursor is the last id of the
# page before, which openapi.yaml can describe exactly, so any cursor of this shape is a valid
# place to continue from (documented as opaque: clients pass it back, never build it).
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,128}")


def encode_cursor(last_id: str) -> str:
    return last_id


def decode_cursor(cursor: str) -> str:
    """The id a cursor continues after; anything not of a cursor's shape is a 400."""
    if not _CURSOR.fullmatch(cursor) or not store.is_document_id(cursor):
        raise BadRequest("invalid cursor", code="invalid_cursor")
    return cursor


# --- Reads and views ----------------------------------------------------------------------------


def _read_user(user_id: str) -> dict[str, Any] | None:
    snap = store.client().collection(USERS).document(user_id).get(retry=store.retry())
    return snap.to_dict() if snap.exists else None


def _memberships(user_id: str) -> list[dict[str, Any]]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (
        store.client().collection(MEMBERSHIPS).where(filter=FieldFilter("userId", "==", user_id))
    )
    found = [snap.to_dict() for snap in query.stream(retry=store.retry())]
    return sorted(
        ({"id": m["id"], "orgId": m["orgId"], "role": m.get("role")} for m in found),
        key=lambda m: (m["orgId"], m["id"]),
    )


def user_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored user as the API answers it; a tombstone carries no personal data."""
    if record.get("deleted"):
        deleted_at = record.get("deletedAt")
        when = deleted_at.isoformat() if hasattr(deleted_at, "isoformat") else deleted_at
        return {"id": record["id"], "deleted": True, "deletedAt": when}
    view = {key: value for key, value in record.items() if key not in _INTERNAL}
    if record.get("publicMetadata") is None and "publicMetadataJson" in record:
        view["publicMetadata"] = json.loads(record["publicMetadataJson"])
    return {**view, "deleted": False}
