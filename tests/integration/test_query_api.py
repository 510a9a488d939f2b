"""POST /v1/sources/{id}/query over HTTP: the three query types, tenancy, bad queries, cost."""

from __future__ import annotations

import datetime as dt

import pytest

from tests import partner
from tests.partner import QueryAPI
from tests.support import request_log, run_refresh, store_events


def agg(window="1h", op="sum", field=None):
    params = {"window": window, "op": op, **({"field": field} if field else {})}
    return {"type": "webhook.aggregate", "params": params}


def test_latest_is_the_newest_body_or_null(dashboard, source):
    answer = dashboard.query(source["id"], {"type": "webhook.latest"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"type": "webhook.latest", "result": None}
    partner.send(source["url"], source["secret"], {"n": 1})
    partner.send(source["url"], source["secret"], {"n": 2})
    assert dashboard.query(source["id"], {"type": "webhook.latest"}).json()["result"] == {"n": 2}


def test_aggregates_coerce_values_as_the_spec_says(dashboard, source):
    values = [1, "2.5", True, None, "abc", {"x": 1}, [3], "1e1", False]
    for value in values:
        partner.send(source["url"], source["secret"], {"v": value})
    partner.send(source["url"], source["secret"], {"other": 1})  # missing field
    result = dashboard.query(source["id"], agg(field="v")).json()["result"]
    assert result == {"value": 14.5, "count": 5, "window": "1h", "op": "sum"}
    assert dashboard.query(source["id"], agg(op="avg", field="$.v")).json()["result"]["value"] == (
        14.5 / 5
    )
    assert dashboard.query(source["id"], agg(op="count", field="v")).json()["result"]["value"] == 5
    every = dashboard.query(source["id"], agg(op="count")).json()["result"]
    assert every["value"] == every["count"] == 10


def test_an_empty_sum_is_0_and_an_empty_avg_null(dashboard, source):
    assert dashboard.query(source["id"], agg(field="v")).json()["result"]["value"] == 0
    assert dashboard.query(source["id"], agg(op="avg", field="v")).json()["result"]["value"] is None


def test_a_window_starts_at_the_minute_holding_now_minus_the_window(dashboard, source, db):
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(minutes=15)).replace(second=0, microsecond=0)
    store_events(
        db,
        source["id"],
        [
            (start - dt.timedelta(milliseconds=1), {"v": 100}),  # just before: out
            (start, {"v": 1}),  # at the start: in
            (now - dt.timedelta(minutes=1), {"v": 2}),
        ],
    )
    result = dashboard.query(source["id"], agg("15m", field="v")).json()["result"]
    assert (result["value"], result["count"]) == (3, 2)


def test_list_is_newest_first_and_sorts_by_a_path(dashboard, source, db):
    now = dt.datetime.now(dt.UTC)
    bodies = [{"p": 3}, {"p": "b"}, {"p": None}, {"p": 10}, {}, {"p": "a"}]
    store_events(
        db, source["id"], [(now - dt.timedelta(seconds=60 - n), b) for n, b in enumerate(bodies)]
    )
    newest = dashboard.query(source["id"], {"type": "webhook.list", "params": {"limit": 2}})
    items = newest.json()["result"]
    assert [i["body"] for i in items] == [{"p": "a"}, {}]
    assert set(items[0]) == {"id", "receivedAt", "body"}
    sorted_ = dashboard.query(
        source["id"], {"type": "webhook.list", "params": {"sortBy": "$.p", "order": "asc"}}
    )
    assert [i["body"].get("p") for i in sorted_.json()["result"]] == [3, 10, "a", "b", None, None]


def test_another_tenants_source_is_a_404_before_anything_else(clean, dashboard, source):
    bob = QueryAPI(clean.url("query"), clean.issuer.session_token("user_bob"))
    for body in ({"type": "webhook.latest"}, {"type": "nope"}, [1]):
        answer = bob.query(source["id"], body)
        assert answer.status_code == 404, answer.text
        entry = request_log(clean, "query", answer.headers["X-Request-Id"])
        assert entry["firestoreOps"] == 1  # the source document, nothing else
    assert bob.query("src_" + "0" * 20, {"type": "webhook.latest"}).status_code == 404
    assert bob.query("not-a-source", {"type": "webhook.latest"}).status_code == 404


def test_a_query_needs_a_session_token(clean, source):
    anonymous = QueryAPI(clean.url("query"), "not-a-token")
    assert anonymous.query(source["id"], {"type": "webhook.latest"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"type": "webhook.sql"}, "webhook.latest"),
        (agg(window="2d", field="v"), "15m, 1h, 24h, 7d"),
        (agg(op="median", field="v"), "sum, count, avg"),
        (agg(field="$..v"), "recursive descent"),
        (agg(field="$[*]"), "unsupported selector"),
        (agg(field="a..b"), "empty segment"),
        (agg(field=".".join(["a"] * 10_000)), "longer than"),
        ({"type": "webhook.list", "params": {"limit": 1000}}, "1 to 100"),
        ({"type": "webhook.list", "params": {"sortBy": ["a"] * 10_000}}, "non-empty string"),
        ({"type": "webhook.latest", "params": {"deep": [[[[[[[[[]]]]]]]]]}}, "allowed: none"),
        ({"type": "webhook.latest", "unknown": True}, "type and params"),
        ("webhook.latest", "must be a JSON object"),
    ],
)
def test_bad_queries_are_a_400_naming_what_is_allowed(dashboard, source, body, named):
    answer = dashboard.query(source["id"], body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]["message"]


def test_hostile_bodies_are_a_400_never_a_500(dashboard, source):
    url = f"{dashboard.base}/v1/sources/{source['id']}/query"
    import requests

    for raw in (b"[" * 100_000, b'{"type": "webhook.latest"', b"\xff\xfe", b"NaN", b"1" * 70_000):
        answer = requests.post(
            url,
            data=raw,
            headers={**dashboard.auth, "Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code in (400, 413), (raw[:20], answer.text)


def test_a_7d_aggregate_reads_rollups_whatever_the_history(clean, dashboard, tenant, db):
    """Cost that does not grow with history: a fixed number of Firestore RPCs (rollup ranges
    plus the events after the cursor), for 100 and for 3,000 events over seven days."""
    now = dt.datetime.now(dt.UTC)
    ops = {}
    for size in (100, 3000):
        created = tenant.create(f"History {size}", retention=100_000).json()
        step = dt.timedelta(days=7) / size
        history = [(now - dt.timedelta(days=7) + step * (n + 1), {"v": n}) for n in range(size)]
        store_events(db, created["id"], history[:-5])
        assert dashboard.query(created["id"], agg("7d", field="v")).status_code == 200
        while run_refresh(clean, created["id"]).json()["more"]:
            pass
        store_events(db, created["id"], history[-5:])  # not folded yet: read directly
        answer = dashboard.query(created["id"], agg("7d", field="v"))
        result = answer.json()["result"]
        in_window = [n for n, (at, _) in enumerate(history) if at >= now - dt.timedelta(days=7)]
        assert result["count"] == len(in_window) and result["value"] == sum(in_window)
        ops[size] = request_log(clean, "query", answer.headers["X-Request-Id"])["firestoreOps"]
    print(f"7d aggregate Firestore RPCs: {ops}")
    assert ops[100] == ops[3000] <= 6
