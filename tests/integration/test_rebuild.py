"""POST /v1/sources/{id}/rebuild: the rollups are refolded from the retained events through one
guarded state swap, and every aggregate stays exact throughout (docs/query.md "Rollups")."""

from __future__ import annotations

import datetime as dt

import requests

from services.common import admin_keys
from tests.support import rollup_state, run_refresh, store_events

QUERIES = [
    {"window": "24h", "op": "count"},
    {"window": "24h", "field": "amount", "op": "sum"},
    {"window": "1h", "field": "amount", "op": "avg"},
]


def answers(dashboard, source_id: str) -> list:
    found = []
    for params in QUERIES:
        answer = dashboard.query(source_id, {"type": "webhook.aggregate", "params": params})
        assert answer.status_code == 200, answer.text
        found.append(answer.json()["result"])
    return found


def rebuild(dashboard, source_id: str, headers=None) -> requests.Response:
    url = f"{dashboard.base}/v1/sources/{source_id}/rebuild"
    return requests.post(url, headers=headers or dashboard.auth, timeout=30)


def test_a_rebuild_swaps_the_state_and_aggregates_stay_exact_throughout(
    clean, db, dashboard, source
):
    now = dt.datetime.now(dt.UTC)
    history = [(now - dt.timedelta(minutes=m + 1), {"amount": f"{m}.25"}) for m in range(40)]
    history += [(now - dt.timedelta(hours=3, minutes=m), {"amount": m}) for m in range(30)]
    store_events(db, source["id"], history)
    expected = answers(dashboard, source["id"])  # read from the events: nothing folded yet
    assert run_refresh(clean, source["id"]).status_code == 200
    before = rollup_state(db, source["id"])
    assert before["retained"] == 70 and len(before["fields"]) == 2
    assert answers(dashboard, source["id"]) == expected  # from the rollups

    started = rebuild(dashboard, source["id"])
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["retained"] == 70 and body["folded"] in range(71)
    assert {f["field"] for f in body["fields"]} == {None, '$["amount"]'}
    after = rollup_state(db, source["id"])
    old_tags = {f["tag"] for f in before["fields"].values()}
    assert old_tags <= set(after["orphans"])
    assert not old_tags & {f["tag"] for f in after["fields"].values()}
    assert answers(dashboard, source["id"]) == expected  # cursors gone: events read directly

    for _ in range(5):  # bounded: each refresh does bounded rounds
        assert run_refresh(clean, source["id"]).status_code == 200
        assert answers(dashboard, source["id"]) == expected
        done = requests.get(
            f"{dashboard.base}/v1/sources/{source['id']}/rebuild",
            headers=dashboard.auth,
            timeout=30,
        ).json()
        if done["folded"] == 70 and done["orphansLeft"] == 0:
            break
    assert done["folded"] == 70 and done["orphansLeft"] == 0
    assert all(f["foldedUpTo"] for f in done["fields"])
    buckets = db.collection("sources").document(source["id"]).collection("rollups").stream()
    assert not old_tags & {b.get("f") for b in buckets}  # the old buckets are deleted


def test_an_admin_key_may_rebuild_and_an_org_member_may_not(clean, stack, ingest_url, query_url):
    from tests.partner import QueryAPI, SourceAPI

    admin_token = stack.issuer.session_token("user_ann", org="org_a", role="admin")
    created = SourceAPI(ingest_url, admin_token).create("Org orders")
    source_id = created.json()["id"]
    member = QueryAPI(query_url, stack.issuer.session_token("user_dee", org="org_a", role="member"))
    refused = rebuild(member, source_id)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    _, key = admin_keys.create("ops")
    assert rebuild(member, source_id, {"Authorization": f"Bearer {key}"}).status_code == 202
