"""The shared index/TTL list names fields the services really write (docs/deploy.md)."""

from __future__ import annotations

import datetime as dt
import time

import requests

from services.common import source_store
from services.common.indexes import COMPOSITE_INDEXES, INDEX_EXEMPTIONS, TTL_POLICIES
from tests import clerk, partner
from tests.support import age_event, legacy_key_record, run_refresh, store_events

# Fields only some documents of their group carry: checked to exist in at least one.
OPTIONAL = {
    ("events", field)
    for field in (
        "originallyReceivedAt",  # replayed events
        "head",  # a key's newer generation
        *("latest", "latestUntil", "latestSha256"),  # the head pointing at it
        *("keyUntil", "expireAt"),  # a tombstone
    )
}
DAY = dt.timedelta(hours=24)


def reuse_and_tombstone(clean, tenant, db) -> None:
    """A key reused after its window (a head pointing at a newer generation), the head then
    trimmed by retention into a tombstone, and a key record of an older Inlet version."""
    created = tenant.create("Kept", retention=2).json()
    url, secret, source_id = created["url"], created["secret"], created["id"]
    head = partner.send(url, secret, {"n": 1}, key="r").json()["id"]
    age_event(db, source_id, head, DAY + dt.timedelta(minutes=3))
    newer = partner.send(url, secret, {"n": 2}, key="r").json()["id"]
    kept = partner.send(url, secret, {"n": 3}, key="k").json()["id"]
    age_event(db, source_id, newer, dt.timedelta(minutes=2))
    age_event(db, source_id, kept, dt.timedelta(minutes=1))
    while run_refresh(clean, source_id).json()["more"]:
        pass
    assert tenant.put_schema(source_id, {"type": "object"}).status_code == 200  # as the others
    expires = dt.datetime.now(dt.UTC) + DAY
    legacy_key_record(db, source_id, "older", "evt_older", b"{}", expires)


def quarantine_and_replay(tenant, source) -> None:
    """Two kept events, the older dropped past a bound of one (the quarantine's counter) and
    the newer replayed by id (an event with originallyReceivedAt), then one kept for good."""
    url, secret = source["url"], source["secret"]
    kept = f"{tenant.base}/v1/sources/{source['id']}/quarantine"
    refusing = {"type": "object", "required": ["ok"]}
    assert tenant.put_schema(source["id"], refusing).status_code == 200
    for key in ("kept-1", "kept-2"):
        assert partner.send(url, secret, {"n": 0}, key=key).status_code == 422
    assert source_store.trim_quarantine_once(source["id"], cap=1)[0] == 1  # kept-1 dropped
    assert tenant.delete_schema(source["id"]).status_code == 204
    (item,) = requests.get(kept, headers=tenant.auth, timeout=15).json()["items"]
    replay = {"ids": [item["id"]]}
    replayed = requests.post(f"{kept}/replay", json=replay, headers=tenant.auth, timeout=15)
    assert len(replayed.json()["stored"]) == 1, replayed.text
    assert tenant.put_schema(source["id"], refusing).status_code == 200
    assert partner.send(url, secret, {"n": 0}, key="kept-3").status_code == 422


def test_every_listed_field_exists_in_the_documents_written(clean, tenant, dashboard, source, db):
    partner.send(source["url"], source["secret"], {"n": 1})
    assert partner.send(source["url"], "whsec_wrong").status_code == 401  # a ring entry
    settled = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    store_events(db, source["id"], [(settled, {"n": 2})])
    block = partner.count_block(source["id"])
    assert dashboard.put_block("indexed", block).status_code == 201
    assert run_refresh(clean, source["id"]).status_code == 200  # folds into rollups
    # A refresh deletes the markers it served: keep one by holding the tasks emulator.
    time.sleep(1.1)  # a new one-second window: ingest writes a new marker for it
    clean.processes["tasks"].pause()
    try:
        partner.send(source["url"], source["secret"], {"n": 3})
        held = {"refresh_pending": [d.to_dict() for d in db.collection("refresh_pending").stream()]}
    finally:
        clean.processes["tasks"].resume()
    clerk.post(
        clean.url("clerk-sync"),
        clean.webhook_secret,
        clerk.event("user.created", clerk.user("u1", 1)),
    )
    quarantine_and_replay(tenant, source)
    reuse_and_tombstone(clean, tenant, db)
    tenant.rotate(source["id"])
    assert tenant.put_schema(source["id"], {"type": "object"}).status_code == 200

    def documents(group: str) -> list[dict]:
        found = held.get(group) or [d.to_dict() for d in db.collection_group(group).stream()]
        assert found, f"no {group} document was written"
        return found

    for policy in TTL_POLICIES:
        optional = (policy.collection_group, policy.field) in OPTIONAL
        found = [doc.get(policy.field) for doc in documents(policy.collection_group)]
        kept = [value for value in found if value is not None] if optional else found
        assert kept and all(isinstance(value, dt.datetime) for value in kept), policy
    for exemption in INDEX_EXEMPTIONS:
        group, field = exemption.collection_group, exemption.field
        if (group, field) in OPTIONAL:
            assert any(field in doc for doc in documents(group)), exemption
        else:  # on every document, tombstones (events without receivedAt) aside
            live = [d for d in documents(group) if group != "events" or "receivedAt" in d]
            assert all(field in doc for doc in live), exemption
    for index in COMPOSITE_INDEXES:
        for doc in documents(index.collection_group):
            assert all(field in doc for field, _ in index.fields), index


# Fields some query filters or orders on, per collection group; every other field a service
# writes there must be exempted from indexing (docs/ingest.md).
QUERIED = {
    "events": {"receivedAt"},
    "idempotency": set(),
    "delivery_ring": {"at"},
    "rate_leases": set(),
    "quarantine": {"receivedAt"},
    "quarantine_state": set(),
}


def test_event_and_idempotency_fields_no_query_uses_are_exempted(clean, tenant, source, db):
    partner.send(source["url"], source["secret"], {"n": 1})
    assert partner.send(source["url"], "whsec_wrong").status_code == 401  # a ring entry
    quarantine_and_replay(tenant, source)
    reuse_and_tombstone(clean, tenant, db)
    exempted: dict[str, set[str]] = {}
    for exemption in INDEX_EXEMPTIONS:
        exempted.setdefault(exemption.collection_group, set()).add(exemption.field)
    for group, queried in QUERIED.items():
        written = set().union(*(d.to_dict() for d in db.collection_group(group).stream()))
        assert written - queried == exempted[group], group
