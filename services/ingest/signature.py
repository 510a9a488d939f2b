"""The inbound wire format: signature headers, the time window, HMAC checks. Pure.

Two schemes are accepted (README "ingest"):
- ``Inlet-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` with ``Idempotency-Key``; the
  HMAC-SHA256 key is the whole ``whsec_…`` string's UTF-8 bytes, over ``<t>.<raw body>``;
- Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), verified
  by the ``standardwebhooks`` library; ``webhook-id`` is then the idempotency key.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.common.errors import BadRequest, Unauthorized

MAX_AGE_S = 5 * 60
MAX_FUTURE_S = 60
MAX_SIGNATURES = 8
# \Z, not $: "$" also matches before a trailing newline, which would let "key\n" through.
_KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")
_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}\Z")
# No leading zeros: the signed bytes are the timestamp as sent, and must read back the same.
_UNIX_SECONDS = re.compile(r"^(0|[1-9][0-9]{0,11})\Z")
_STANDARD_SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]{43}=\Z")  # base64 of an HMAC-SHA256
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class InvalidSignatureHeader(BadRequest):
    code = "invalid_signature_header"


@dataclass(frozen=True)
class SignedRequest:
    """What the headers claim; nothing here is trusted until ``matching_key`` finds a key."""

    scheme: Literal["inlet", "standard"]
    timestamp: int
    idempotency_key: str
    signatures: tuple[str, ...]  # inlet: lower-case hex digests
    headers: Mapping[str, str]  # standard: the three headers, for the library


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Step 2 of the README's table: 400 for a missing or malformed header or key."""
    inlet = headers.get("Inlet-Signature")
    if inlet is not None:
        timestamp, signatures = _parse_inlet(inlet)
        key = headers.get("Idempotency-Key")
        if key is None or not _KEY.match(key):
            raise BadRequest(
                "Idempotency-Key must be 1-255 printable ASCII characters",
                code="invalid_idempotency_key",
            )
        return SignedRequest("inlet", timestamp, key, signatures, {})
    standard = {name: headers.get(name) for name in STANDARD_HEADERS}
    if all(standard.values()):
        if not _KEY.match(standard["webhook-id"]):
            raise BadRequest(
                "webhook-id must be 1-255 printable ASCII characters",
                code="invalid_idempotency_key",
            )
        if not _UNIX_SECONDS.match(standard["webhook-timestamp"]):
            raise InvalidSignatureHeader("webhook-timestamp must be unix seconds")
        timestamp = int(standard["webhook-timestamp"])
        # Only well-formed entries reach the library, which would otherwise give up on the
        # first malformed one even when a later entry matches.
        entries = [
            e for e in standard["webhook-signature"].split(" ") if _STANDARD_SIGNATURE.match(e)
        ]
        if not entries or len(entries) > MAX_SIGNATURES:
            raise InvalidSignatureHeader("webhook-signature must hold v1,<base64> entries")
        standard["webhook-signature"] = " ".join(entries)
        return SignedRequest("standard", timestamp, standard["webhook-id"], (), standard)
    raise InvalidSignatureHeader("missing Inlet-Signature (or Standard Webhooks) headers")


def _parse_inlet(value: str) -> tuple[int, tuple[str, ...]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            raise InvalidSignatureHeader("Inlet-Signature must be t=<seconds>,v1=<hex>")
        if name == "t":
            if timestamp is not None or not _UNIX_SECONDS.match(item):
                raise InvalidSignatureHeader("Inlet-Signature needs one t=<unix seconds>")
            timestamp = int(item)
        elif name == "v1":
            if not _HEX_SIGNATURE.match(item):
                raise InvalidSignatureHeader("v1 must be a hex HMAC-SHA256")
            signatures.append(item.lower())
        # Other schemes (v0, v2…) are ignored so that senders can add them later.
    if timestamp is None or not signatures or len(signatures) > MAX_SIGNATURES:
        raise InvalidSignatureHeader("Inlet-Signature must be t=<seconds>,v1=<hex>")
    return timestamp, tuple(signatures)


def check_timestamp(timestamp: int, now: float) -> None:
    """Step 4: refuse replays (older than 5 min) and clocks running ahead (over 60 s)."""
    if timestamp < now - MAX_AGE_S or timestamp > now + MAX_FUTURE_S:
        raise Unauthorized("signature timestamp is outside the allowed window", code="stale")


def inlet_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 a partner sends: key = the secret's UTF-8 bytes."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def matching_key(signed: SignedRequest, body: bytes, keys: Iterable[tuple[str, str]]) -> str | None:
    """The id of the first key whose signature matches, in constant time per comparison."""
    for key_id, secret in keys:
        if signed.scheme == "inlet":
            expected = inlet_signature(secret, signed.timestamp, body)
            matched = False
            for candidate in signed.signatures:
                matched |= hmac.compare_digest(expected, candidate)
            if matched:
                return key_id
        elif _standard_matches(secret, body, signed.headers):
            return key_id
    return None


def _standard_matches(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error, TypeError):
        # The library also raises ValueError/binascii.Error on malformed entries and
        # UnicodeDecodeError (a ValueError) on a non-UTF-8 body: all mean "no match".
        return False
    return True
