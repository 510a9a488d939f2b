"""Per-source rate limits (docs/ingest.md "Rate limits"): 429 with ``Retry-After`` past the limit,
held
across two ingest workers at one lease write per worker, source and second."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import partner
from tests.support import request_log


def patch(tenant, source_id: str, body) -> requests.Response:
    url = f"{tenant.base}/v1/sources/{source_id}"
    return requests.patch(url, json=body, headers=tenant.auth, timeout=15)


def stored(db, source_id: str) -> int:
    events = db.collection("sources").document(source_id).collection("events")
    return len(list(events.select([]).stream()))


def log_lines(path, source_id: str) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and source_id in line:
            entry = json.loads(line)
            if entry.get("httpRequest", {}).get("requestUrl", "").endswith(source_id):
                lines.append(entry)
    return lines


@pytest.fixture
def second_worker(clean):
    """A second ingest instance on the same emulator, logging to its own file."""
    from devstack.processes import free_port, start_service

    port = free_port()
    logs = clean.state_dir / "logs-second-ingest"
    instance = start_service("ingest", port, clean.service_env(), logs)
    try:
        yield f"http://127.0.0.1:{port}", instance
    finally:
        instance.stop()


def test_a_source_has_a_default_limit_that_create_and_patch_change(clean, tenant, db):
    made = tenant.create("Orders")
    assert made.status_code == 201 and made.json()["rateLimit"] == 500
    source_id = made.json()["id"]
    assert tenant.create("Slow", rateLimit=5).json()["rateLimit"] == 5
    assert tenant.create("Free", rateLimit=None).json()["rateLimit"] is None
    changed = patch(tenant, source_id, {"rateLimit": 20, "label": " Orders v2 ", "retention": 50})
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("rateLimit", "label", "retention")} == {
        "rateLimit": 20,
        "label": "Orders v2",
        "retention": 50,
    }
    assert "secret" not in changed.json()
    assert patch(tenant, source_id, {"rateLimit": None}).json()["rateLimit"] is None
    assert tenant.get(source_id).json()["rateLimit"] is None
    audit = [a.to_dict() for a in db.collection("audit").stream()]
    changes = sorted(a["fields"] for a in audit if a["action"] == "source.changed")
    assert changes == [["label", "rateLimit", "retention"], ["rateLimit"]]
    assert patch(tenant, source_id, {}).status_code == 200  # nothing to change: nothing written


@pytest.mark.parametrize(
    "body",
    [
        {"rateLimit": 0},
        {"rateLimit": 10_001},
        {"rateLimit": 1.5},
        {"rateLimit": True},
        {"rateLimit": "10"},
        {"retention": 0},
        {"label": ""},
        {"owner": "user_mallory"},
        {"secret": "whsec_x"},
    ],
)
def test_a_patch_that_does_not_fit_is_400_naming_the_field(clean, tenant, source, body):
    answer = patch(tenant, source["id"], body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
    assert tenant.get(source["id"]).json()["rateLimit"] == 500


def test_past_the_limit_is_429_with_retry_after_and_nothing_stored(clean, tenant, db):
    source = tenant.create("Limited", rateLimit=3).json()
    answers = [partner.send(source["url"], source["secret"], {"n": n}) for n in range(12)]
    codes = Counter(a.status_code for a in answers)
    assert set(codes) <= {202, 429} and codes[429] >= 1
    refused = [a for a in answers if a.status_code == 429]
    for answer in refused:
        assert answer.headers["Retry-After"].isdigit() and int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["error"]["code"] == "rate_limited"
    assert stored(db, source["id"]) == codes[202]
    # A refusal costs no Firestore call besides the second's one lease and one ring write.
    for answer in refused:
        line = request_log(clean, "ingest", answer.headers["X-Request-Id"])
        allowed = (line.get("rateLease") == "leased") + (line.get("deliveryRing") == "written")
        assert line["firestoreOps"] <= allowed, line
        assert "outbox" not in json.dumps(line)
    listed = requests.get(
        f"{tenant.base}/v1/sources/{source['id']}/deliveries", headers=tenant.auth, timeout=15
    ).json()["items"]
    assert any(item["status"] == 429 and item["code"] == "rate_limited" for item in listed)


def test_the_limit_is_checked_after_the_signature_and_before_parsing(clean, tenant, db):
    source = tenant.create("Limited", rateLimit=1).json()
    wrong = "whsec_" + "D" * 43
    for n in range(10):  # unsigned traffic spends none of the partner's budget
        assert partner.send(source["url"], wrong, {"n": n}).status_code == 401
    assert partner.send(source["url"], source["secret"]).status_code == 202
    spent = [partner.send(source["url"], source["secret"], body=b"{not json") for _ in range(5)]
    # Once the second's budget is spent, a body that is not JSON is refused before parsing.
    assert 429 in {a.status_code for a in spent}
    assert stored(db, source["id"]) == 1


def test_a_source_without_a_limit_never_leases(clean, tenant, db):
    source = tenant.create("Free", rateLimit=None).json()
    answers = [partner.send(source["url"], source["secret"], {"n": n}) for n in range(20)]
    assert {a.status_code for a in answers} == {202}
    leases = db.collection("sources").document(source["id"]).collection("rate_leases")
    assert list(leases.stream()) == []
    for answer in answers:
        assert "rateLease" not in request_log(clean, "ingest", answer.headers["X-Request-Id"])


def test_an_honest_sender_under_the_limit_is_never_refused_across_two_workers(
    clean, tenant, db, second_worker
):
    base, _ = second_worker
    source = tenant.create("Steady", rateLimit=20).json()
    urls = [source["url"], f"{base}/webhooks/inbound/{source['id']}"]
    codes = []
    for n in range(48):  # at most 12 a second (60 % of the limit), alternating workers
        codes.append(partner.send(urls[n % 2], source["secret"], {"n": n}).status_code)
        time.sleep(1 / 12)  # never catching up in a burst: an honest, steady sender
    assert codes == [202] * 48
    assert stored(db, source["id"]) == 48


def test_a_flood_over_two_workers_is_held_to_the_limit_at_one_lease_a_second_each(
    clean, tenant, db, second_worker
):
    base, worker = second_worker
    limit = 10
    source = tenant.create("Flooded", rateLimit=limit).json()
    urls = [source["url"], f"{base}/webhooks/inbound/{source['id']}"]
    for url in urls:  # each worker's key cache is filled (one read and its audit) first
        assert partner.send(url, source["secret"]).status_code == 202
    time.sleep(1)  # a fresh second: the flood's calendar seconds hold only its own events
    counter = iter(range(100_000))
    lock = threading.Lock()
    codes: Counter = Counter()
    deadline = time.monotonic() + 6  # bounded in time and in count

    def flood(slot: int) -> None:
        with requests.Session() as session:
            for n in counter:
                if n >= 3000 or time.monotonic() > deadline:
                    return
                body = json.dumps({"n": n}).encode()
                answer = session.post(
                    urls[slot % 2],
                    data=body,
                    headers=partner.headers(source["secret"], body),
                    timeout=30,
                )
                with lock:
                    codes[answer.status_code] += 1

    started = time.time()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(flood, range(6)))
    span = time.time() - started
    assert set(codes) <= {202, 429} and codes[429] > codes[202]
    accepted = stored(db, source["id"]) - 2
    assert accepted == codes[202]
    seconds = math.ceil(span) + 1  # calendar seconds the run touched
    assert accepted <= limit * seconds  # exact per second, whichever worker leased
    # Each worker leased at most once per second for the source, and refusals cost nothing.
    for path in (clean.processes["ingest"].log_path, worker.log_path):
        lines = log_lines(path, source["id"])
        leases = Counter(line["rateSecond"] for line in lines if "rateLease" in line)
        assert leases and max(leases.values()) == 1, leases
        for line in lines:
            if line["httpRequest"]["status"] == 429:
                allowed = ("rateLease" in line) + (line.get("deliveryRing") == "written")
                assert line["firestoreOps"] <= allowed, line
    print(
        f"rate limit {limit}/s over {span:.1f} s, 2 workers: accepted {accepted}, "
        f"ratio {accepted / (limit * span):.2f}, refused {codes[429]}"
    )
