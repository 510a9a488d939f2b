"""Faults under load: the Firestore emulator paused mid-burst (docs/local-stack.md: SIGSTOP,
not a
restart), for ingest and clerk-sync alike.

The promise a sender relies on: every request answered 2xx is stored exactly once, and every
request that was not succeeds when retried with the same idempotency key (or svix-id), without
storing anything twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import pytest
import requests
from google.api_core.exceptions import NotFound

from tests import clerk, partner

SENDERS = 6
PER_SENDER = 25
RETRY_BUDGET_S = 60.0


def paused_mid_load(stack, send_all) -> dict[str, int]:
    """Run ``send_all`` on SENDERS threads; pause the emulator once a third is answered, for
    eight seconds. The answers by key."""
    answers: dict[str, int] = {}
    lock = threading.Lock()
    third = threading.Event()

    def record(key: str, status: int) -> None:
        with lock:
            answers[key] = status
            if len(answers) >= SENDERS * PER_SENDER // 3:
                third.set()

    threads = [threading.Thread(target=send_all, args=(i, record)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    emulator = stack.processes["firestore"]
    third.wait(60)
    emulator.pause()
    try:
        time.sleep(8)  # past the 5 s RPC deadline: in-flight requests must fail cleanly
    finally:
        emulator.resume()
    for thread in threads:
        thread.join(120)
    return answers


def retry_until_2xx(send) -> int:
    deadline = time.monotonic() + RETRY_BUDGET_S
    while True:
        status = send()
        if status < 300 or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


@pytest.mark.slow
def test_ingest_events_acknowledged_during_an_outage_are_stored_exactly_once(clean, source, db):
    bodies: dict[str, bytes] = {}

    def send(key: str) -> int:
        body = bodies.setdefault(key, f'{{"n": "{key}"}}'.encode())
        try:
            answer = partner.send(source["url"], source["secret"], key=key, body=body)
        except requests.RequestException:
            return 0  # no answer: the sender cannot know, so it retries
        return answer.status_code

    def send_all(sender: int, record) -> None:
        for i in range(PER_SENDER):
            key = f"fault-{sender}-{i}"
            record(key, send(key))

    answers = paused_mid_load(clean, send_all)
    failed = [key for key, status in answers.items() if status >= 300 or status == 0]
    assert all(status in {0, 202, 409, 503} for status in answers.values()), answers
    assert failed, "the pause refused nothing: the test did not exercise the outage"

    for key in failed:
        assert retry_until_2xx(lambda key=key: send(key)) in {200, 202}, key

    events = db.collection("sources").document(source["id"]).collection("events")
    stored = [snap.get("idempotencyKey") for snap in events.stream()]
    assert sorted(stored) == sorted(answers), "each key stored exactly once"
    for key in answers:  # and a late repeat of any of them is a duplicate, not a new event
        again = partner.send(source["url"], source["secret"], key=key, body=bodies[key])
        assert again.status_code == 200 and again.json()["duplicate"] is True


@pytest.mark.slow
def test_clerk_deliveries_acknowledged_during_an_outage_are_applied_exactly_once(clean, db):
    base, secret = clean.url("clerk-sync"), clean.webhook_secret
    envelopes: dict[str, dict] = {}

    def deliver(svix_id: str) -> int:
        user_id = svix_id.replace("msg_", "user_")
        envelope = envelopes.setdefault(
            svix_id, clerk.event("user.created", clerk.user(user_id, 10, username=svix_id))
        )
        try:
            return clerk.post(base, secret, envelope, msg_id=svix_id).status_code
        except requests.RequestException:
            return 0

    def send_all(sender: int, record) -> None:
        for i in range(PER_SENDER):
            svix_id = f"msg_fault_{sender}_{i}"
            record(svix_id, deliver(svix_id))

    answers = paused_mid_load(clean, send_all)
    failed = [key for key, status in answers.items() if status != 200]
    assert all(status in {0, 200, 503} for status in answers.values()), answers
    assert failed, "the pause refused nothing: the test did not exercise the outage"
    for svix_id in failed:
        assert retry_until_2xx(lambda svix_id=svix_id: deliver(svix_id)) == 200, svix_id

    for svix_id in answers:
        record = db.collection("deliveries").document(svix_id).get()
        assert record.exists and record.get("status") == "processed", svix_id
        user = db.collection("users").document(svix_id.replace("msg_", "user_")).get()
        assert user.get("username") == svix_id
        again = clerk.post(base, secret, envelopes[svix_id], msg_id=svix_id)
        assert again.status_code == 200 and again.json()["duplicate"] is True


@pytest.mark.slow
def test_a_tasks_outage_mid_burst_loses_no_event_and_the_sweep_brings_blocks_up_to_date(
    clean, tenant, source, db
):
    from tests.support import sweep, wait_for

    block = partner.count_block(source["id"])
    url = f"{clean.url('query')}/v1/blocks/burst"
    assert requests.put(url, json=block, headers=tenant.auth, timeout=30).status_code == 201
    tasks = clean.processes["tasks"]
    answered: list[int] = []
    lock = threading.Lock()

    def send_all(sender: int) -> None:
        for i in range(PER_SENDER):
            status = partner.send(
                source["url"], source["secret"], {"n": f"{sender}-{i}"}
            ).status_code
            with lock:
                answered.append(status)
                if len(answered) == SENDERS * PER_SENDER // 3:
                    tasks.pause()  # mid-burst: Cloud Tasks stops answering

    threads = [threading.Thread(target=send_all, args=(i,)) for i in range(SENDERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        tasks.resume()
    assert answered.count(202) == SENDERS * PER_SENDER, answered  # no event failed or was lost
    events = db.collection("sources").document(source["id"]).collection("events")
    assert events.count().get()[0][0].value == SENDERS * PER_SENDER
    # The refreshes the outage swallowed are owed in the outbox; the sweep (every minute in
    # production) re-enqueues them once they are a minute old.
    for marker in db.collection("refresh_pending").stream():
        aged = {"createdAt": marker.get("createdAt") - dt.timedelta(minutes=2)}
        if marker.get("enqueuedAt") is not None:
            aged["enqueuedAt"] = marker.get("enqueuedAt") - dt.timedelta(minutes=11)
        # A refresh may serve and remove a marker meanwhile: nothing is owed there any more.
        with contextlib.suppress(NotFound):
            marker.reference.update(aged)
    sweep(clean)
    shown = lambda: requests.get(url, headers=tenant.auth, timeout=30).json()  # noqa: E731
    assert wait_for(lambda: shown()["widget"]["data"]["value"] == SENDERS * PER_SENDER, 60), shown()
