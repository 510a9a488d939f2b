"""Envelope encryption of signing secrets: AES-256-GCM under a key-encryption key (docs/ingest.md,
"Configuration").

``SOURCE_KEK`` holds ``kid:base64(32 bytes)`` entries, current key first; every ciphertext names
the key id that sealed it, so the KEK can be rotated by putting a new key first.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from services.common.config import ConfigError


@dataclass(frozen=True)
class Sealed:
    kek_id: str
    nonce: bytes
    ciphertext: bytes

    def to_record(self) -> dict[str, object]:
        return {"kek": self.kek_id, "nonce": self.nonce, "ciphertext": self.ciphertext}

    @classmethod
    def from_record(cls, record: dict[str, object]) -> Sealed:
        return cls(str(record["kek"]), bytes(record["nonce"]), bytes(record["ciphertext"]))


class Keyring:
    """The key-encryption keys, current first."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError("SOURCE_KEK holds no key")
        self._keys = dict(keys)
        self.current_id = keys[0][0]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        keys = []
        for entry in spec.split(","):
            kid, sep, b64 = entry.strip().partition(":")
            try:
                material = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                material = b""
            if not sep or not kid or len(material) != 32:
                raise ConfigError("SOURCE_KEK entries must be kid:base64(32 bytes)")
            if any(kid == known for known, _ in keys):
                raise ConfigError(f"SOURCE_KEK names key id {kid!r} twice")
            keys.append((kid, material))
        return cls(keys)

    def derive(self, purpose: bytes) -> tuple[bytes, ...]:
        """A subkey per key-encryption key for ``purpose`` (HMAC-SHA256), current first, so a
        secret besides the KEK itself never needs configuring or leaks the KEK."""
        import hashlib
        import hmac

        order = [self.current_id, *(kid for kid in self._keys if kid != self.current_id)]
        return tuple(hmac.new(self._keys[kid], purpose, hashlib.sha256).digest() for kid in order)

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        cipher = AESGCM(self._keys[self.current_id])
        return Sealed(self.current_id, nonce, cipher.encrypt(nonce, plaintext, associated))

    def open(self, sealed: Sealed, associated: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._keys.get(sealed.kek_id)
        if key is None:
            raise KeyError(f"key-encryption key {sealed.kek_id!r} is not configured")
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, associated)
