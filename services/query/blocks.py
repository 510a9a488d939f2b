"""Blocks: widgets bound to a source, scoped to their owner, kept fresh (docs/query.md).

``blocks/{doc}`` holds one block; the document id is a hash of the owner and the block id, so
each tenant has its own namespace of ids and one tenant's id tells nothing about another's.
The binding and the widget are stored as JSON text: a widget's data is arbitrary JSON, which as
a Firestore map could break its nesting and key limits.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.common import json_text, logs, source_store, store
from services.common.admin_keys import AdminPrincipal
from services.common.auth import Principal
from services.common.errors import BadRequest, InletError, NotFound, StorageUnavailable
from services.query import catalog, projection, queries, schemas

BLOCKS = "blocks"
_CURSOR = re.compile(r"[0-9a-f]{40}")  # a block document's id (doc_ref)
PAGE_SIZE = 100
MAX_DATA_BYTES = 512 * 1024  # a Firestore document holds at most 1 MiB
_BLOCK_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

OK, SOURCE_DELETED, ERROR = "ok", "source-deleted", "error"


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    root = {
        "components": {"schemas": schemas.COMPONENTS},
        "$ref": "#/components/schemas/BlockWrite",
    }
    return Draft202012Validator(root)


def check_id(block_id: str) -> str:
    if not _BLOCK_ID.fullmatch(block_id) or block_id in (".", ".."):
        raise BadRequest("a block id is 1-128 characters of A-Z a-z 0-9 _ . : -", code="bad_id")
    return block_id


@dataclass(frozen=True)
class Binding:
    source_id: str
    query: catalog.Query
    projection: projection.Projection


def validate(body: dict[str, Any]) -> Binding:
    """A block body checked against its schema (a 400 naming the first problem), parsed."""
    from jsonschema.exceptions import best_match

    first = best_match(_validator().iter_errors(body))
    if first is not None:
        path = list(first.absolute_path)
        if path[:2] == ["binding", "queryConfig"]:
            # One schema per query type (a oneOf) makes the schema's own message vague; the
            # query parser names the allowed values. It refuses what the schema refuses.
            try:
                catalog.parse(body["binding"]["queryConfig"])
            except BadRequest as err:
                message = f"invalid block at binding/queryConfig: {err.message}"
                pointer = _query_pointer(err.message)
                raise BadRequest(message, code=err.code, details={"pointer": pointer}) from None
        where = "/".join(str(p)[:40] for p in first.absolute_path) or "(body)"
        message = first.message if len(first.message) <= 200 else first.message[:200] + "…"
        raise BadRequest(
            f"invalid block at {where}: {message}",
            code="invalid_block",
            details={"pointer": _pointer(first.absolute_path)},
        )
    binding = body["binding"]
    try:
        query = catalog.parse(binding["queryConfig"])
    except BadRequest as err:
        err.details.setdefault("pointer", _query_pointer(err.message))
        raise
    try:
        shape = projection.parse(binding["projection"])
    except BadRequest as err:
        err.details.setdefault("pointer", "/binding/projection")
        raise
    return Binding(binding["dataSourceId"], query, shape)


_QUERY_PARAMS = ("window", "bucket", "op", "field", "limit", "order", "sortBy")


def _pointer(path) -> str:
    """A JSON Pointer (RFC 6901) to the part of the block a refusal names, for a form to show
    the error beside its field."""
    return "".join("/" + str(p)[:40].replace("~", "~0").replace("/", "~1") for p in path)


def _query_pointer(message: str) -> str:
    """Where in the query a catalogue refusal points: its messages start with the name."""
    if "needs a field" in message:
        return "/binding/queryConfig/params/field"
    first = message.split(" ", 1)[0].rstrip(":")  # a bad path's message is "field: …"
    if first in _QUERY_PARAMS:
        return f"/binding/queryConfig/params/{first}"
    return "/binding/queryConfig/type" if first == "type" else "/binding/queryConfig"


def doc_ref(owner: str, block_id: str):
    digest = hashlib.sha256(f"{owner}\n{block_id}".encode()).hexdigest()[:40]
    return store.client().collection(BLOCKS).document(digest)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def view(record: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a stored block (pure)."""
    shown = {
        "id": record["id"],
        "owner": record.get("owner"),
        "binding": json.loads(record["binding"]),
        "widget": json_text.loads(record["widget"]),
        "status": record.get("status"),
        "refreshedAt": _iso(record.get("refreshedAt")),
        "createdAt": _iso(record.get("createdAt")),
        "updatedAt": _iso(record.get("updatedAt")),
    }
    if record.get("message"):
        shown["message"] = record["message"]
    return shown


class Results:
    """Query results of one refresh, shared by the blocks that ask the same question."""

    def __init__(
        self, source_id: str, now: dt.datetime, on_new_field: Callable[[], None] | None = None
    ) -> None:
        self.source_id, self.now, self.on_new_field = source_id, now, on_new_field
        self._cache: dict[catalog.Query, Any] = {}

    def get(self, query: catalog.Query) -> Any:
        if query not in self._cache:
            self._cache[query] = queries.run(self.source_id, query, self.now, self.on_new_field)
        return self._cache[query]


def stored_binding(record: dict[str, Any]) -> Binding:
    """The binding of a stored block (checked when it was written), parsed."""
    raw = json.loads(record["binding"])
    return Binding(
        raw["dataSourceId"],
        catalog.parse(raw["queryConfig"]),
        projection.parse(raw["projection"]),
    )


def render(binding: Binding, widget: dict[str, Any], results: Results) -> dict[str, Any]:
    """The fields a refresh writes: the widget with its projected data, status, message."""
    return _own_failure(lambda: _render(binding, widget, results), binding.source_id)


def refreshed(record: dict[str, Any], results: Results) -> tuple[dict[str, Any], Any]:
    """What a refresh writes into a stored block, and the query it asked (None when its
    binding could not be read)."""
    asked = None

    def attempt() -> dict[str, Any]:
        nonlocal asked
        binding = stored_binding(record)
        asked = binding.query
        return _render(binding, json_text.loads(record["widget"]), results)

    return _own_failure(attempt, record.get("dataSourceId")), asked


def _own_failure(attempt: Callable[[], dict[str, Any]], source_id: Any) -> dict[str, Any]:
    """A failure other than storage's is this block's own ``status: error``, never the
    caller's: the other blocks of the source refresh."""
    try:
        return attempt()
    except (*store.storage_errors(), StorageUnavailable):
        raise
    except InletError as err:
        message = err.message
    except Exception as err:
        logs.report_error(err, "query", sourceId=source_id)  # a bug: an operator must see it
        message = f"the block could not be refreshed ({type(err).__name__})"
    return {"status": ERROR, "message": message[:500]}


def _render(binding: Binding, widget: dict[str, Any], results: Results) -> dict[str, Any]:
    projected = projection.apply(binding.projection, results.get(binding.query))
    data = {**(widget.get("data") or {}), **projected}
    new_widget = {**widget, "data": data}
    text = json_text.dumps(new_widget, ensure_ascii=False)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DATA_BYTES:
        return {
            "status": ERROR,
            "message": f"the widget's data would exceed {MAX_DATA_BYTES} bytes",
        }
    return {"widget": text, "status": OK, "message": None}


def put(
    principal: Principal,
    block_id: str,
    body: dict[str, Any],
    now: dt.datetime,
    schedule_refresh: Callable[[str], None],
):
    """Create or replace a block and refresh it at once; returns (view, created). Then a
    refresh of its source is scheduled through the outbox: it folds a newly registered field
    and schedules the follow-ups that keep a windowed value true on a quiet source."""
    check_id(block_id)
    binding = validate(body)
    try:
        source_store.owned(principal, binding.source_id)  # someone else's source: 404
    except NotFound as err:
        err.details.setdefault("pointer", "/binding/dataSourceId")
        raise
    folded = (catalog.Aggregate, catalog.Series)
    if isinstance(binding.query, folded) and binding.query.field is not None:
        queries.roll_up(binding.source_id, binding.query.field, now)
    ref = doc_ref(principal.owner, block_id)
    existing = ref.get(retry=store.retry())
    record = {
        "id": block_id,
        "owner": principal.owner,
        "dataSourceId": binding.source_id,
        "binding": json.dumps(body["binding"], separators=(",", ":"), ensure_ascii=False),
        "widget": json.dumps(body["widget"], separators=(",", ":"), ensure_ascii=False),
        "createdAt": existing.get("createdAt") if existing.exists else now,
        "updatedAt": now,
        "refreshedAt": now,
        **render(binding, body["widget"], Results(binding.source_id, now)),
    }
    ref.set(record, retry=store.retry())
    schedule_refresh(binding.source_id)
    return view(record), not existing.exists


def delete(principal: Principal, block_id: str) -> None:
    """Delete one of the caller's blocks; someone else's (or none) is a 404."""
    check_id(block_id)
    ref = doc_ref(principal.owner, block_id)
    snap = ref.get(field_paths=["owner"], retry=store.retry())
    if not snap.exists or snap.get("owner") != principal.owner:
        raise NotFound("no such block")
    ref.delete(retry=store.retry())  # a refresh running meanwhile updates nothing: its write is
    # conditional on the document it read


def get(caller: Principal | AdminPrincipal, block_id: str, owner: str | None = None):
    """The caller's block; an admin API key names the owner (``?owner=``), since block ids are
    chosen by their owners and only unique per owner."""
    check_id(block_id)
    if isinstance(caller, AdminPrincipal):
        if not owner or not store.is_document_id(owner):
            raise BadRequest("an admin API key reads a block with ?owner=<the owner's id>")
    else:
        owner = caller.owner
    snap = doc_ref(owner, block_id).get(retry=store.retry())
    if not snap.exists:
        raise NotFound("no such block")
    return view(snap.to_dict())


def list_owned(
    caller: Principal | AdminPrincipal, source_id: str | None, cursor: str | None, limit: int
):
    """One page of the caller's blocks (of one source when given), and the next cursor. An
    admin API key lists the blocks of one source (``dataSourceId``), whoever owns them."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = store.client().collection(BLOCKS)
    if isinstance(caller, AdminPrincipal):
        if source_id is None:
            raise BadRequest("an admin API key lists blocks with ?dataSourceId=<source id>")
    else:
        query = query.where(filter=FieldFilter("owner", "==", caller.owner))
    if source_id is not None:
        query = query.where(filter=FieldFilter("dataSourceId", "==", source_id))
    query = query.order_by("__name__").limit(limit + 1)
    if source_id is not None and not source_store.is_source_id(source_id):
        raise BadRequest("dataSourceId must be a source id")
    if cursor is not None:
        if not _CURSOR.fullmatch(cursor):
            raise BadRequest("cursor is not one this API returned")
        query = query.start_after({"__name__": store.client().collection(BLOCKS).document(cursor)})
    snaps = list(query.stream(retry=store.retry()))
    page = snaps[:limit]
    next_cursor = page[-1].id if len(snaps) > limit else None
    return [view(s.to_dict()) for s in page], next_cursor


def version(caller: Principal) -> str:
    """An ETag for the caller's first page of blocks (``GET /v1/blocks`` without a filter):
    how many blocks the tenant has and when the newest write to one was (a write, a refresh,
    a deletion changes one or the other). Two reads whatever the number of blocks: the
    console polls with it and reads the page only when it changed (docs/console.md)."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    owned = store.client().collection(BLOCKS).where(filter=FieldFilter("owner", "==", caller.owner))
    counted = owned.count().get(retry=store.retry())
    total = int(counted[0][0].value) if counted else 0
    newest = owned.order_by("refreshedAt", direction=firestore.Query.DESCENDING).limit(1)
    latest = ""
    for snap in newest.select(["refreshedAt"]).stream(retry=store.retry()):
        latest = f"{snap.id}:{snap.get('refreshedAt').isoformat()}"
    digest = hashlib.sha256(f"{caller.owner}\n{total}\n{latest}".encode()).hexdigest()[:32]
    return f'W/"{digest}"'
