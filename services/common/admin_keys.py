"""Admin API keys: deployment-wide bearer keys for the team's own backends (docs/query.md, "Across
services").

A key reads ``inlet_ak_<id>_<secret>``: 16 hex digits of id, 64 of secret. Only the SHA-256 of
the secret is stored, in ``admin_keys/{id}``, and it is compared in constant time. Each instance
caches what it read of a key for ``CACHE_TTL_S``, so a revocation stops a key on every instance
within 30 s while a busy backend costs no Firestore read per request. ``lastUsedAt`` is written
at most once a minute per key across all instances: the write is guarded by the update time read
with a ``lastUsedAt`` over a minute old, so of the instances that saw the same old value only the
first one's write lands (Firestore sustains about one write per second per document).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from services.common import logs, store
from services.common.errors import NotFound, Unauthorized

COLLECTION = "admin_keys"
PREFIX = "inlet_ak_"
CACHE_TTL_S = 25.0  # below the promised 30 s, leaving room for the read that refreshes it
CACHE_MAX_KEYS = 1024  # ids cached per instance, including ids that do not exist
LAST_USED_EVERY = dt.timedelta(minutes=1)
MAX_NAME = 100
_TOKEN = re.compile(r"inlet_ak_([0-9a-f]{16})_([0-9a-f]{64})")
_ID = re.compile(r"[0-9a-f]{16}")
# Hashed in place of a missing key's, so an unknown id costs the same compare as a known one.
_NO_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class AdminKey:
    """A stored key as ``list`` shows it: never its secret or its hash."""

    id: str
    name: str
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AdminKey:
        return cls(
            id=record["id"],
            name=record.get("name") or "",
            created_at=record.get("createdAt"),
            last_used_at=record.get("lastUsedAt"),
            revoked_at=record.get("revokedAt"),
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse(token: str) -> tuple[str, str]:
    """The (id, secret) of a well-formed key; anything else is a 401, never a 500."""
    found = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if found is None:
        raise Unauthorized("invalid admin API key")
    return found[1], found[2]


def looks_like_admin_key(token: str) -> bool:
    """Whether a bearer token is meant as an admin key (so it is never read as a JWT)."""
    return token.startswith(PREFIX)


def create(name: str) -> tuple[AdminKey, str]:
    """A new key and its token; the token is shown once and cannot be recovered."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a key's name must be 1-{MAX_NAME} characters")
    key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    at = _now()
    record = {
        "id": key_id,
        "name": name,
        "secretHash": _hash(secret),
        "createdAt": at,
        "lastUsedAt": None,
        "revokedAt": None,
    }
    # create(), not set(): a (vanishingly unlikely) repeated id fails instead of replacing a key.
    store.client().collection(COLLECTION).document(key_id).create(record, retry=store.retry())
    return AdminKey.from_record(record), f"{PREFIX}{key_id}_{secret}"


def list_keys() -> list[AdminKey]:
    """Every key, revoked ones included, oldest first."""
    snaps = store.client().collection(COLLECTION).stream(retry=store.retry())
    keys = [AdminKey.from_record(snap.to_dict()) for snap in snaps]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(keys, key=lambda k: (k.created_at or epoch, k.id))


def revoke(key_id: str) -> AdminKey:
    """Revoke a key for good; NotFound when there is no such key. Revoking twice keeps the
    first time."""
    from google.api_core import exceptions as gexc

    if not _ID.fullmatch(key_id):
        raise NotFound(f"no admin API key {key_id!r}")
    ref = store.client().collection(COLLECTION).document(key_id)
    snap = ref.get(retry=store.retry())
    if not snap.exists:
        raise NotFound(f"no admin API key {key_id!r}")
    if snap.get("revokedAt") is None:
        try:
            ref.update({"revokedAt": _now()}, retry=store.retry())
        except gexc.NotFound:
            raise NotFound(f"no admin API key {key_id!r}") from None
        snap = ref.get(retry=store.retry())
    return AdminKey.from_record(snap.to_dict())


@dataclass(frozen=True)
class AdminPrincipal:
    """A caller holding an admin API key: deployment-wide, acting for no user or tenant."""

    key_id: str
    name: str
    kind: ClassVar[str] = "admin_key"  # Principal.kind is "clerk_session"


@dataclass
class _Entry:
    """What one instance last read of one key id."""

    fetched: float  # monotonic
    secret_hash: str | None  # None: no such key
    name: str = ""
    revoked: bool = False
    last_used_at: dt.datetime | None = None
    update_time: Any = None  # the document's update time when read: the lastUsedAt guard


class AdminKeyVerifier:
    """Checks admin keys against Firestore through a short per-instance cache."""

    def __init__(
        self,
        *,
        ttl_s: float = CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        self._loading: dict[str, threading.Lock] = {}

    def verify(self, token: str) -> AdminPrincipal:
        """The principal of a valid, unrevoked key; Unauthorized for anything else."""
        key_id, secret = parse(token)
        entry = self._entry(key_id)
        # Always one constant-time compare, known id or not.
        matches = hmac.compare_digest(_hash(secret), entry.secret_hash or _NO_HASH)
        if not matches or entry.secret_hash is None or entry.revoked:
            raise Unauthorized("invalid admin API key")
        self._touch(key_id, entry)
        return AdminPrincipal(key_id=key_id, name=entry.name)

    def _entry(self, key_id: str) -> _Entry:
        entry = self._fresh(key_id)
        if entry is not None:
            return entry
        with self._lock:
            loading = self._loading.setdefault(key_id, threading.Lock())
        with loading:  # one read per key per instance when the cache expires under load
            entry = self._fresh(key_id)
            if entry is None:
                entry = self._read(key_id)
                with self._lock:
                    if len(self._cache) >= CACHE_MAX_KEYS:
                        self._cache.clear()  # crude, but bounded: bogus ids cannot grow it
                    self._cache[key_id] = entry
            with self._lock:
                self._loading.pop(key_id, None)
        return entry

    def _fresh(self, key_id: str) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is not None and self._monotonic() - entry.fetched < self._ttl:
            return entry
        return None

    def _read(self, key_id: str) -> _Entry:
        snap = store.client().collection(COLLECTION).document(key_id).get(retry=store.retry())
        fetched = self._monotonic()
        if not snap.exists:
            return _Entry(fetched, None)
        record = snap.to_dict()
        stored_hash = record.get("secretHash")
        return _Entry(
            fetched,
            stored_hash if isinstance(stored_hash, str) else None,
            name=str(record.get("name") or ""),
            revoked=record.get("revokedAt") is not None,
            last_used_at=record.get("lastUsedAt"),
            update_time=snap.update_time,
        )

    def _touch(self, key_id: str, entry: _Entry) -> None:
        """Record use at most once a minute per key across instances; never fails a request."""
        from google.api_core import exceptions as gexc

        at = self._now()
        with self._lock:
            if entry.last_used_at is not None and at - entry.last_used_at < LAST_USED_EVERY:
                return
            guard, entry.last_used_at = entry.update_time, at  # this instance tries once
        db = store.client()
        try:
            result = (
                db.collection(COLLECTION)
                .document(key_id)
                .update({"lastUsedAt": at}, option=db.write_option(last_update_time=guard))
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return  # another instance recorded it (or the key changed): nothing to add
        except store.storage_errors() as err:
            logs.warning(
                "admin key lastUsedAt not recorded", keyId=key_id, error=type(err).__name__
            )
            return
        with self._lock:
            entry.update_time = result.update_time


_verifier: AdminKeyVerifier | None = None
_verifier_lock = threading.Lock()


def verifier() -> AdminKeyVerifier:
    """The process's verifier, created on first use."""
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = AdminKeyVerifier()
        return _verifier
