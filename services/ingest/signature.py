"""The inbound wire format: signature headers, the time window, signature checks. Pure.

Which scheme a request uses is read from its headers alone (step 2, before any lookup); which
schemes a source accepts is its ``provider`` and ``signing`` (step 6). docs/ingest.md:
- ``Inlet-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` with ``Idempotency-Key``; the
  HMAC-SHA256 key is the whole ``whsec_…`` string's UTF-8 bytes, over ``<t>.<raw body>``;
- Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``): ``v1,``
  entries (HMAC, verified by the ``standardwebhooks`` library) for ``hmac`` sources, ``v1a,``
  entries (ed25519 over ``<id>.<timestamp>.<raw body>``) for ``ed25519`` sources; ``webhook-id``
  is the idempotency key;
- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, idempotency key
  ``X-GitHub-Delivery``, no timestamp;
- Stripe: ``Stripe-Signature: t=…,v1=<hex>[,v1=…]`` (HMAC-SHA256 of ``<t>.<raw body>``, key =
  the whole ``whsec_…`` string), idempotency key = the event's ``id``, read after step 7.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from services.common.errors import BadRequest, Unauthorized

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_AGE_S = 5 * 60
MAX_FUTURE_S = 60
MAX_SIGNATURES = 8
# An ed25519 check costs about ten HMACs: a sender has at most two keys that verify (one during
# a rotation's grace), so more v1a entries than that are refused before any is checked.
MAX_ED25519_SIGNATURES = 2
# \Z, not $: "$" also matches before a trailing newline, which would let "key\n" through.
_KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")
_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}\Z")
# No leading zeros: the signed bytes are the timestamp as sent, and must read back the same.
_UNIX_SECONDS = re.compile(r"^(0|[1-9][0-9]{0,11})\Z")
_STANDARD_SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]{43}=\Z")  # base64 of an HMAC-SHA256
_ED25519_SIGNATURE = re.compile(r"^v1a,[A-Za-z0-9+/]{86}==\Z")  # base64 of 64 bytes
_GITHUB_SIGNATURE = re.compile(r"^sha256=[0-9a-fA-F]{64}\Z")
_PUBLIC_KEY = re.compile(r"^whpk_[A-Za-z0-9+/]{43}=\Z")  # base64 of an ed25519 public key
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
Scheme = Literal["inlet", "standard", "github", "stripe"]
# Which request schemes each kind of source verifies, by (provider, signing); docs/ingest.md.
ACCEPTED: dict[tuple[str, str], frozenset[str]] = {
    ("inlet", "hmac"): frozenset({"inlet", "standard"}),
    ("inlet", "ed25519"): frozenset({"standard"}),
    ("github", "hmac"): frozenset({"github"}),
    ("stripe", "hmac"): frozenset({"stripe"}),
}


class InvalidSignatureHeader(BadRequest):
    code = "invalid_signature_header"


def _invalid_key(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_idempotency_key")


@dataclass(frozen=True)
class SignedRequest:
    """What the headers claim; nothing here is trusted until ``matching_key`` finds a key."""

    scheme: Scheme
    timestamp: int | None  # None for GitHub, which signs no time
    idempotency_key: str | None  # None for Stripe until the body is read (``with_event_id``)
    signatures: tuple[str, ...]  # inlet, github, stripe: lower-case hex digests
    headers: Mapping[str, str]  # standard: the three headers, v1 entries only, for the library
    ed25519: tuple[bytes, ...] = ()  # standard: the decoded v1a signatures


def parse_headers(headers: Mapping[str, str]) -> SignedRequest:
    """Step 2 of the README's table: 400 for a missing or malformed header or key.

    Only the headers decide the scheme; whether the source accepts it is step 6's business.
    """
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
    stripe = headers.get("Stripe-Signature")
    if stripe is not None:
        timestamp, signatures = _parse_stripe(stripe)
        return SignedRequest("stripe", timestamp, None, signatures, {})
    github = headers.get("X-Hub-Signature-256")
    if github is not None:
        if not _GITHUB_SIGNATURE.match(github):
            raise InvalidSignatureHeader("X-Hub-Signature-256 must be sha256=<hex>")
        key = headers.get("X-GitHub-Delivery")
        if key is None or not _KEY.match(key):
            raise _invalid_key("X-GitHub-Delivery must be 1-255 printable ASCII characters")
        return SignedRequest("github", None, key, (github[7:].lower(),), {})
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
        entries = standard["webhook-signature"].split(" ")
        hmacs = [e for e in entries if _STANDARD_SIGNATURE.match(e)]
        ed25519 = tuple(base64.b64decode(e[4:]) for e in entries if _ED25519_SIGNATURE.match(e))
        if (
            not (hmacs or ed25519)
            or len(hmacs) + len(ed25519) > MAX_SIGNATURES
            or len(ed25519) > MAX_ED25519_SIGNATURES
        ):
            raise InvalidSignatureHeader(
                "webhook-signature must hold v1,<base64> or (at most two) v1a,<base64> entries"
            )
        standard["webhook-signature"] = " ".join(hmacs)
        return SignedRequest("standard", timestamp, standard["webhook-id"], (), standard, ed25519)
    raise InvalidSignatureHeader(
        "missing signature headers (Inlet-Signature, Standard Webhooks, GitHub or Stripe)"
    )


def _parse_stripe(value: str) -> tuple[int, tuple[str, ...]]:
    """``t=…,v1=…[,v1=…][,v0=…]``: Stripe's own reading, strict on ``t``; entries that are not
    a well-formed ``v1`` (test-mode ``v0``, future schemes) are skipped, as Stripe's code does."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if name == "t" and sep:
            if timestamp is not None or not _UNIX_SECONDS.match(item):
                raise InvalidSignatureHeader("Stripe-Signature needs one t=<unix seconds>")
            timestamp = int(item)
        elif name == "v1" and sep and _HEX_SIGNATURE.match(item):
            signatures.append(item.lower())
    if timestamp is None or not signatures or len(signatures) > MAX_SIGNATURES:
        raise InvalidSignatureHeader("Stripe-Signature must be t=<seconds>,v1=<hex>")
    return timestamp, tuple(signatures)


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


def check_timestamp(timestamp: int | None, now: float) -> None:
    """Step 4: refuse replays (older than 5 min, Stripe's 300 s tolerance too) and clocks
    running ahead (over 60 s). GitHub signs no time: nothing to check (docs/partners.md
    "GitHub sources" says what that means for replays)."""
    if timestamp is None:
        return
    if timestamp < now - MAX_AGE_S or timestamp > now + MAX_FUTURE_S:
        raise Unauthorized("signature timestamp is outside the allowed window", code="stale")


def inlet_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 a partner sends: key = the secret's UTF-8 bytes."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def public_key(text: object) -> Ed25519PublicKey:
    """An ed25519 public key from its Standard Webhooks form ``whpk_<base64 of 32 bytes>``;
    ValueError for anything else."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(text, str) or not _PUBLIC_KEY.match(text):
        raise ValueError("not whpk_<base64 of 32 bytes>")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text[5:]))


def github_signature(secret: str, body: bytes) -> str:
    """GitHub's hex HMAC-SHA256 of the raw body, keyed with the secret's UTF-8 bytes."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def accepts(provider: str, signing: str, scheme: str) -> bool:
    """Whether a source of this provider and signing verifies requests of ``scheme``."""
    return scheme in ACCEPTED.get((provider, signing), ())


def matching_key(
    signed: SignedRequest, body: bytes, keys: Iterable[tuple[str, str | Ed25519PublicKey]]
) -> str | None:
    """The id of the first key whose signature matches, in constant time per comparison.

    A key is a secret (``str``) or an ed25519 public key: secrets verify the HMAC schemes and
    Standard Webhooks ``v1`` entries, public keys only ``v1a`` entries.
    """
    for key_id, key in keys:
        if not isinstance(key, str):
            if signed.scheme == "standard" and _ed25519_matches(key, signed, body):
                return key_id
        elif signed.scheme == "standard":
            if signed.headers["webhook-signature"] and _standard_matches(key, body, signed.headers):
                return key_id
        elif _any_equal(_expected_hex(signed, key, body), signed.signatures):
            return key_id
    return None


def _expected_hex(signed: SignedRequest, secret: str, body: bytes) -> str:
    if signed.scheme == "github":
        return github_signature(secret, body)
    return inlet_signature(secret, signed.timestamp, body)  # Stripe signs the same way


def _any_equal(expected: str, candidates: tuple[str, ...]) -> bool:
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def _ed25519_matches(key: Ed25519PublicKey, signed: SignedRequest, body: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    message = f"{signed.idempotency_key}.{signed.timestamp}.".encode() + body
    for candidate in signed.ed25519:
        try:
            key.verify(candidate, message)
        except InvalidSignature:
            continue
        return True
    return False


def with_event_id(signed: SignedRequest, document: Any) -> SignedRequest:
    """Stripe's idempotency key is the event's ``id``, read once the body is strict JSON; a
    missing or malformed one is a 400. Other schemes carry theirs in a header already."""
    if signed.idempotency_key is not None:
        return signed
    event_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(event_id, str) or not _KEY.match(event_id):
        raise _invalid_key("a Stripe event needs an id of 1-255 printable ASCII characters")
    return replace(signed, idempotency_key=event_id)


def _standard_matches(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error, TypeError):
        # The library also raises ValueError/binascii.Error on malformed entries and
        # UnicodeDecodeError (a ValueError) on a non-UTF-8 body: all mean "no match".
        return False
    return True
