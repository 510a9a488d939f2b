"""POST /webhooks/inbound/{sourceId}: every row of docs/ingest.md's table, in order."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests import partner
from tests.support import request_log


@pytest.fixture
def url(source) -> str:
    return source["url"]


def events(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("events")
    return [{**d.to_dict(), "id": d.id} for d in ref.stream()]


def firestore_ops(stack, answer) -> int:
    return request_log(stack, "ingest", answer.headers["X-Request-Id"])["firestoreOps"]


def test_signed_event_is_stored_with_raw_body_and_audit_fields(url, source, db):
    body = b'{"amount": 12.5,  "currency": "EUR"}'  # odd spacing: bytes are kept as sent
    answer = partner.send(url, source["secret"], body=body, key="order-1")
    assert answer.status_code == 202, answer.text
    reply = answer.json()
    assert reply["duplicate"] is False and reply["id"].startswith("evt_")
    (stored,) = events(db, source["id"])
    assert stored["id"] == reply["id"]
    assert stored["body"] == body and stored["size"] == len(body)
    assert stored["idempotencyKey"] == "order-1" and stored["scheme"] == "inlet"
    assert stored["keyId"].startswith("key_")
    assert abs(stored["signedAt"].timestamp() - time.time()) < 30
    assert stored["receivedAt"] >= stored["signedAt"] - dt.timedelta(seconds=1)


def test_repeated_idempotency_key_answers_200_with_the_first_id(url, source, db):
    first = partner.send(url, source["secret"], {"n": 1}, key="same")
    again = partner.send(url, source["secret"], {"n": 1}, key="same")
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert len(events(db, source["id"])) == 1


def test_idempotency_key_reused_with_another_body_is_422_and_stores_nothing(url, source, db):
    first = partner.send(url, source["secret"], body=b'{"n": 1}', key="reused")
    assert first.status_code == 202
    reused = partner.send(url, source["secret"], body=b'{"n":1}', key="reused")  # other bytes
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    (stored,) = events(db, source["id"])
    assert stored["id"] == first.json()["id"] and stored["body"] == b'{"n": 1}'
    # The first body still answers as a duplicate.
    again = partner.send(url, source["secret"], body=b'{"n": 1}', key="reused")
    assert again.json() == {"id": first.json()["id"], "duplicate": True}


def test_fifty_concurrent_repeats_store_exactly_one_event(url, source, db):
    answers = partner.repeats(url, source["secret"], b'{"amount": 5}', "burst-key", 50)
    partner.one_accepted(answers)
    assert len(events(db, source["id"])) == 1


def test_idempotency_key_is_scoped_per_source(tenant, url, source, db):
    other = tenant.create("Other").json()
    assert partner.send(url, source["secret"], key="k").status_code == 202
    assert partner.send(other["url"], other["secret"], key="k").status_code == 202


# --- refusals, in the README's order ------------------------------------------------------------


def test_body_over_256_kib_is_413_by_content_length(clean, url, source):
    body = b'{"x": "' + b"a" * (256 * 1024) + b'"}'
    answer = partner.send(url, source["secret"], body=body)
    assert answer.status_code == 413
    assert firestore_ops(clean, answer) == 0


def test_chunked_body_over_256_kib_is_413_without_reading_it_all(clean, url, source):
    chunk = b"a" * 65536

    def body():
        yield b'{"x": "'
        for _ in range(64):  # 4 MiB offered; the service stops at the cap
            yield chunk
        yield b'"}'

    hdrs = partner.headers(source["secret"], b"")
    answer = requests.post(url, data=body(), headers=hdrs, timeout=30)
    assert answer.status_code == 413
    assert firestore_ops(clean, answer) == 0


def test_chunked_body_under_the_cap_is_accepted(url, source):
    body = b'{"chunked": true}'
    hdrs = partner.headers(source["secret"], body)
    answer = requests.post(url, data=iter([body[:5], body[5:]]), headers=hdrs, timeout=30)
    assert answer.status_code == 202, answer.text


def test_size_is_checked_before_headers(url):
    answer = requests.post(url, data=b"x" * (256 * 1024 + 1), timeout=30)
    assert answer.status_code == 413


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Inlet-Signature", None),
        ("Inlet-Signature", "v1=abc"),
        ("Inlet-Signature", "t=now,v1=" + "0" * 64),
        ("Inlet-Signature", "t=1700000000"),
        ("Inlet-Signature", "t=1700000000,v1=xyz"),
        ("Idempotency-Key", None),
        ("Idempotency-Key", ""),
        ("Idempotency-Key", "k" * 256),
        ("Idempotency-Key", "tab\tkey"),
    ],
)
def test_missing_or_malformed_headers_are_400(clean, url, source, name, value):
    body = b"{}"
    hdrs = partner.headers(source["secret"], body)
    if value is None:
        del hdrs[name]
    else:
        hdrs[name] = value
    hdrs["Content-Type"] = "text/plain"  # 400 comes before 415
    answer = requests.post(url, data=body, headers=hdrs, timeout=10)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()["error"]) == {"code", "message"}
    assert firestore_ops(clean, answer) == 0


def test_idempotency_key_of_255_printable_characters_is_accepted(url, source):
    assert partner.send(url, source["secret"], key="~" * 255).status_code == 202


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(clean, url, source, content_type):
    body = b"{}"
    hdrs = partner.headers(source["secret"], body, timestamp=int(time.time()) - 3600)
    if content_type is None:
        del hdrs["Content-Type"]
    else:
        hdrs["Content-Type"] = content_type
    answer = requests.post(url, data=body, headers=hdrs, timeout=10)
    assert answer.status_code == 415  # before the (stale) timestamp's 401
    assert firestore_ops(clean, answer) == 0


def test_json_content_type_with_charset_is_accepted(url, source):
    answer = partner.send(
        url, source["secret"], headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 202


@pytest.mark.parametrize("offset", [-301, 61])
def test_timestamp_outside_window_is_401_before_any_lookup(clean, ingest_url, offset):
    body = b"{}"
    hdrs = partner.headers("whsec_x", body, timestamp=int(time.time()) + offset)
    answer = requests.post(
        f"{ingest_url}/webhooks/inbound/src_unknown", data=body, headers=hdrs, timeout=10
    )
    assert answer.status_code == 401  # not 404: the source is never looked up
    assert firestore_ops(clean, answer) == 0


def test_timestamp_slightly_ahead_is_accepted(url, source):
    body = b"{}"
    hdrs = partner.headers(source["secret"], body, timestamp=int(time.time()) + 30)
    assert requests.post(url, data=body, headers=hdrs, timeout=10).status_code == 202


def test_a_deleted_source_is_404_and_cached(clean, tenant, source):
    assert tenant.delete(source["id"]).status_code == 204
    first = partner.send(source["url"], source["secret"])
    second = partner.send(source["url"], source["secret"])
    assert first.status_code == second.status_code == 404
    assert firestore_ops(clean, second) == 0  # negatively cached


def test_random_well_formed_source_ids_cost_no_lookup_and_evict_nothing(clean, ingest_url, url, db):
    """docs/ingest.md: ids carry a keyed check, verified before any lookup or cache entry."""
    bad = partner.send(url, "whsec_wrong")  # loads the real source into the cache
    assert bad.status_code == 401
    for n in range(60):
        random_hex = uuid.uuid4().hex
        # Both shapes: a checked id with a made-up check, and a legacy id nobody listed.
        source_id = "src_" + (random_hex if n % 2 else random_hex[:20])
        answer = partner.send(f"{ingest_url}/webhooks/inbound/{source_id}", "whsec_x")
        assert answer.status_code == 404
        assert firestore_ops(clean, answer) == 0
    # The real source's keys are still cached: a bad signature costs at most the once-a-second
    # reload, and no second decryption (an evicted source would be decrypted and audited again).
    again = partner.send(url, "whsec_wrong")
    assert again.status_code == 401
    line = request_log(clean, "ingest", again.headers["X-Request-Id"])
    ring_writes = 1 if "deliveryRing" in line else 0  # the inspector's once a second
    assert line["firestoreOps"] - ring_writes <= 1
    decrypted = [
        d for d in db.collection("audit").stream() if d.get("action") == "secret.decrypted"
    ]
    assert len(decrypted) == 1


@pytest.mark.parametrize("source_id", ["__reserved__", "..", "src_" + "f" * 2000, "SRC_x"])
def test_malformed_source_ids_are_404_without_a_lookup(clean, ingest_url, source_id):
    answer = partner.send(f"{ingest_url}/webhooks/inbound/{source_id}", "whsec_x")
    assert answer.status_code == 404
    assert firestore_ops(clean, answer) == 0


def test_bad_signature_is_401_and_stores_nothing(clean, url, source, db):
    answer = partner.send(url, "whsec_" + base64.b64encode(b"k" * 32).decode())
    assert answer.status_code == 401
    assert events(db, source["id"]) == []


def test_any_of_several_v1_signatures_may_match(url, source):
    body = b'{"a": 1}'
    hdrs = partner.headers(source["secret"], body)
    t, good = hdrs["Inlet-Signature"].split(",")
    hdrs["Inlet-Signature"] = f"{t},v1={'0' * 64},{good}"
    assert requests.post(url, data=body, headers=hdrs, timeout=10).status_code == 202


def test_signature_over_reserialized_body_fails(url, source):
    signed = b'{"a": 1}'
    hdrs = partner.headers(source["secret"], signed)
    answer = requests.post(url, data=b'{"a":1}', headers=hdrs, timeout=10)
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1} trailing',
        b'{"a": ',
        b"\xff\xfe{}",
        b"[" * 65 + b"]" * 65,
        b"[" * 100000 + b"]" * 100000,
    ],
)
def test_body_that_is_not_strict_json_is_400(url, source, db, body):
    answer = partner.send(url, source["secret"], body=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"
    assert events(db, source["id"]) == []


def test_nesting_of_exactly_64_is_accepted(url, source):
    assert partner.send(url, source["secret"], body=b"[" * 64 + b"]" * 64).status_code == 202


def test_standard_webhooks_headers_are_accepted_and_deduplicated(url, source, db):
    body = '{"standard": true}'
    signer = StandardWebhook(source["secret"])
    now = dt.datetime.now(dt.UTC)
    hdrs = {
        "Content-Type": "application/json",
        "webhook-id": "msg_std_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign("msg_std_1", now, body),
    }
    first = requests.post(url, data=body, headers=hdrs, timeout=10)
    assert first.status_code == 202, first.text
    again = requests.post(url, data=body, headers=hdrs, timeout=10)
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    (stored,) = events(db, source["id"])
    assert stored["scheme"] == "standard" and stored["idempotencyKey"] == "msg_std_1"


def test_standard_webhooks_signature_with_the_wrong_key_is_401(url, source):
    body = "{}"
    now = dt.datetime.now(dt.UTC)
    signer = StandardWebhook("whsec_" + base64.b64encode(b"z" * 32).decode())
    hdrs = {
        "Content-Type": "application/json",
        "webhook-id": "msg_std_2",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": "v1,@@@ " + signer.sign("msg_std_2", now, body),
    }
    assert requests.post(url, data=body, headers=hdrs, timeout=10).status_code == 401


def test_standard_webhooks_timestamp_more_than_60s_ahead_is_401(url, source):
    body = "{}"
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    hdrs = {
        "Content-Type": "application/json",
        "webhook-id": "msg_std_3",
        "webhook-timestamp": str(int(ahead.timestamp())),
        "webhook-signature": StandardWebhook(source["secret"]).sign("msg_std_3", ahead, body),
    }
    assert requests.post(url, data=body, headers=hdrs, timeout=10).status_code == 401


def test_error_bodies_are_json(url):
    answer = requests.post(
        url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert answer.headers["Content-Type"].startswith("application/json")
    assert json.loads(answer.text)["error"]["code"] == "invalid_signature_header"


def test_a_burst_on_a_cold_cache_loads_and_decrypts_the_keys_once(url, source, db):
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda n: partner.send(url, source["secret"]).status_code, range(16)))
    assert codes == [202] * 16
    decrypted = [
        d.to_dict()
        for d in db.collection("audit").stream()
        if d.get("action") == "secret.decrypted" and d.get("sourceId") == source["id"]
    ]
    assert len(decrypted) == 1 and decrypted[0]["actor"] == "ingest"


def test_a_body_shorter_than_its_content_length_is_400(url, source):
    import socket
    from urllib.parse import urlsplit

    target = urlsplit(url)
    body = b'{"a": 1}'
    hdrs = partner.headers(source["secret"], body)
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    request = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n{head}"
        f"Content-Length: {len(body) + 100}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((target.hostname, target.port), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)  # the client stops sending: the body is cut short
        answer = conn.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 400"), answer[:80]
