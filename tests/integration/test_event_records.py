"""One document write per accepted event: the event is its idempotency key's record
(docs/ingest.md "Idempotency"), through every way a key can come back."""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor

from services.ingest.receive import event_id
from tests import partner
from tests.support import age_event, legacy_key_record, request_log, run_refresh

DAY = dt.timedelta(hours=24)


def events(db, source_id: str):
    return db.collection("sources").document(source_id).collection("events")


def salt(db, source_id: str) -> bytes:
    return db.collection("sources").document(source_id).get().get("eventSalt")


def listed(dashboard, source_id: str) -> list[dict]:
    """The bodies the query service lists, newest first."""
    found = dashboard.query(source_id, {"type": "webhook.list", "params": {"limit": 100}})
    assert found.status_code == 200, found.text
    return [item["body"] for item in found.json()["result"]]


def test_an_accepted_event_is_one_document_write_named_by_its_key(clean, source, db):
    answer = partner.send(source["url"], source["secret"], {"n": 1}, key="order-1")
    assert answer.status_code == 202, answer.text
    line = request_log(clean, "ingest", answer.headers["X-Request-Id"])
    assert line["firestoreWrites"]["events"] == 1
    assert answer.json()["id"] == event_id(salt(db, source["id"]), source["id"], "order-1")
    stored = events(db, source["id"]).document(answer.json()["id"]).get().to_dict()
    assert stored["bodySha256"] == hashlib.sha256(b'{"n": 1}').digest()
    idempotency = db.collection("sources").document(source["id"]).collection("idempotency")
    assert list(idempotency.stream()) == []
    repeat = partner.send(source["url"], source["secret"], {"n": 1}, key="order-1")
    assert repeat.json() == {"id": answer.json()["id"], "duplicate": True}
    line = request_log(clean, "ingest", repeat.headers["X-Request-Id"])
    # The create that found the key (refused by Firestore, so nothing written) and one read of
    # the event; besides, only what is written once a second per source, whichever request
    # comes first in it (the inspector's entry, the rate-limit lease, the refresh marker).
    writes = dict(line["firestoreWrites"])
    assert writes.pop("events") == 1
    assert set(writes) <= {"delivery_ring", "rate_leases", "refresh_pending"}
    assert line["firestoreOps"] == 2 + sum(writes.values())
    assert len(list(events(db, source["id"]).stream())) == 1


def test_event_ids_are_keyed_per_source_and_never_shown(tenant, source, db):
    other = tenant.create("Other").json()
    first = partner.send(source["url"], source["secret"], key="k").json()["id"]
    second = partner.send(other["url"], other["secret"], key="k").json()["id"]
    assert first != second
    assert len(salt(db, source["id"])) == 16 and salt(db, source["id"]) != salt(db, other["id"])
    assert event_id(b"", source["id"], "k") != first  # the salt is part of the hash
    assert "eventSalt" not in tenant.get(source["id"]).json()
    assert all("eventSalt" not in s for s in tenant.list().json()["items"])


def test_concurrent_distinct_events_share_rpcs_and_each_is_stored_once(clean, source, db):
    def post(n: int):
        return partner.send(source["url"], source["secret"], {"n": n}, key=f"k{n}")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(120)))
    assert [a.status_code for a in answers] == [202] * 120
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 120 and {d.id for d in events(db, source["id"]).stream()} == ids
    lines = [request_log(clean, "ingest", a.headers["X-Request-Id"]) for a in answers]
    assert sum(line["firestoreWrites"].get("events", 0) for line in lines) == 120
    # Group commit: fewer RPCs than events, since 16 requests were in flight at once.
    assert sum(line["firestoreOps"] for line in lines) < 120


def test_a_key_reused_after_its_window_stores_a_new_generation(source, db):
    url, secret = source["url"], source["secret"]
    first = partner.send(url, secret, {"n": 1}, key="daily").json()["id"]
    age_event(db, source["id"], first, DAY + dt.timedelta(seconds=1))
    second = partner.send(url, secret, {"n": 2}, key="daily")
    assert second.status_code == 202 and second.json()["id"] != first
    head = events(db, source["id"]).document(first).get().to_dict()
    assert head["latest"] == second.json()["id"]
    assert head["body"] == b'{"n": 1}'  # the first event stays in the history as it was
    # Within the new window: the new generation answers, for either body rule.
    again = partner.send(url, secret, {"n": 2}, key="daily")
    assert again.json() == {"id": second.json()["id"], "duplicate": True}
    assert partner.send(url, secret, {"n": 3}, key="daily").status_code == 422
    # And again a day later: a third generation, found through the head in one read.
    age_event(db, source["id"], second.json()["id"], DAY + dt.timedelta(seconds=1))
    events(db, source["id"]).document(first).update({"latestUntil": dt.datetime.now(dt.UTC)})
    third = partner.send(url, secret, {"n": 3}, key="daily")
    assert third.status_code == 202
    assert third.json()["id"] not in (first, second.json()["id"])
    assert len(list(events(db, source["id"]).stream())) == 3


def test_concurrent_reuses_after_the_window_store_one_generation(source, db):
    url, secret = source["url"], source["secret"]
    first = partner.send(url, secret, {"n": 1}, key="again").json()["id"]
    age_event(db, source["id"], first, DAY + dt.timedelta(seconds=1))
    partner.one_accepted(partner.repeats(url, secret, b'{"n": 2}', "again", 20))
    assert len(list(events(db, source["id"]).stream())) == 2


def test_retention_keeps_a_trimmed_events_key_as_a_tombstone(clean, tenant, dashboard, db):
    created = tenant.create("Tiny", retention=1).json()
    url, secret, source_id = created["url"], created["secret"], created["id"]
    sent = [partner.send(url, secret, {"n": n}, key=f"t{n}").json()["id"] for n in range(3)]
    for n, event in enumerate(sent):  # settled (foldable), still inside their key windows
        age_event(db, source_id, event, dt.timedelta(minutes=10 - n))
    while run_refresh(clean, source_id).json()["more"]:
        pass
    assert [e["n"] for e in listed(dashboard, source_id)] == [2]
    assert tenant.get(source_id).json()["eventCount"] == 1
    tomb = events(db, source_id).document(sent[0]).get().to_dict()
    assert "body" not in tomb and "receivedAt" not in tomb
    assert tomb["expireAt"] == tomb["keyUntil"] and tomb["idempotencyKey"] == "t0"
    # The key still answers for its first event, and stores nothing new.
    again = partner.send(url, secret, {"n": 0}, key="t0")
    assert again.json() == {"id": sent[0], "duplicate": True}
    assert partner.send(url, secret, {"n": 9}, key="t0").status_code == 422
    assert [e["n"] for e in listed(dashboard, source_id)] == [2]


def test_retention_deletes_events_whose_key_windows_have_closed(clean, tenant, dashboard, db):
    created = tenant.create("Tiny", retention=1).json()
    url, secret, source_id = created["url"], created["secret"], created["id"]
    old = partner.send(url, secret, {"n": 0}, key="old").json()["id"]
    reused = partner.send(url, secret, {"n": 1}, key="reused").json()["id"]
    kept = partner.send(url, secret, {"n": 2}, key="kept").json()["id"]
    age_event(db, source_id, old, DAY + dt.timedelta(minutes=3))
    age_event(db, source_id, reused, DAY + dt.timedelta(minutes=2))
    newer = partner.send(url, secret, {"n": 3}, key="reused").json()["id"]  # a new generation
    for event in (kept, newer):
        age_event(db, source_id, event, dt.timedelta(minutes=1))
    while run_refresh(clean, source_id).json()["more"]:
        pass
    remaining = {d.id: d.to_dict() for d in events(db, source_id).stream()}
    assert old not in remaining  # its window closed: gone
    # The head of a key whose newer generation is open stays, until that one's window closes.
    assert remaining[reused]["expireAt"] == remaining[reused]["latestUntil"]
    assert [e["n"] for e in listed(dashboard, source_id)] == [3]
    assert partner.send(url, secret, {"n": 3}, key="reused").json() == {
        "id": newer,
        "duplicate": True,
    }
    assert partner.send(url, secret, {"n": 0}, key="old").status_code == 202


def older_source(tenant, db, label: str) -> dict:
    """A source as created before event ids were salted: it has no ``eventSalt`` (created
    before any event is sent, so no instance has cached it with one)."""
    from google.cloud import firestore

    created = tenant.create(label).json()
    source = db.collection("sources").document(created["id"])
    source.update({"eventSalt": firestore.DELETE_FIELD})
    return created


def test_keys_stored_before_one_write_events_keep_answering_until_they_expire(clean, tenant, db):
    created = older_source(tenant, db, "Older")
    url, secret, source_id = created["url"], created["secret"], created["id"]
    now = dt.datetime.now(dt.UTC)

    def legacy(key: str, body: bytes | None, expires: dt.datetime) -> None:
        legacy_key_record(db, source_id, key, f"evt_{key}", body, expires)

    legacy("open", b'{"n": 1}', now + dt.timedelta(hours=1))
    legacy("unhashed", None, now + dt.timedelta(hours=1))
    legacy("closed", b'{"n": 1}', now - dt.timedelta(seconds=1))
    assert partner.send(url, secret, {"n": 1}, key="open").json() == {
        "id": "evt_open",
        "duplicate": True,
    }
    assert partner.send(url, secret, {"n": 2}, key="open").status_code == 422
    # A record from before bodies were hashed: every repeat is a duplicate.
    assert partner.send(url, secret, {"n": 2}, key="unhashed").json()["id"] == "evt_unhashed"
    fresh = partner.send(url, secret, {"n": 1}, key="closed")
    assert fresh.status_code == 202
    assert fresh.json()["id"] == event_id(None, source_id, "closed")


def test_a_source_with_no_open_legacy_keys_never_reads_them(clean, tenant, db):
    created = older_source(tenant, db, "Clean")
    answers = [
        partner.send(created["url"], created["secret"], {"n": n}, key=f"n{n}") for n in range(3)
    ]
    lines = [request_log(clean, "ingest", a.headers["X-Request-Id"]) for a in answers]
    # The first event asks once (and loads the source); later ones only create. RPCs that
    # write something else (once a second per source: the rate-limit lease, the refresh
    # marker) are set aside.
    reads_and_creates = [
        line["firestoreOps"] - sum(n for c, n in line["firestoreWrites"].items() if c != "events")
        for line in lines
    ]
    assert reads_and_creates[1:] == [1, 1]
