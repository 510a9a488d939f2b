"""Per-instance cache of each source's verification keys (docs/ingest.md).

Entries live 30 s, so a deletion or the end of a grace period takes effect within 30 s. A
signature mismatch against an entry older than 1 s reloads it (at most once a second per
source), so a freshly rotated secret verifies at once. Ids this deployment did not mint (their
keyed check fails) are refused before any lookup and never enter the cache, so a flood of
random ids costs no Firestore call. Deleted (or never stored) sources with a valid id are
cached apart from live ones, so they cannot evict a live source's keys either.

A key is a sealed secret (opened here, audited once per load) or, for ``signing: ed25519``
sources, a partner's public key stored plainly (loaded once per cache entry).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.common import source_store, store
from services.common.crypto import Keyring, Sealed
from services.ingest import limits
from services.ingest.signature import public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.ingest.contracts import Contract

TTL_S = 30.0
RELOAD_AFTER_S = 1.0
MAX_ENTRIES = 10_000  # live sources; the least recently loaded goes first
MAX_ABSENT = 10_000  # deleted or unknown sources with a valid id, kept apart from live ones
# Compiled schemas take about 15 times their JSON text in heap, and a tenant may give many
# sources a 64 KiB schema: the live entries' schema text is bounded on its own (about 60 MiB of
# compiled schemas), the oldest schema-bearing entry going first. An evicted source reloads on
# its next request (one read and a compile) and loses nothing else.
MAX_CONTRACT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class VerificationKey:
    key_id: str
    secret: str | Ed25519PublicKey  # a signing secret, or an ed25519 source's public key
    expires_at: float | None  # unix seconds; None for the current key

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass
class Entry:
    loaded_at: float  # monotonic
    found: bool
    keys: tuple[VerificationKey, ...] = ()
    reloaded_at: float = field(default=0.0)
    provider: str = "inlet"  # "inlet", "github" or "stripe"
    signing: str = "hmac"  # "hmac" or "ed25519"
    contract: Contract | None = None  # the source's schema, compiled (step 7b)
    rate_limit: int | None = None  # events per second (ingest/limits.py); None for none
    event_salt: bytes | None = None  # keys event ids (receive.event_id); None on older sources

    def active_keys(self) -> list[tuple[str, str | Ed25519PublicKey]]:
        now = time.time()
        return [(k.key_id, k.secret) for k in self.keys if k.active(now)]


_UNKNOWN = Entry(loaded_at=float("inf"), found=False)


class KeyCache:
    def __init__(
        self,
        keyring: Keyring,
        ids: source_store.SourceIds,
        max_contract_bytes: int = MAX_CONTRACT_BYTES,
    ) -> None:
        self._keyring = keyring
        self._ids = ids
        self._entries: dict[str, Entry] = {}  # live sources
        self._contract_bytes = 0  # schema text held by self._entries' contracts
        self._max_contract_bytes = max_contract_bytes
        self._absent: dict[str, Entry] = {}  # deleted or unknown, with a valid id
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, source_id: str) -> Entry:
        entry = self._entries.get(source_id) or self._absent.get(source_id)
        if entry is not None and time.monotonic() - entry.loaded_at <= TTL_S:
            return entry  # only recognised ids are ever cached: no check needed
        if not self._ids.recognised(source_id):
            return _UNKNOWN  # not minted here: no lookup, no cache entry
        # One load per source at a time: a burst on a cold or expired entry waits for it
        # instead of reading (and decrypting, and auditing) once per request.
        with self._lock:
            loading = self._loading.setdefault(source_id, threading.Lock())
        with loading:
            entry = self._entries.get(source_id) or self._absent.get(source_id)
            if entry is None or time.monotonic() - entry.loaded_at > TTL_S:
                entry = self._load(source_id, entry)
        with self._lock:
            self._loading.pop(source_id, None)
        return entry

    def reload_after_mismatch(self, source_id: str, entry: Entry) -> Entry | None:
        """A fresh entry when a reload is allowed now, else None."""
        now = time.monotonic()
        with self._lock:
            if now - entry.loaded_at <= RELOAD_AFTER_S or now - entry.reloaded_at <= RELOAD_AFTER_S:
                return None
            entry.reloaded_at = now
        return self._load(source_id, entry)

    def forget(self, source_id: str) -> None:
        with self._lock:
            self._drop(source_id)

    def cached(self, source_id: str) -> Entry | None:
        """The live entry this instance holds now, without loading one (no Firestore call)."""
        return self._entries.get(source_id)

    def _load(self, source_id: str, previous: Entry | None) -> Entry:
        snap = source_store.source_ref(source_id).get(retry=store.retry())
        record = snap.to_dict() if snap.exists else None
        if record is None or record.get("deleted"):
            entry = Entry(time.monotonic(), found=False)
        else:
            entry = Entry(
                time.monotonic(),
                True,
                self._open(source_id, record, previous),
                provider=record.get("provider", "inlet"),
                signing=record.get("signing", "hmac"),
                contract=_contract(record, previous),
                rate_limit=limits.of_record(record),
                event_salt=record.get("eventSalt"),
            )
        if previous is not None:
            entry.reloaded_at = previous.reloaded_at
        with self._lock:
            self._drop(source_id)
            if not entry.found:
                while len(self._absent) >= MAX_ABSENT:
                    self._absent.pop(next(iter(self._absent)))  # the oldest load
                self._absent[source_id] = entry
                return entry
            while len(self._entries) >= MAX_ENTRIES:
                self._drop(next(iter(self._entries)))  # the oldest load
            if entry.contract is not None:
                size = len(entry.contract.text)
                if self._contract_bytes + size > self._max_contract_bytes:
                    with_contract = [i for i, e in self._entries.items() if e.contract is not None]
                    for oldest in with_contract:  # in load order
                        self._drop(oldest)
                        if self._contract_bytes + size <= self._max_contract_bytes:
                            break
                self._contract_bytes += size
            self._entries[source_id] = entry
        return entry

    def _drop(self, source_id: str) -> None:
        """Remove a source's entry, live or absent (the caller holds the lock)."""
        self._absent.pop(source_id, None)
        entry = self._entries.pop(source_id, None)
        if entry is not None and entry.contract is not None:
            self._contract_bytes -= len(entry.contract.text)

    def _open(self, source_id: str, record: dict, previous: Entry | None) -> tuple:
        """Decrypt the source's keys, reusing secrets and public keys this instance holds."""
        known = {k.key_id: k.secret for k in previous.keys} if previous else {}
        keys, opened = [], []
        for item in record.get("keys", []):
            expires = item.get("expiresAt")
            secret = known.get(item["id"])
            if secret is None and "publicKey" in item:
                secret = public_key(item["publicKey"])
            elif secret is None:
                sealed = Sealed.from_record(item["sealed"])
                secret = self._keyring.open(sealed, source_id.encode()).decode()
                opened.append(item["id"])
            keys.append(
                VerificationKey(item["id"], secret, expires.timestamp() if expires else None)
            )
        if opened:
            source_store.write_audit("secret.decrypted", "ingest", source_id, keyIds=opened)
        return tuple(keys)


def _contract(record: dict, previous: Entry | None) -> Contract | None:
    """The source's compiled schema, reusing this instance's copy while the text is unchanged
    (compiling costs milliseconds; the reload every 30 s should not)."""
    text = record.get("schema")
    if text is None:
        return None
    if previous is not None and previous.contract is not None and previous.contract.text == text:
        return previous.contract
    from services.ingest import contracts  # jsonschema and RE2: only once a source has a schema

    return contracts.load(text)
