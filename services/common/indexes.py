"""The Firestore index and TTL list, shared by the services and the infra program (docs/ingest.md,
"Deploy").

The emulator enforces no index and deletes nothing by TTL, so this list is the only place the
production database learns about them; ``tests/integration/test_indexes.py`` checks it against
the documents the services really write.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TtlPolicy:
    collection_group: str
    field: str


@dataclass(frozen=True)
class IndexExemption:
    """A field no query uses: no single-field index (saves writes; big values break limits)."""

    collection_group: str
    field: str


@dataclass(frozen=True)
class CompositeIndex:
    collection_group: str
    fields: tuple[tuple[str, str], ...]  # (field, "ASCENDING" | "DESCENDING")


TTL_POLICIES = (
    TtlPolicy("deliveries", "expireAt"),  # 30 days
    # A trimmed event kept as its key's tombstone, until the key's window closes (24 h, or the
    # window of a newer generation it points at); expiry is also checked on read.
    TtlPolicy("events", "expireAt"),
    # Key records of versions before one-write events: the last expire 24 h after the upgrade.
    TtlPolicy("idempotency", "expireAt"),
    TtlPolicy("audit", "expireAt"),  # one year
    TtlPolicy("refresh_pending", "expireAt"),  # one day: the sweep gives up after that
    TtlPolicy("rate_leases", "expireAt"),  # one hour: a second's rate-limit budget
    TtlPolicy("quarantine", "expireAt"),  # 7 days: events refused by the schema, for replay
)

INDEX_EXEMPTIONS = (
    IndexExemption("events", "body"),  # arbitrary JSON bytes, up to 256 KiB
    # Audit fields of the event record: read with the event, never queried. Only receivedAt
    # (retention, statistics, listing) keeps its index.
    *(
        IndexExemption("events", field)
        for field in ("idempotencyKey", "signedAt", "size", "keyId", "scheme")
    ),
    # The event as its idempotency key's record (ingest/receive.py): read by id, never queried.
    *(
        IndexExemption("events", field)
        for field in (
            "bodySha256",
            "head",
            "latest",
            "latestUntil",
            "latestSha256",
            "keyUntil",
            "expireAt",
        )
    ),
    # Only on replayed events (ingest/replay.py): when the event first arrived.
    IndexExemption("events", "originallyReceivedAt"),
    IndexExemption("idempotency", "eventId"),
    IndexExemption("idempotency", "bodySha256"),
    # Refresh markers: fields that increase across all sources, and fields no query filters on
    # alone. The sweep reads them through the composite indexes below, which lead with the
    # shard, so no index holds one increasing range for the whole collection (outbox.py).
    *(
        IndexExemption("refresh_pending", field)
        for field in ("createdAt", "enqueuedAt", "dueAt", "bucket", "reason", "claim", "shard")
    ),
    # A source's schema contract: JSON text up to 64 KiB, read with the source by id.
    IndexExemption("sources", "schema"),
    IndexExemption("sources", "eventSalt"),  # keys event ids, read with the source
    # Blocks: the binding and widget are JSON text (a widget's data may be up to 512 KiB).
    IndexExemption("blocks", "binding"),
    IndexExemption("blocks", "widget"),
    # Rollup buckets: the exact sum is text no query filters on.
    IndexExemption("rollups", "s"),
    # The rollup state: one document per source, read by id.
    *(
        IndexExemption("rollup_state", field)
        for field in ("fields", "retained", "rules", "orphans")
    ),
    # The delivery inspector's ring (ingest/deliveries.py): listed by time ("at") only.
    *(
        IndexExemption("delivery_ring", field)
        for field in ("status", "code", "scheme", "keyId", "size", "idempotencyKey")
    ),
    # A second's rate-limit budget (ingest/limits.py): read by id, through its own write.
    IndexExemption("rate_leases", "leased"),
    # The quarantine (ingest/quarantine.py): listed and trimmed by receivedAt only.
    *(
        IndexExemption("quarantine", field)
        for field in (
            "signedAt",
            "idempotencyKey",
            "scheme",
            "keyId",
            "size",
            "body",
            "code",
            "message",
            "pointer",
            "keyword",
        )
    ),
    *(IndexExemption("quarantine_state", field) for field in ("dropped", "droppedAt")),
    *(IndexExemption(p.collection_group, p.field) for p in TTL_POLICIES),
)

COMPOSITE_INDEXES = (
    # The sweep, per shard: markers older than a minute; never enqueued; enqueued long ago.
    CompositeIndex("refresh_pending", (("shard", "ASCENDING"), ("createdAt", "ASCENDING"))),
    CompositeIndex(
        "refresh_pending",
        (("shard", "ASCENDING"), ("enqueuedAt", "ASCENDING"), ("createdAt", "ASCENDING")),
    ),
    CompositeIndex("refresh_pending", (("shard", "ASCENDING"), ("enqueuedAt", "ASCENDING"))),
    # GET /v1/sources: the caller's live sources, paged by id.
    CompositeIndex("sources", (("owner", "ASCENDING"), ("deleted", "ASCENDING"))),
    # GET /v1/blocks?dataSourceId=: the caller's blocks of one source, paged by id.
    CompositeIndex("blocks", (("owner", "ASCENDING"), ("dataSourceId", "ASCENDING"))),
    # GET /v1/blocks' ETag: the caller's most recently written block (blocks.version).
    CompositeIndex("blocks", (("owner", "ASCENDING"), ("refreshedAt", "DESCENDING"))),
    # The sweep: deleted sources not purged yet, deleted over a minute ago.
    CompositeIndex(
        "sources",
        (("deleted", "ASCENDING"), ("purgedAt", "ASCENDING"), ("deletedAt", "ASCENDING")),
    ),
)
