"""Data sources: create, list, read, rotate and delete, scoped to the caller's tenant (README
"ingest").

Secrets are shown once, at creation or rotation, and stored only sealed with AES-256-GCM under
the key-encryption key, the source id bound in as associated data.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import Any

from services.common import source_store, store
from services.common.auth import Principal
from services.common.contention import Contended, retry_contended
from services.common.crypto import Keyring
from services.common.errors import BadRequest, Forbidden

DEFAULT_RETENTION = 1_000
MAX_RETENTION = 100_000
MAX_GRACE_S = 86_400
MAX_LABEL = 200
PAGE_SIZE = 100


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


def json_integer(value: Any) -> int | None:
    """An integer as JSON Schema reads one (``8572.0`` is 8572, as openapi.yaml promises); not
    a bool, a fraction or anything else."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _require_admin(principal: Principal) -> None:
    if not principal.may_administer:
        raise Forbidden("only organization admins may change data sources")


def create(
    principal: Principal, body: dict[str, Any], keyring: Keyring, ids: source_store.SourceIds
) -> dict[str, Any]:
    _require_admin(principal)
    label, retention = _label(body), _retention(body)
    if source_store.owner_deleted(principal.user_id, principal.org_id):
        raise Forbidden("this user or organization has been deleted", code="owner_deleted")
    db = store.client()
    source_id = ids.new()
    secret = new_secret()
    now = dt.datetime.now(dt.UTC)
    record = {
        "id": source_id,
        "owner": principal.owner,
        "label": label,
        "retention": retention,
        "createdAt": now,
        "createdBy": principal.user_id,
        "deleted": False,
        "deletedAt": None,
        "purgedAt": None,
        "keys": [_new_key(keyring, source_id, secret, now)],
    }
    batch = db.batch()
    batch.create(source_store.source_ref(source_id), record)
    audit = source_store.audit_entry("source.created", principal.user_id, source_id)
    batch.set(db.collection(source_store.AUDIT).document(), audit)
    batch.commit(retry=store.retry())
    return {**record, "secret": secret}


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
    """A new current secret; the previous one verifies for ``graceSeconds`` more.

    At most two secrets verify at once: rotating during a grace period ends the older one.
    """
    from google.api_core import exceptions as gexc

    snap = source_store.owned(
        principal, source_id
    )  # someone else's source is a 404 before anything else
    _require_admin(principal)
    grace = json_integer(body.get("graceSeconds", 0))
    if grace is None or not 0 <= grace <= MAX_GRACE_S:
        raise BadRequest(f"graceSeconds must be an integer from 0 to {MAX_GRACE_S}")
    db = store.client()
    read = [snap]

    def attempt() -> dict[str, Any]:
        snap = read.pop() if read else source_store.owned(principal, source_id)
        now = dt.datetime.now(dt.UTC)
        secret = new_secret()
        keys = [_new_key(keyring, source_id, secret, now)]
        current = next((k for k in snap.get("keys") if k.get("expiresAt") is None), None)
        if current is not None and grace > 0:
            keys.append({**current, "expiresAt": now + dt.timedelta(seconds=grace)})
        batch = db.batch()
        batch.update(
            snap.reference,
            {"keys": keys},
            option=db.write_option(last_update_time=snap.update_time),
        )
        audit = source_store.audit_entry(
            "source.rotated", principal.user_id, source_id, graceSeconds=grace
        )
        batch.set(db.collection(source_store.AUDIT).document(), audit)
        try:
            batch.commit(retry=store.retry())
        except gexc.FailedPrecondition:
            raise Contended from None  # rotated concurrently: start from the newer state
        return {**snap.to_dict(), "keys": keys, "secret": secret}

    return retry_contended(attempt, message="the source is being changed concurrently, retry")


def delete(principal: Principal, source_id: str) -> bool:
    """Stop accepting events now; True when this call deleted it (False when repeated)."""
    source_store.owned(principal, source_id, allow_deleted=True)
    _require_admin(principal)
    return source_store.mark_deleted(source_id, principal.user_id)
