"""clerk-sync while Firestore stalls: 503 inside Svix's timeout, then the retry applies it.

The outage is the emulator paused (SIGSTOP), not restarted (docs/local-stack.md): connections
stay
open and requests hang, as they do when the real database stops answering.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from tests import clerk

SVIX_TIMEOUT_S = 15.0  # Svix gives up on an attempt after 15 s (docs/clerk-sync.md)
# Nothing is written before a delivery's outcome is final, so a retry after the outage applies
# it at once; the budget only bounds the loop.
RETRY_BUDGET_S = 30.0


@contextlib.contextmanager
def firestore_outage(stack) -> Iterator[None]:
    """The emulator paused for the block's duration, and resumed whatever happens in it."""
    emulator = stack.processes["firestore"]
    try:
        emulator.pause()
        yield
    finally:
        emulator.resume()


def deliver_until_acknowledged(base: str, secret: str, envelope: dict, svix_id: str):
    """Re-deliver one delivery (same svix-id, same body) the way Svix retries, until a 2xx."""
    deadline = time.monotonic() + RETRY_BUDGET_S
    codes = []
    while True:
        answer = clerk.post(base, secret, envelope, msg_id=svix_id)
        codes.append(answer.status_code)
        if answer.status_code < 300 or time.monotonic() > deadline:
            return answer, codes
        assert answer.status_code == 503, answer.text
        time.sleep(1.0)


@pytest.mark.slow
def test_delivery_during_an_outage_is_503_in_time_and_its_retry_is_applied(clean, db):
    base, secret = clean.url("clerk-sync"), clean.webhook_secret
    before = clerk.event("user.created", clerk.user("user_before", 10, username="before"))
    assert clerk.post(base, secret, before).status_code == 200

    during = clerk.event("user.created", clerk.user("user_during", 10, username="during"))
    svix_id = "msg_during_outage"
    with firestore_outage(clean):
        started = time.monotonic()
        answer = clerk.post(base, secret, during, msg_id=svix_id)
        elapsed = time.monotonic() - started

    assert answer.status_code == 503, answer.text
    assert elapsed < SVIX_TIMEOUT_S, f"answered after {elapsed:.1f} s"
    assert answer.headers.get("Retry-After")
    assert answer.json()["error"]["code"] == "storage_unavailable"

    retried, codes = deliver_until_acknowledged(base, secret, during, svix_id)
    assert retried.status_code == 200, (codes, retried.text)
    assert retried.json() == {"status": "processed", "reason": None, "duplicate": False}
    stored = db.collection("users").document("user_during").get().to_dict()
    assert stored["username"] == "during" and stored["deleted"] is False
    record = db.collection("deliveries").document(svix_id).get().to_dict()
    assert record["status"] == "processed" and record["type"] == "user.created"

    # Nothing acknowledged before the outage was lost, and a later retry is a duplicate.
    kept = db.collection("users").document("user_before").get().to_dict()
    assert kept["username"] == "before"
    again = clerk.post(base, secret, during, msg_id=svix_id)
    assert again.status_code == 200 and again.json()["duplicate"] is True
