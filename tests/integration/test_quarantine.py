"""The quarantine and replay: events refused only by the schema are kept 7 days with their
violation, listed newest first, and replayed against the current schema (docs/ingest.md
"Quarantine and replay"). Against the emulators, through HTTP where a person would go."""

from __future__ import annotations

import datetime as dt
import json

import requests

from services.common import source_store
from services.common.config import Env, TaskSettings
from services.query import refresh
from tests import partner
from tests.partner import SourceAPI
from tests.support import rollup_state, run_refresh, store_events, sweep

SCHEMA = {
    "type": "object",
    "required": ["amount"],
    "properties": {"amount": {"type": "number", "minimum": 0}},
}
ITEM_FIELDS = {
    "id",
    "receivedAt",
    "expiresAt",
    "idempotencyKey",
    "scheme",
    "keyId",
    "size",
    "violation",
    "body",
}


def kept(api: SourceAPI, source_id: str, **params) -> requests.Response:
    url = f"{api.base}/v1/sources/{source_id}/quarantine"
    return requests.get(url, params=params, headers=api.auth, timeout=15)


def replay(api: SourceAPI, source_id: str, body=None, headers=None) -> requests.Response:
    url = f"{api.base}/v1/sources/{source_id}/quarantine/replay"
    return requests.post(url, json=body or {}, headers=headers or api.auth, timeout=30)


def events(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("events")
    return [doc.to_dict() for doc in ref.stream()]


def quarantined(db, source_id: str) -> list:
    ref = db.collection("sources").document(source_id).collection("quarantine")
    return list(ref.stream())


def test_an_event_refused_by_the_schema_is_kept_with_its_violation(clean, tenant, source, db):
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    body = b'{"amount": -5, "note": "refund"}'
    refused = partner.send(source["url"], source["secret"], body=body, key="order-1")
    assert refused.status_code == 422  # the partner still gets its 422
    error = refused.json()["error"]
    assert (error["code"], error["pointer"], error["keyword"]) == (
        "schema_violation",
        "/amount",
        "minimum",
    )
    # Refusals before or beside the schema are not kept.
    assert partner.send(source["url"], "whsec_" + "A" * 43, key="o-2").status_code == 401
    not_json = partner.send(source["url"], source["secret"], body=b'{"a": NaN}', key="o-3")
    assert not_json.status_code == 400

    answer = kept(tenant, source["id"])
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["nextCursor"] is None and page["dropped"] == 0
    (item,) = page["items"]
    assert set(item) == ITEM_FIELDS
    assert item["idempotencyKey"] == "order-1" and item["scheme"] == "inlet"
    assert item["size"] == len(body) and item["body"] == {"amount": -5, "note": "refund"}
    assert item["keyId"].startswith("key_")
    assert item["violation"] == {
        "code": "schema_violation",
        "pointer": "/amount",
        "keyword": "minimum",
        "message": error["message"],
    }
    (doc,) = quarantined(db, source["id"])
    assert doc.get("expireAt") - doc.get("receivedAt") == dt.timedelta(days=7)  # the TTL field
    assert events(db, source["id"]) == []  # nothing stored


def test_the_listing_is_paged_newest_first(clean, tenant, source):
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    for n in range(5):
        answer = partner.send(source["url"], source["secret"], {"amount": -n - 1}, key=f"k-{n}")
        assert answer.status_code == 422
    seen, cursor = [], None
    for _ in range(5):  # bounded: 3 pages of 2
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = kept(tenant, source["id"], **params).json()
        seen += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [i["idempotencyKey"] for i in seen] == ["k-4", "k-3", "k-2", "k-1", "k-0"]
    assert [i["receivedAt"] for i in seen] == sorted((i["receivedAt"] for i in seen), reverse=True)
    assert kept(tenant, source["id"], cursor="nope").status_code == 400
    assert kept(tenant, source["id"], limit=51).status_code == 400


def test_replay_after_fixing_the_schema_stores_with_the_original_key_once(
    clean, tenant, source, db
):
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    src, url, secret = source["id"], source["url"], source["secret"]
    for key, amount in (("a", -1), ("b", -2), ("c", "lots")):
        assert partner.send(url, secret, {"amount": amount}, key=key).status_code == 422
    first_seen = {d.get("idempotencyKey"): d.get("receivedAt") for d in quarantined(db, src)}
    # The fix: negative amounts are fine; a string still is not.
    loose = {**SCHEMA, "properties": {"amount": {"type": "number"}}}
    assert tenant.put_schema(source["id"], loose).status_code == 200
    started = dt.datetime.now(dt.UTC)

    answer = replay(tenant, source["id"])
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(i["idempotencyKey"] for i in result["stored"]) == ["a", "b"]
    assert result["duplicates"] == [] and result["nextCursor"] is None
    (failed,) = result["failed"]
    assert failed["code"] == "schema_violation"
    assert (failed["pointer"], failed["keyword"]) == ("/amount", "type")
    assert failed["message"]
    stored = {e["idempotencyKey"]: e for e in events(db, source["id"])}
    assert set(stored) == {"a", "b"}
    for key, event in stored.items():
        assert event["originallyReceivedAt"] == first_seen[key]
        assert event["receivedAt"] >= started  # stored as a new arrival (README: why)
    assert [i["idempotencyKey"] for i in kept(tenant, source["id"]).json()["items"]] == ["c"]
    # The partner's retry of a replayed key is a duplicate, as for any stored event.
    assert partner.send(url, secret, {"amount": -1}, key="a").status_code == 200

    # The same key kept again (the schema tightened, the partner re-sent it), then replayed:
    # a duplicate, never a second event, and it leaves the quarantine.
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    assert partner.send(url, secret, {"amount": -1}, key="a").status_code == 422
    assert tenant.put_schema(source["id"], loose).status_code == 200
    again = replay(tenant, source["id"]).json()
    assert [i["idempotencyKey"] for i in again["duplicates"]] == ["a"]
    assert again["duplicates"][0]["eventId"] == next(
        i["eventId"] for i in result["stored"] if i["idempotencyKey"] == "a"
    )
    assert again["stored"] == [] and [f["id"] for f in again["failed"]] == [failed["id"]]
    assert len(events(db, source["id"])) == 2
    # By id: a replayed (or unknown) id is reported, not an error.
    by_id = replay(tenant, source["id"], {"ids": [result["stored"][0]["id"], failed["id"]]})
    codes = sorted(f["code"] for f in by_id.json()["failed"])
    assert codes == ["not_quarantined", "schema_violation"]
    assert replay(tenant, source["id"], {"ids": "all"}).status_code == 400
    assert replay(tenant, source["id"], {"wat": 1}).status_code == 400


def test_aggregates_equal_the_fold_of_retained_events_after_a_replay(
    clean, tenant, dashboard, source, db
):
    now = dt.datetime.now(dt.UTC)
    history = [(now - dt.timedelta(minutes=50 - m), {"amount": m}) for m in range(40)]
    store_events(db, source["id"], history)
    assert run_refresh(clean, source["id"]).status_code == 200  # folds the history
    cursor = rollup_state(db, source["id"])["fields"]["_all"]["cursor"]["at"]
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    late = partner.send(source["url"], source["secret"], {"amount": -7}, key="late")
    assert late.status_code == 422
    # As if it had been kept half an hour ago: its first arrival is behind the fold cursor.
    (doc,) = quarantined(db, source["id"])
    doc.reference.update({"receivedAt": now - dt.timedelta(minutes=30)})
    assert tenant.delete_schema(source["id"]).status_code == 204

    assert [i["idempotencyKey"] for i in replay(tenant, source["id"]).json()["stored"]] == ["late"]
    (replayed,) = [e for e in events(db, source["id"]) if e["idempotencyKey"] == "late"]
    assert replayed["originallyReceivedAt"] < cursor < replayed["receivedAt"]

    def fold_of_retained() -> list:
        amounts = [json.loads(e["body"])["amount"] for e in events(db, source["id"])]
        return [len(amounts), sum(amounts)]

    def aggregates() -> list:
        found = []
        for params in (
            {"window": "24h", "op": "count"},
            {"window": "24h", "field": "amount", "op": "sum"},
        ):
            answer = dashboard.query(source["id"], {"type": "webhook.aggregate", "params": params})
            assert answer.status_code == 200, answer.text
            found.append(answer.json()["result"]["value"])
        return found

    expected = fold_of_retained()
    assert expected == [41, sum(range(40)) - 7]
    assert aggregates() == expected  # the replayed event read directly, after the cursor
    assert run_refresh(clean, source["id"]).status_code == 200
    assert aggregates() == expected


def test_the_bound_drops_the_oldest_first_and_counts_them(clean, tenant, db, monkeypatch):
    created = tenant.create("Small", retention=2)
    assert created.status_code == 201, created.text
    source = created.json()
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    for n in range(5):
        answer = partner.send(source["url"], source["secret"], {"amount": -1}, key=f"k-{n}")
        assert answer.status_code == 422
    monkeypatch.setattr(source_store, "QUARANTINE_FLOOR", 3)  # the cap: max(2, 3)
    settings = TaskSettings.from_env(Env(clean.service_env()))
    now = dt.datetime.now(dt.UTC)
    assert refresh.refresh(settings, source["id"], now, "quarantine")["quarantineDropped"] == 2
    page = kept(tenant, source["id"]).json()
    assert [i["idempotencyKey"] for i in page["items"]] == ["k-4", "k-3", "k-2"]
    assert page["dropped"] == 2
    again = refresh.refresh(settings, source["id"], now, "quarantine")
    assert again["quarantineDropped"] == 0 and kept(tenant, source["id"]).json()["dropped"] == 2


def test_another_tenant_gets_404_and_a_member_reads_but_cannot_replay(clean, tenant, source):
    intruder = SourceAPI(tenant.base, clean.issuer.session_token("user_mallory"))
    assert kept(intruder, source["id"]).status_code == 404
    assert replay(intruder, source["id"]).status_code == 404
    owner = clean.issuer.session_token("user_ann", org="org_q", role="admin")
    org = SourceAPI(tenant.base, owner)
    created = org.create("Team").json()
    member = SourceAPI(
        tenant.base, clean.issuer.session_token("user_dee", org="org_q", role="member")
    )
    assert kept(member, created["id"]).status_code == 200
    refused = replay(member, created["id"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert replay(org, created["id"]).status_code == 200


def test_a_deleted_source_purges_its_quarantine(clean, tenant, source, db):
    assert tenant.put_schema(source["id"], SCHEMA).status_code == 200
    assert partner.send(source["url"], source["secret"], {"amount": -1}).status_code == 422
    assert len(quarantined(db, source["id"])) == 1
    assert tenant.delete(source["id"]).status_code == 204
    assert kept(tenant, source["id"]).status_code == 404
    ref = db.collection("sources").document(source["id"])
    ref.update({"deletedAt": ref.get().get("deletedAt") - dt.timedelta(minutes=5)})
    assert sweep(clean)["purged"] == 1
    assert quarantined(db, source["id"]) == []
