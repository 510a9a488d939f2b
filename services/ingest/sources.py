"""Data sources: create, list, read, rotate and delete, scoped to the caller's tenant (README
"ingest").

Secrets are shown once, at creation or rotation, and stored only sealed with AES-256-GCM under
the key-encryption key, the source id bound in as associated data. A source's ``provider``
(``inlet``, ``github``, ``stripe``) and ``signing`` (``hmac``, ``ed25519``) decide its keys: an
``inlet``/``hmac`` source gets a generated secret; an ``ed25519`` source holds only its partner's
public key (nothing secret at rest); a GitHub or Stripe source holds the secret the team copies
from the provider, set with ``rotate-secret {"secret"}`` and never shown back.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
from typing import Any

from services.common import source_store, store
from services.common.auth import Principal
from services.common.crypto import Keyring
from services.common.errors import BadRequest, Forbidden
from services.ingest import limits, signature

DEFAULT_RETENTION = 1_000
MAX_RETENTION = 100_000
MAX_GRACE_S = 86_400
MAX_LABEL = 200
PAGE_SIZE = 100
PROVIDERS = ("inlet", "github", "stripe")
SIGNINGS = ("hmac", "ed25519")
MAX_PROVIDER_SECRET = 1024
# Printable ASCII without surrounding spaces (\Z, not $: "$" would let a final "\n" through).
_PROVIDER_SECRET = re.compile(r"^[\x21-\x7e]([\x20-\x7e]{0,1022}[\x21-\x7e])?\Z")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _new_key(keyring: Keyring, source_id: str, secret: str, now: dt.datetime) -> dict[str, Any]:
    sealed = keyring.seal(secret.encode(), source_id.encode())
    return {
        "id": "key_" + secrets.token_hex(6),
        "sealed": sealed.to_record(),
        "createdAt": now,
        "expiresAt": None,
    }


def _public_key_entry(public_key: str, now: dt.datetime) -> dict[str, Any]:
    """An ed25519 source's key: the partner's public key, stored plainly (nothing secret)."""
    return {
        "id": "key_" + secrets.token_hex(6),
        "publicKey": public_key,
        "createdAt": now,
        "expiresAt": None,
    }


def _kind(body: dict[str, Any]) -> tuple[str, str]:
    """The ``provider`` and ``signing`` a creation asks for; 400 naming the field if invalid."""
    provider, signing = body.get("provider", "inlet"), body.get("signing", "hmac")
    if provider not in PROVIDERS:
        raise BadRequest(f"provider must be one of {', '.join(PROVIDERS)}")
    if signing not in SIGNINGS:
        raise BadRequest(f"signing must be one of {', '.join(SIGNINGS)}")
    if signing == "ed25519" and provider != "inlet":
        raise BadRequest("signing: ed25519 is for inlet sources; a provider signs its own way")
    if "secret" in body:
        raise BadRequest("secret is not taken at creation: set it with rotate-secret")
    if signing != "ed25519" and "publicKey" in body:
        raise BadRequest("publicKey needs signing: ed25519")
    return provider, signing


def _public_key(body: dict[str, Any]) -> str:
    value = body.get("publicKey")
    try:
        signature.public_key(value)
    except ValueError:
        raise BadRequest("publicKey must be whpk_<base64 of a 32-byte ed25519 key>") from None
    return value


def _provider_secret(provider: str, body: dict[str, Any]) -> str:
    """The secret a team copies from GitHub or Stripe: sealed like any other, never echoed."""
    value = body.get("secret")
    if not isinstance(value, str) or not _PROVIDER_SECRET.match(value):
        raise BadRequest(
            f"secret must be the {provider} webhook secret: 1-{MAX_PROVIDER_SECRET} printable "
            "ASCII characters without surrounding spaces"
        )
    if provider == "stripe" and not value.startswith("whsec_"):
        raise BadRequest("secret must be the Stripe endpoint's signing secret (whsec_…)")
    return value


def _new_keys(
    keyring: Keyring,
    source_id: str,
    kind: tuple[str, str],
    body: dict[str, Any],
    now: dt.datetime,
) -> tuple[dict[str, Any], str | None]:
    """The key a creation or rotation stores, and the secret to show once (None when nothing
    is shown). Body fields that do not fit the source's kind are a 400 naming them."""
    provider, signing = kind
    if signing == "ed25519":
        if "secret" in body:
            raise BadRequest("secret is for github and stripe sources; send publicKey")
        return _public_key_entry(_public_key(body), now), None
    if "publicKey" in body:
        raise BadRequest("publicKey is for signing: ed25519 sources")
    if provider != "inlet":
        return _new_key(keyring, source_id, _provider_secret(provider, body), now), None
    if "secret" in body:
        raise BadRequest("secret is for github and stripe sources; inlet secrets are generated")
    secret = new_secret()
    return _new_key(keyring, source_id, secret, now), secret


def _label(body: dict[str, Any]) -> str:
    label = body.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise BadRequest(f"label must be a non-empty string of at most {MAX_LABEL} characters")
    return label.strip()


def _retention(body: dict[str, Any]) -> int:
    value = json_integer(body.get("retention", DEFAULT_RETENTION))
    if value is None or not 1 <= value <= MAX_RETENTION:
        raise BadRequest(f"retention must be an integer from 1 to {MAX_RETENTION}")
    return value


def _rate_limit(body: dict[str, Any]) -> int | None:
    try:
        return limits.parse_limit(body.get("rateLimit", limits.DEFAULT_RATE_LIMIT))
    except ValueError as err:
        raise BadRequest(str(err)) from None


def json_integer(value: Any) -> int | None:
    """An integer as JSON Schema reads one (``8572.0`` is 8572, as openapi.yaml promises); not
    a bool, a fraction or anything else."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def require_admin(principal: Principal) -> None:
    """Only an organization's admins change its sources (and their schemas); a user's own
    sources are theirs to change."""
    if not principal.may_administer:
        raise Forbidden("only organization admins may change data sources")


def create(
    principal: Principal, body: dict[str, Any], keyring: Keyring, ids: source_store.SourceIds
) -> dict[str, Any]:
    require_admin(principal)
    label, retention, rate_limit = _label(body), _retention(body), _rate_limit(body)
    provider, signing = _kind(body)
    source_id = ids.new()
    now = dt.datetime.now(dt.UTC)
    keys, secret = [], None  # a provider source: no secret until the team sets the provider's
    if provider == "inlet":
        key, secret = _new_keys(keyring, source_id, (provider, signing), body, now)
        keys = [key]
    if source_store.owner_deleted(principal.user_id, principal.org_id):
        raise Forbidden("this user or organization has been deleted", code="owner_deleted")
    db = store.client()
    record = {
        "id": source_id,
        "owner": principal.owner,
        "label": label,
        "retention": retention,
        "rateLimit": rate_limit,
        "createdAt": now,
        "createdBy": principal.user_id,
        "deleted": False,
        "deletedAt": None,
        "purgedAt": None,
        "provider": provider,
        "signing": signing,
        "keys": keys,
        # Keys this source's event ids (ingest/receive.py event_id): never shown.
        "eventSalt": secrets.token_bytes(16),
    }
    batch = db.batch()
    batch.create(source_store.source_ref(source_id), record)
    audit = source_store.audit_entry("source.created", principal.user_id, source_id)
    batch.set(db.collection(source_store.AUDIT).document(), audit)
    batch.commit(retry=store.retry())
    return {**record, "secret": secret} if secret is not None else record


def list_owned(principal: Principal, cursor: str | None, limit: int = PAGE_SIZE):
    """One page of the caller's live sources, ordered by id, and the next cursor."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (
        store.client()
        .collection(source_store.SOURCES)
        .where(filter=FieldFilter("owner", "==", principal.owner))
        .where(filter=FieldFilter("deleted", "==", False))
        .order_by("__name__")
        .limit(limit + 1)
    )
    if cursor is not None:  # present but empty is no cursor this API returned either
        if not source_store.is_source_id(cursor):
            raise BadRequest("cursor is not one this API returned")
        query = query.start_after({"__name__": source_store.source_ref(cursor)})
    snaps = list(query.stream(retry=store.retry()))
    page = snaps[:limit]
    next_cursor = page[-1].id if len(snaps) > limit else None
    return [s.to_dict() for s in page], next_cursor


def rotate(
    principal: Principal, source_id: str, body: dict[str, Any], keyring: Keyring
) -> dict[str, Any]:
    """A new current key; the previous one verifies for ``graceSeconds`` more.

    The new key is a generated secret (``inlet``/``hmac``, shown once), the ``publicKey`` sent
    (``ed25519``) or the provider's ``secret`` sent (GitHub, Stripe; never shown back). At most
    two keys verify at once: rotating during a grace period ends the older one.
    """
    snap = source_store.owned(principal, source_id)  # someone else's: a 404 before anything
    require_admin(principal)
    grace = json_integer(body.get("graceSeconds", 0))
    if grace is None or not 0 <= grace <= MAX_GRACE_S:
        raise BadRequest(f"graceSeconds must be an integer from 0 to {MAX_GRACE_S}")
    stored = snap.to_dict()
    kind = (stored.get("provider", "inlet"), stored.get("signing", "hmac"))
    key, secret = _new_keys(keyring, source_id, kind, body, dt.datetime.now(dt.UTC))

    def change(snap) -> tuple[dict[str, Any], dict[str, Any]]:
        keys = [key]
        current = next((k for k in snap.get("keys") if k.get("expiresAt") is None), None)
        if current is not None and grace > 0:
            ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
            keys.append({**current, "expiresAt": ends})
        audit = source_store.audit_entry(
            "source.rotated", principal.user_id, source_id, graceSeconds=grace
        )
        return {"keys": keys}, audit

    snap, written = source_store.change_owned(principal, source_id, change, first=snap)
    rotated = {**snap.to_dict(), **written}
    return {**rotated, "secret": secret} if secret is not None else rotated


CHANGEABLE = ("label", "retention", "rateLimit")


def change(principal: Principal, source_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PATCH``: a new label, retention or rate limit, audited as ``source.changed`` with the
    fields written. Only the fields sent change; sending the values stored writes nothing."""
    snap = source_store.owned(principal, source_id)  # someone else's: a 404 before anything
    require_admin(principal)
    unknown = sorted(set(body) - set(CHANGEABLE))
    if unknown:
        raise BadRequest(f"only {', '.join(CHANGEABLE)} can be changed, not {', '.join(unknown)}")
    wanted: dict[str, Any] = {}
    if "label" in body:
        wanted["label"] = _label(body)
    if "retention" in body:
        wanted["retention"] = _retention(body)
    if "rateLimit" in body:
        wanted["rateLimit"] = _rate_limit(body)

    def decide(snap) -> tuple[dict[str, Any], dict[str, Any]] | None:
        stored = snap.to_dict()
        fields = {k: v for k, v in wanted.items() if k not in stored or stored[k] != v}
        if not fields:
            return None
        audit = source_store.audit_entry(
            "source.changed",
            principal.user_id,
            source_id,
            fields=sorted(fields),
            **{k: v for k, v in fields.items() if k != "label"},
        )
        return fields, audit

    snap, written = source_store.change_owned(principal, source_id, decide, first=snap)
    return {**snap.to_dict(), **(written or {})}


def delete(principal: Principal, source_id: str) -> bool:
    """Stop accepting events now; True when this call deleted it (False when repeated)."""
    source_store.owned(principal, source_id, allow_deleted=True)
    require_admin(principal)
    return source_store.mark_deleted(source_id, principal.user_id)
