"""GET /v1/sources/{id}/deliveries: the delivery inspector (docs/partners.md "Debugging your
integration")."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests import partner
from tests.partner import SourceAPI
from tests.support import request_log, store_events

FIELDS = {"at", "status", "code", "scheme", "keyId", "size", "idempotencyKey"}


def deliveries(api: SourceAPI, source_id: str, **params) -> requests.Response:
    url = f"{api.base}/v1/sources/{source_id}/deliveries"
    return requests.get(url, params=params, headers=api.auth, timeout=15)


def ring(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("delivery_ring")
    return [d.to_dict() for d in ref.stream()]


def next_second() -> None:
    """Sleep into the next unix second: the ring records once a second per source."""
    time.sleep(math.ceil(time.time()) - time.time() + 0.05)


def ring_outcome(stack, answer) -> str | None:
    return request_log(stack, "ingest", answer.headers["X-Request-Id"]).get("deliveryRing")


def test_accepted_and_refused_deliveries_are_listed_newest_first(clean, tenant, source, db):
    secret, url = source["secret"], source["url"]
    accepted = partner.send(url, secret, body=b'{"amount": 1}', key="order-1")
    assert accepted.status_code == 202
    next_second()
    wrong_secret = "whsec_" + "A" * 43
    bad = partner.send(url, wrong_secret, body=b'{"amount": 2}', key="order-2")
    assert bad.status_code == 401
    next_second()
    not_json = partner.send(url, secret, body=b'{"amount": NaN}', key="order-3")
    assert not_json.status_code == 400
    next_second()
    duplicate = partner.send(url, secret, body=b'{"amount": 1}', key="order-1")
    assert duplicate.status_code == 200
    next_second()
    reused = partner.send(url, secret, body=b'{"amount": 9}', key="order-1")
    assert reused.status_code == 422

    answer = deliveries(tenant, source["id"])
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["nextCursor"] is None
    items = page["items"]
    assert all(set(item) == FIELDS for item in items)
    assert [(i["status"], i["code"], i["idempotencyKey"]) for i in items] == [
        (422, "idempotency_key_reused", "order-1"),
        (200, "duplicate", "order-1"),
        (400, "invalid_json", "order-3"),
        (401, "invalid_signature", "order-2"),
        (202, None, "order-1"),
    ]
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    (event,) = db.collection("sources").document(source["id"]).collection("events").stream()
    current_key = event.get("keyId")
    # Every item names the key: the one that verified, or for the 401 the one to sign with.
    assert {i["keyId"] for i in items} == {current_key}
    assert [i["size"] for i in items] == [13, 13, 15, 13, 13]
    assert {i["scheme"] for i in items} == {"inlet"}
    assert items[-1]["at"] == event.get("receivedAt").isoformat().replace("+00:00", "Z")


def test_no_body_signature_or_secret_is_listed_or_stored(clean, tenant, source, db):
    marker = "secret-payload-" + uuid.uuid4().hex
    body = f'{{"card": "{marker}"'.encode()  # not JSON: refused after the signature matched
    hdrs = partner.headers(source["secret"], body, key="key-1")
    assert requests.post(source["url"], data=body, headers=hdrs, timeout=10).status_code == 400
    next_second()
    wrong = partner.headers("whsec_" + "B" * 43, body, key="key-2")
    assert requests.post(source["url"], data=body, headers=wrong, timeout=10).status_code == 401
    signatures = [h["Inlet-Signature"].split("v1=")[1] for h in (hdrs, wrong)]

    listed = deliveries(tenant, source["id"]).text
    stored = ring(db, source["id"])
    assert len(stored) == 2 and all(set(entry) == FIELDS for entry in stored)
    for text in (listed, repr(stored)):
        assert marker not in text and source["secret"] not in text
        assert not any(signature in text for signature in signatures)


def test_a_standard_webhooks_refusal_shows_its_scheme_and_webhook_id(clean, tenant, source):
    body = b'{"n": 1}'
    msg_id = "msg_" + uuid.uuid4().hex
    headers = StandardWebhook("whsec_" + "C" * 43).sign(msg_id, dt.datetime.now(dt.UTC), body)
    answer = requests.post(
        source["url"],
        data=body,
        headers={
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": headers,
        },
        timeout=10,
    )
    assert answer.status_code == 401
    (item,) = deliveries(tenant, source["id"]).json()["items"]
    assert item["scheme"] == "standard" and item["idempotencyKey"] == msg_id
    assert item["code"] == "invalid_signature" and item["keyId"].startswith("key_")


def test_a_bad_signature_during_a_grace_period_names_the_new_key(clean, tenant, source):
    assert partner.send(source["url"], source["secret"], key="before").status_code == 202
    rotated = tenant.rotate(source["id"], graceSeconds=3600).json()
    assert partner.send(source["url"], rotated["secret"], key="after").status_code == 202
    next_second()
    assert partner.send(source["url"], "whsec_" + "E" * 43, key="wrong").status_code == 401
    refused, after, before = deliveries(tenant, source["id"]).json()["items"]
    assert refused["status"] == 401 and before["keyId"] != after["keyId"]
    assert refused["keyId"] == after["keyId"]  # the current key, not the one in its grace


def test_pages_follow_one_stable_order_across_events_and_refusals(clean, tenant, source, db):
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    # Ties on purpose: three events in one microsecond, and a ring entry at that same time.
    times = [base + dt.timedelta(seconds=s) for s in (0, 1, 1, 1, 2, 4, 5)]
    store_events(db, source["id"], [(at, {"n": n}) for n, at in enumerate(times)])
    ring_ref = db.collection("sources").document(source["id"]).collection("delivery_ring")
    for slot, seconds in (("001", 1), ("002", 3), ("003", 5), ("004", 6)):
        ring_ref.document(slot).set(
            {
                "at": base + dt.timedelta(seconds=seconds),
                "status": 401,
                "code": "invalid_signature",
                "scheme": "inlet",
                "keyId": "key_x",
                "size": 2,
                "idempotencyKey": f"ring-{slot}",
            }
        )
    everything = deliveries(tenant, source["id"], limit=100).json()
    assert everything["nextCursor"] is None and len(everything["items"]) == 11
    ats = [item["at"] for item in everything["items"]]
    assert ats == sorted(ats, reverse=True)
    for size in (1, 2, 3, 5):
        seen, cursor = [], None
        while True:
            params = {"limit": size, **({"cursor": cursor} if cursor else {})}
            answer = deliveries(tenant, source["id"], **params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert 1 <= len(page["items"]) <= size
            seen += page["items"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == everything["items"], size


def test_default_limit_is_50_and_a_page_costs_three_reads(clean, tenant, source, db):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    store_events(db, source["id"], [(start + dt.timedelta(seconds=n), {}) for n in range(51)])
    answer = deliveries(tenant, source["id"])
    page = answer.json()
    assert len(page["items"]) == 50 and page["nextCursor"] is not None
    # The source's ownership, one query of the events (without bodies), one of the ring.
    assert request_log(clean, "ingest", answer.headers["X-Request-Id"])["firestoreOps"] == 3
    rest = deliveries(tenant, source["id"], cursor=page["nextCursor"]).json()
    assert len(rest["items"]) == 1 and rest["nextCursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5", " 5", "", "\u0665"])
def test_a_limit_outside_1_to_100_is_400(clean, tenant, source, limit):
    answer = deliveries(tenant, source["id"], limit=limit)
    assert answer.status_code == 400
    assert "1 to 100" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "cursor", ["", "x", "1.e.", "1.r.25", "1.q.evt_1", "1.e.evt_a/b", "99999999999999999999.r.001"]
)
def test_a_cursor_this_api_did_not_return_is_400(clean, tenant, source, cursor):
    answer = deliveries(tenant, source["id"], cursor=cursor)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_another_tenants_source_is_404_and_members_may_read(clean, ingest_url, source):
    outsider = SourceAPI(ingest_url, clean.issuer.session_token("user_mallory"))
    assert deliveries(outsider, source["id"]).status_code == 404
    admin = SourceAPI(ingest_url, clean.issuer.session_token("user_a", org="org_1"))
    member = SourceAPI(ingest_url, clean.issuer.session_token("user_m", org="org_1", role="member"))
    org_source = admin.create("Org orders").json()
    assert partner.send(org_source["url"], org_source["secret"]).status_code == 202
    answer = deliveries(member, org_source["id"])
    assert answer.status_code == 200 and len(answer.json()["items"]) == 1
    assert deliveries(outsider, org_source["id"]).status_code == 404
    assert (
        requests.get(f"{ingest_url}/v1/sources/{source['id']}/deliveries", timeout=10).status_code
        == 401
    )


def test_a_deleted_source_is_404_and_its_ring_is_purged(clean, tenant, source, db):
    from tests.support import sweep

    assert partner.send(source["url"], "whsec_wrong").status_code == 401
    assert len(ring(db, source["id"])) == 1
    assert tenant.delete(source["id"]).status_code == 204
    assert deliveries(tenant, source["id"]).status_code == 404
    ref = db.collection("sources").document(source["id"])
    ref.update({"deletedAt": ref.get().get("deletedAt") - dt.timedelta(minutes=5)})
    assert sweep(clean)["purged"] == 1
    assert ring(db, source["id"]) == []


def test_a_flood_of_bad_signatures_writes_the_ring_at_most_once_a_second(clean, tenant, source, db):
    body = b'{"n": 1}'
    wrong = "whsec_" + "D" * 43

    def post(n: int) -> requests.Response:
        hdrs = partner.headers(wrong, body, key=f"flood-{n}")
        return requests.post(source["url"], data=body, headers=hdrs, timeout=30)

    assert partner.send(source["url"], source["secret"]).status_code == 202  # keys cached
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(300)))
    span = time.time() - started
    assert {a.status_code for a in answers} == {401}
    lines = [request_log(clean, "ingest", a.headers["X-Request-Id"]) for a in answers]
    writes = sum(1 for line in lines if line.get("deliveryRing") == "written")
    budget = math.ceil(span) + 1
    assert 1 <= writes <= budget
    assert 1 <= len(ring(db, source["id"])) <= budget
    # Besides those writes, only the once-a-second key reload reads (docs/ingest.md).
    assert sum(line["firestoreOps"] for line in lines) - writes <= budget
    newest = deliveries(tenant, source["id"], limit=1).json()["items"][0]
    assert newest["status"] == 401 and newest["code"] == "invalid_signature"
    assert newest["idempotencyKey"].startswith("flood-")


@pytest.mark.parametrize(
    "case", ["missing_signature", "stale", "unsupported_type", "too_large", "unknown_source"]
)
def test_refusals_before_the_source_is_identified_write_nothing(
    clean, ingest_url, source, db, case
):
    body = b'{"n": 1}'
    hdrs = partner.headers(source["secret"], body)
    url = source["url"]
    if case == "missing_signature":
        del hdrs["Inlet-Signature"]
    elif case == "stale":
        hdrs = partner.headers(source["secret"], body, timestamp=int(time.time()) - 600)
    elif case == "unsupported_type":
        hdrs["Content-Type"] = "text/plain"
    elif case == "too_large":
        body = b'{"x": "' + b"a" * (256 * 1024) + b'"}'
        hdrs = partner.headers(source["secret"], body)
    else:
        missing = clean_source_id(source["id"])
        url = f"{ingest_url}/webhooks/inbound/{missing}"
    answer = requests.post(url, data=body, headers=hdrs, timeout=10)
    assert answer.status_code in (400, 401, 404, 413, 415)
    assert ring_outcome(clean, answer) is None
    assert ring(db, source["id"]) == []


def clean_source_id(source_id: str) -> str:
    """A well-formed id that no source has (its keyed check fails): refused at step 5."""
    return source_id[:-1] + ("0" if source_id[-1] != "0" else "1")


def test_a_failing_ring_write_never_changes_the_answer(clean, source, db):
    """An ingest instance whose Firestore answers are lost: the ring write times out (1 s, no
    retry), the refusal is answered as ever, and the log line counts the failure."""
    from devstack.processes import free_port, start_service
    from tests.support import CuttableProxy

    proxy = CuttableProxy(clean.firestore_host)
    port = free_port()
    env = {**clean.service_env(), "FIRESTORE_EMULATOR_HOST": proxy.address}
    instance = start_service("ingest", port, env, clean.state_dir / "logs")
    url = f"http://127.0.0.1:{port}/webhooks/inbound/{source['id']}"
    try:
        assert partner.send(url, source["secret"]).status_code == 202  # keys cached
        next_second()
        proxy.swallow_answers()
        answer = partner.send(url, source["secret"], body=b"{bad json")
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
        request_id = answer.headers["X-Request-Id"]
    finally:
        proxy.close()
        instance.stop()
    line = request_log(clean, "ingest", request_id)  # the instance shares the stack's log file
    assert line["deliveryRing"] == "failed" and line["deliveryRingError"]
