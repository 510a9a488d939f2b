"""A source's schema contract in Firestore: set, read and remove it (docs/ingest.md "Schema
contracts").

The schema is stored as its compact JSON text in the source's own document (``schema``, a
string exempt from indexing), so the verification-key cache loads it with the keys in the same
read. Each change is audited (``schema.set``, ``schema.deleted``).
"""

from __future__ import annotations

import json
from typing import Any

from services.common import source_store
from services.common.auth import Principal
from services.common.errors import BadRequest, NotFound
from services.ingest.sources import require_admin

# The request body is the schema wrapped in {"schema": …}, possibly pretty-printed: the 64 KiB
# limit applies to the schema's compact JSON (contracts.MAX_SCHEMA_BYTES), not to this.
MAX_BODY = 256 * 1024


def set_schema(principal: Principal, source_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Check and store ``body["schema"]``; the source's record as now stored."""
    from services.ingest import contracts

    snap = source_store.owned(principal, source_id)  # someone else's: 404 before anything else
    require_admin(principal)
    if "schema" not in body:
        raise BadRequest('body must be {"schema": <JSON Schema 2020-12>}')
    if set(body) != {"schema"}:
        raise BadRequest('body must have only the "schema" field')
    contract = contracts.parse(body["schema"])
    audit = source_store.audit_entry(
        "schema.set",
        principal.user_id,
        source_id,
        schemaSha256=contract.digest,
        size=len(contract.text.encode()),
    )
    # Conditional on the source as read: a concurrent deletion is not overwritten.
    snap, written = source_store.change_owned(
        principal, source_id, lambda snap: ({"schema": contract.text}, audit), first=snap
    )
    return {**snap.to_dict(), **written}


def get_schema(principal: Principal, source_id: str) -> Any:
    """The source's schema as set (members may read it, like the source)."""
    text = source_store.owned(principal, source_id).to_dict().get("schema")
    if text is None:
        raise NotFound("this source has no schema", code="no_schema")
    return json.loads(text)


def delete_schema(principal: Principal, source_id: str) -> bool:
    """Remove the source's schema; True when there was one (a repeat changes nothing)."""
    from google.cloud import firestore

    snap = source_store.owned(principal, source_id)
    require_admin(principal)

    def change(snap) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if snap.to_dict().get("schema") is None:
            return None
        audit = source_store.audit_entry("schema.deleted", principal.user_id, source_id)
        return {"schema": firestore.DELETE_FIELD}, audit

    _, written = source_store.change_owned(principal, source_id, change, first=snap)
    return written is not None
