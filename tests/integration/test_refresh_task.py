"""POST /tasks/refresh: who may call it, hostile bodies, exactly-once folding under repeats,
concurrency and a Firestore outage, and follow-up scheduling."""

from __future__ import annotations

import base64
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack import issuer as dev_issuer
from services.query import rollups
from tests.support import rollup_buckets, run_refresh, store_events


def settled_history(db, source_id: str, size: int, now: dt.datetime) -> int:
    """``size`` events over the last six days, old enough to fold; returns the sum of ``v``."""
    step = dt.timedelta(days=6) / size
    store_events(
        db, source_id, [(now - dt.timedelta(days=6) + step * n, {"v": n}) for n in range(size)]
    )
    return sum(range(size))


def rollup_total(db, source_id: str) -> int:
    return sum(b["c"] for b in rollup_buckets(db, source_id, rollups.ALL_EVENTS, "d"))


def week_sum(dashboard, source_id):
    answer = dashboard.query(
        source_id,
        {"type": "webhook.aggregate", "params": {"window": "7d", "field": "v", "op": "sum"}},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def _unsigned(claims: dict) -> str:
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_only_the_tasks_identity_may_refresh(clean, source):
    url = f"{clean.url('query')}/tasks/refresh"
    body = {"sourceId": source["id"], "reason": "event"}
    claims = {
        "iss": clean.issuer.url,
        "aud": dev_issuer.TASKS_AUDIENCE,
        "email": dev_issuer.TASKS_SERVICE_ACCOUNT,
        "exp": 2**31,
    }
    for token in (
        None,
        _unsigned(claims),
        clean.issuer.task_token(audience="someone-else"),
        clean.issuer.task_token(email="intruder@example.iam.gserviceaccount.com"),
        clean.issuer.session_token("user_alice"),
    ):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        assert requests.post(url, json=body, headers=headers, timeout=30).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        [1] * 5000,
        {"sourceId": 1},
        {"sourceId": ["src_" + "0" * 20]},
        {"sourceId": "src_" + "0" * 20, "reason": "because"},
        {"sourceId": "src_" + "0" * 20, "extra": {"a": [[[[[[[[[[1]]]]]]]]]]}},
        {"sourceId": "../../etc"},
        "refresh",
    ],
)
def test_hostile_refresh_bodies_are_a_400(clean, body):
    answer = requests.post(
        f"{clean.url('query')}/tasks/refresh",
        json=body,
        headers={"Authorization": f"Bearer {clean.issuer.task_token()}"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text


def test_repeated_and_concurrent_refreshes_count_every_event_once(clean, dashboard, tenant, db):
    created = tenant.create("Busy", retention=100_000).json()
    expected = settled_history(db, created["id"], 1200, dt.datetime.now(dt.UTC))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: run_refresh(clean, created["id"]), range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    while run_refresh(clean, created["id"]).json()["more"]:
        pass
    assert run_refresh(clean, created["id"]).status_code == 200  # once more: nothing changes
    assert rollup_total(db, created["id"]) == 1200
    assert week_sum(dashboard, created["id"]) == {
        "value": expected,
        "count": 1200,
        "window": "7d",
        "op": "sum",
    }


def test_retention_trims_the_oldest_and_takes_them_out_of_the_rollups(clean, dashboard, tenant, db):
    created = tenant.create("Small", retention=50).json()
    settled_history(db, created["id"], 200, dt.datetime.now(dt.UTC))
    week_sum(dashboard, created["id"])  # registers the field
    while run_refresh(clean, created["id"]).json()["more"]:
        pass
    kept = db.collection("sources").document(created["id"]).collection("events").stream()
    assert sorted(json.loads(e.get("body"))["v"] for e in kept) == list(range(150, 200))
    assert rollup_total(db, created["id"]) == 50
    assert week_sum(dashboard, created["id"])["value"] == sum(range(150, 200))
    shown = tenant.get(created["id"]).json()
    assert shown["eventCount"] == 50


def test_firestore_outage_is_a_503_and_the_retried_refresh_counts_nothing_twice(
    clean, dashboard, tenant, db
):
    created = tenant.create("Outage", retention=100_000).json()
    expected = settled_history(db, created["id"], 600, dt.datetime.now(dt.UTC))
    firestore = clean.processes["firestore"]
    firestore.pause()
    try:
        failed = run_refresh(clean, created["id"])
        query = dashboard.query(created["id"], {"type": "webhook.latest"})
    finally:
        firestore.resume()
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    assert query.status_code == 503 and query.headers["Retry-After"]
    while run_refresh(clean, created["id"]).json()["more"]:
        pass
    assert rollup_total(db, created["id"]) == 600
    assert week_sum(dashboard, created["id"])["value"] == expected


def test_a_windowed_aggregate_schedules_its_follow_up_for_when_its_value_changes(
    clean, dashboard, source, db
):
    now = dt.datetime.now(dt.UTC)
    oldest = now - dt.timedelta(minutes=10)
    store_events(db, source["id"], [(oldest, {"v": 1}), (now - dt.timedelta(minutes=5), {"v": 2})])
    block = {
        "binding": {
            "dataSourceId": source["id"],
            "queryConfig": {
                "type": "webhook.aggregate",
                "params": {"window": "15m", "field": "v", "op": "sum"},
            },
            "projection": {"fields": {"value": {"source": "value"}}},
        },
        "widget": {"template": "metric"},
    }
    assert dashboard.put_block("recent", block).json()["widget"]["data"]["value"] == 3
    outcome = run_refresh(clean, source["id"]).json()
    leaves = rollups.bucket(oldest.timestamp(), rollups.MINUTE) + 60 + 15 * 60
    assert dt.datetime.fromisoformat(outcome["followupAt"]).timestamp() == leaves


def test_no_follow_up_when_no_value_can_change(clean, dashboard, source, db):
    store_events(db, source["id"], [(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), {"v": 1})])
    block = {
        "binding": {
            "dataSourceId": source["id"],
            "queryConfig": {"type": "webhook.latest"},
            "projection": {"fields": {"v": {"source": "v", "format": "integer"}}},
        },
        "widget": {"template": "metric"},
    }
    assert dashboard.put_block("latest", block).json()["widget"]["data"] == {"v": 1}
    assert run_refresh(clean, source["id"]).json()["followupAt"] is None
