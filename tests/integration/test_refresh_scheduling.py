"""Refresh scheduling through the Cloud Tasks emulator: tokens, coalescing, outbox, retention."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import jwt

from devstack import issuer as dev_issuer
from tests import partner
from tests.support import sweep


def wait_for(predicate, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return predicate()


def tasks_for(receiver, source_id: str):
    return [t for t in receiver.received() if t.body.get("sourceId") == source_id]


def age_markers(db, minutes: int = 2) -> None:
    """Make every refresh marker look older, instead of waiting for the sweep's minute."""
    for marker in db.collection("refresh_pending").stream():
        created = marker.get("createdAt") - dt.timedelta(minutes=minutes)
        marker.reference.update({"createdAt": created})


def test_a_stored_event_enqueues_a_refresh_with_a_verifiable_token(clean, task_receiver, source):
    assert partner.send(source["url"], source["secret"]).status_code == 202
    (task,) = wait_for(lambda: tasks_for(task_receiver, source["id"]))
    assert task.path == "/tasks/refresh"
    assert task.body == {"sourceId": source["id"], "reason": "event"}
    token = task.headers["Authorization"].removeprefix("Bearer ")
    keys = jwt.PyJWKClient(clean.issuer.jwks_url)
    claims = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience=dev_issuer.TASKS_AUDIENCE,
        issuer=clean.issuer.url,
    )
    assert claims["email"] == dev_issuer.TASKS_SERVICE_ACCOUNT


def test_refusals_enqueue_nothing_and_a_duplicate_makes_sure_of_its_refresh(
    clean, task_receiver, source
):
    partner.send(source["url"], source["secret"], key="once")
    wait_for(lambda: tasks_for(task_receiver, source["id"]))
    time.sleep(1.2)  # next window
    assert partner.send(source["url"], "whsec_wrong").status_code == 401
    time.sleep(2.5)
    assert len(tasks_for(task_receiver, source["id"])) == 1
    # The first attempt of a retried event may have died between storing and scheduling.
    assert partner.send(source["url"], source["secret"], key="once").status_code == 200
    assert wait_for(lambda: len(tasks_for(task_receiver, source["id"])) == 2)


def test_a_burst_of_1000_events_is_coalesced_into_a_few_refreshes(clean, task_receiver, source, db):
    def send(n):
        return partner.send(source["url"], source["secret"], {"n": n}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(1000)))
    burst_s = time.monotonic() - started
    assert codes.count(202) == 1000
    # One marker and one task per one-second window the burst touched.
    windows = sorted(m.get("bucket") for m in db.collection("refresh_pending").stream())
    assert len(windows) <= int(burst_s) + 2
    assert wait_for(lambda: len(tasks_for(task_receiver, source["id"])) >= len(windows), 20)
    received = tasks_for(task_receiver, source["id"])
    print(f"1000 events in {burst_s:.1f} s -> {len(received)} refreshes")
    assert len(received) == len(windows)
    # The last window's refresh runs once that window has closed, after its last event.
    assert max(t.arrived for t in received) >= windows[-1] + 1


def test_a_tasks_outage_loses_no_event_and_the_sweep_catches_up(clean, task_receiver, source, db):
    tasks = clean.processes["tasks"]
    tasks.pause()
    try:
        answer = partner.send(source["url"], source["secret"], {"during": "outage"})
    finally:
        tasks.resume()
    assert answer.status_code == 202
    events = db.collection("sources").document(source["id"]).collection("events")
    assert len(list(events.stream())) == 1
    (marker,) = [m.to_dict() for m in db.collection("refresh_pending").stream()]
    assert marker["sourceId"] == source["id"] and marker["enqueuedAt"] is None
    age_markers(db)
    assert sweep(clean)["reenqueued"] == 1
    assert wait_for(lambda: tasks_for(task_receiver, source["id"]))


def test_retention_keeps_the_newest_events(clean, tenant, db):
    small = tenant.create("Small", retention=5).json()
    for n in range(8):
        assert partner.send(small["url"], small["secret"], {"n": n}).status_code == 202
    age_markers(db)
    assert sweep(clean)["trimmed"] == 3
    events = db.collection("sources").document(small["id"]).collection("events").stream()
    kept = sorted(json.loads(e.get("body"))["n"] for e in events)
    assert kept == [3, 4, 5, 6, 7]


def test_a_served_refresh_completes_its_markers_and_only_those(clean, task_receiver, tenant, db):
    """The consumer's side of the outbox, which the query service's refresh handler calls."""
    from services.common import outbox

    first, other = tenant.create("First").json(), tenant.create("Other").json()
    partner.send(first["url"], first["secret"])
    partner.send(other["url"], other["secret"])
    served_at = dt.datetime.now(dt.UTC)
    time.sleep(1.1)  # a new window: this event's marker is newer than the refresh
    partner.send(first["url"], first["secret"])
    assert outbox.complete(first["id"], served_at) == 1
    left = sorted(m.get("sourceId") for m in db.collection("refresh_pending").stream())
    assert left == sorted([first["id"], other["id"]])


def test_a_refresh_enqueued_but_never_served_is_enqueued_again_after_ten_minutes(
    clean, task_receiver, source, db
):
    partner.send(source["url"], source["secret"])
    assert wait_for(lambda: tasks_for(task_receiver, source["id"]))
    age_markers(db, minutes=2)
    assert sweep(clean)["reenqueued"] == 0  # enqueued two minutes ago: give it time
    for marker in db.collection("refresh_pending").stream():
        marker.reference.update({"enqueuedAt": marker.get("enqueuedAt") - dt.timedelta(minutes=11)})
    assert sweep(clean)["reenqueued"] == 1
    assert wait_for(lambda: len(tasks_for(task_receiver, source["id"])) == 2)
    assert sweep(clean)["reenqueued"] == 0  # marked as enqueued again


def test_the_sweep_finds_owed_refreshes_in_every_shard(clean, task_receiver, tenant, db):
    """Markers are sharded so no index holds one increasing range for all sources (SPEC 2)."""
    from services.common import outbox

    created = [tenant.create(f"S{n}").json() for n in range(6)]
    tasks = clean.processes["tasks"]
    tasks.pause()
    try:
        for source in created:
            assert partner.send(source["url"], source["secret"]).status_code == 202
    finally:
        tasks.resume()
    markers = [m.to_dict() for m in db.collection("refresh_pending").stream()]
    assert all(m["enqueuedAt"] is None for m in markers)
    assert {m["shard"] for m in markers} == {outbox.shard_of(s["id"]) for s in created}
    assert len({m["shard"] for m in markers}) > 1
    age_markers(db)
    assert sweep(clean)["reenqueued"] == len(created)
    owed = {s["id"] for s in created}
    assert wait_for(lambda: owed <= {t.body["sourceId"] for t in task_receiver.received()}, 30)
