"""Refresh scheduling through the Cloud Tasks emulator to the real query service: coalescing,
the outbox, retention. The query service's request log says which refreshes it served."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests import partner
from tests.support import refreshes, sweep, wait_for


def age_markers(db, minutes: int = 2) -> None:
    """Make every refresh marker look older, instead of waiting for the sweep's minute."""
    for marker in db.collection("refresh_pending").stream():
        created = marker.get("createdAt") - dt.timedelta(minutes=minutes)
        marker.reference.update({"createdAt": created})


def owed_now(db) -> list[dict]:
    """Markers of refreshes owed now: follow-ups due later stay until they have run."""
    now = dt.datetime.now(dt.UTC)
    markers = [m.to_dict() for m in db.collection("refresh_pending").stream()]
    return [m for m in markers if m.get("dueAt") is None or m["dueAt"] <= now]


def test_a_stored_event_is_refreshed_by_the_query_service_with_a_verified_token(clean, source, db):
    assert partner.send(source["url"], source["secret"]).status_code == 202
    # The query service refuses a task token it cannot verify (401, and the emulator retries):
    # a 200 for this source is the token verified and the refresh served.
    (served,) = wait_for(lambda: refreshes(clean, source["id"], "event"))
    assert served["outcome"] == "ok"
    assert wait_for(lambda: not owed_now(db))
    stored = db.collection("sources").document(source["id"]).get()
    assert stored.get("eventCount") == 1


def test_refusals_enqueue_nothing_and_a_duplicate_makes_sure_of_its_refresh(clean, source):
    partner.send(source["url"], source["secret"], key="once")
    wait_for(lambda: refreshes(clean, source["id"], "event"))
    time.sleep(1.2)  # next window
    assert partner.send(source["url"], "whsec_wrong").status_code == 401
    time.sleep(2.5)
    assert len(refreshes(clean, source["id"], "event")) == 1
    # The first attempt of a retried event may have died between storing and scheduling.
    assert partner.send(source["url"], source["secret"], key="once").status_code == 200
    assert wait_for(lambda: len(refreshes(clean, source["id"], "event")) == 2)


def test_a_burst_of_1000_events_is_coalesced_into_a_few_refreshes(clean, tenant, db):
    # No rate limit: this measures coalescing, not the limiter (test_rate_limits.py).
    source = tenant.create("Burst", rateLimit=None).json()

    def send(n):
        return partner.send(source["url"], source["secret"], {"n": n}).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(1000)))
    burst_s = time.monotonic() - started
    assert codes.count(202) == 1000
    # One task per one-second window the burst touched; served markers are deleted, so count
    # the refreshes the query service served instead of the markers left.
    assert wait_for(lambda: not owed_now(db), 30)
    served = refreshes(clean, source["id"], "event")
    print(f"1000 events in {burst_s:.1f} s -> {len(served)} refreshes")
    assert 1 <= len(served) <= int(burst_s) + 2


def test_a_tasks_outage_loses_no_event_and_the_sweep_catches_up(clean, source, db):
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
    assert wait_for(lambda: refreshes(clean, source["id"], "event"))


def test_retention_keeps_the_newest_events_once_the_refresh_has_run(clean, tenant, db):
    small = tenant.create("Small", retention=5).json()
    for n in range(8):
        assert partner.send(small["url"], small["secret"], {"n": n}).status_code == 202
    events = db.collection("sources").document(small["id"]).collection("events")

    def stored() -> list[dict]:  # tombstones aside: trimmed events whose keys are still open
        return [e for e in (d.to_dict() for d in events.stream()) if "receivedAt" in e]

    # Trimming runs in the refresh once the events have settled (a scheduled follow-up).
    assert wait_for(lambda: len(stored()) == 5, 60)
    assert sorted(json.loads(e["body"])["n"] for e in stored()) == [3, 4, 5, 6, 7]
    assert len(list(events.stream())) == 8  # three tombstones, until their keys expire


def test_a_served_refresh_completes_its_markers_and_only_those(clean, db):
    """The consumer's side of the outbox (services.common.outbox.complete)."""
    from services.common import outbox

    now = dt.datetime.now(dt.UTC)
    first, other = "src_" + "1" * 20, "src_" + "2" * 20
    markers = db.collection("refresh_pending")
    for name, source_id, created in (
        ("a", first, now - dt.timedelta(seconds=5)),
        ("b", other, now - dt.timedelta(seconds=5)),
        ("c", first, now + dt.timedelta(seconds=5)),
    ):
        markers.document(name).set({"sourceId": source_id, "createdAt": created})
    assert outbox.complete(first, now) == 1
    assert sorted(m.id for m in markers.stream()) == ["b", "c"]


def test_a_refresh_enqueued_but_never_served_is_enqueued_again_after_ten_minutes(clean, source, db):
    from services.common import outbox

    now = dt.datetime.now(dt.UTC)
    marker = db.collection("refresh_pending").document(f"{source['id']}_event_1")
    marker.set(
        {
            "sourceId": source["id"],
            "shard": outbox.shard_of(source["id"]),
            "reason": "event",
            "bucket": int(now.timestamp()) - 700,
            "createdAt": now - dt.timedelta(minutes=12),
            "enqueuedAt": now - dt.timedelta(minutes=2),
            "expireAt": now + dt.timedelta(days=1),
        }
    )
    assert sweep(clean)["reenqueued"] == 0  # enqueued two minutes ago: give it time
    marker.update({"enqueuedAt": now - dt.timedelta(minutes=11)})
    assert sweep(clean)["reenqueued"] == 1
    assert wait_for(lambda: refreshes(clean, source["id"], "event"))
    assert wait_for(lambda: not marker.get().exists)  # served: the refresh completed it
    assert sweep(clean)["reenqueued"] == 0


def test_the_sweep_finds_owed_refreshes_in_every_shard(clean, tenant, db):
    """Markers are sharded so no index holds one increasing range for all sources (README
    "ingest")."""
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
    for source in created:
        assert wait_for(lambda source=source: refreshes(clean, source["id"], "event"), 30)
