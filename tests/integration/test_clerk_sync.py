"""clerk-sync over HTTP against the Firestore emulator (docs/clerk-sync.md)."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import clerk


@pytest.fixture
def base(clean):
    return clean.url("clerk-sync")


@pytest.fixture
def secret(clean):
    return clean.webhook_secret


def deliveries(db) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in db.collection("deliveries").stream()}


def test_user_created_is_stored_without_private_fields(base, secret, db):
    answer = clerk.post(base, secret, clerk.event("user.created", clerk.user("user_1", 10)))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "processed", "reason": None, "duplicate": False}
    stored = db.collection("users").document("user_1").get().to_dict()
    assert stored["email"] == "ada@example.com"  # the primary address, not the first
    assert stored["emails"] == ["other@example.com", "ada@example.com"]
    assert stored["displayName"] == "Ada Lovelace"
    assert stored["username"] == "ada"
    assert stored["imageUrl"] == "https://img.clerk.com/ada.png"
    assert stored["publicMetadata"] == {"plan": "pro"}
    assert stored["createdAt"] == 1_690_000_000_000 and stored["updatedAt"] == 10
    flat = json.dumps(stored, default=str)
    assert "cus_secret" not in flat and "dark" not in flat


def test_missing_headers_is_400_and_writes_nothing(base, db):
    answer = requests.post(f"{base}/webhooks/clerk", data=b"{}", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "missing_headers"
    assert deliveries(db) == {}


@pytest.mark.parametrize("svix_id", ["msg/../x", "__msg__", ".."])
def test_svix_id_that_cannot_be_a_document_id_is_400(base, secret, db, svix_id):
    body = json.dumps(clerk.event("user.created", clerk.user("user_1", 10)))
    headers = clerk.signed_headers(secret, body, svix_id)
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 400
    assert deliveries(db) == {}


def test_bad_signature_is_401_and_writes_nothing(base, db):
    body = json.dumps(clerk.event("user.created", clerk.user("user_1", 10)))
    headers = clerk.signed_headers("whsec_" + "QUJD" * 8, body)
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert deliveries(db) == {}
    assert not db.collection("users").document("user_1").get().exists


def test_body_reserialized_after_signing_fails(base, secret, db):
    envelope = clerk.event("user.created", clerk.user("user_1", 10))
    body = json.dumps(envelope)
    headers = clerk.signed_headers(secret, body)
    reserialized = json.dumps(envelope, indent=2)  # same JSON value, different bytes
    answer = requests.post(f"{base}/webhooks/clerk", data=reserialized, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert deliveries(db) == {}


def test_stale_timestamp_is_401(base, secret):
    body = json.dumps(clerk.event("user.created", clerk.user("user_1", 10)))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    headers = clerk.signed_headers(secret, body, when=old)
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 401


def test_rotation_with_two_signatures_passes(base, secret, db):
    body = json.dumps(clerk.event("user.created", clerk.user("user_1", 10)))
    headers = clerk.signed_headers(secret, body)
    old_secret_sig = clerk.signed_headers("whsec_" + "QUJD" * 8, body, headers["svix-id"])
    headers["svix-signature"] = f"{old_secret_sig['svix-signature']} {headers['svix-signature']}"
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert db.collection("users").document("user_1").get().exists


@pytest.mark.parametrize(
    "signature",
    ["v1,@@@not-base64@@@", "v1", "garbage", "v1," + "A" * 3, "v1,\u00e9\u00e9"],
)
def test_malformed_signature_entries_are_401_not_500(base, secret, signature):
    body = json.dumps(clerk.event("user.created", clerk.user("user_1", 10)))
    headers = clerk.signed_headers(secret, body)
    headers["svix-signature"] = signature
    answer = requests.post(
        f"{base}/webhooks/clerk", data=body, headers=_latin1(headers), timeout=10
    )
    assert answer.status_code == 401


NOT_UTF8 = b'{"type": "user.created", "x": "\xff\xfe"}'


def test_a_non_utf8_body_with_a_bad_signature_is_401(base, secret, db):
    headers = clerk.signed_headers(secret, "placeholder")
    answer = requests.post(f"{base}/webhooks/clerk", data=NOT_UTF8, headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "invalid_signature"
    assert deliveries(db) == {}


def test_a_non_utf8_body_with_a_good_signature_is_400_and_recorded_failed(base, secret, db):
    headers = clerk.signed_headers_over_bytes(secret, NOT_UTF8)
    answer = requests.post(f"{base}/webhooks/clerk", data=NOT_UTF8, headers=headers, timeout=10)
    assert answer.status_code == 400, answer.text
    assert deliveries(db)[headers["svix-id"]]["status"] == "failed"
    assert db.collection("users").limit(1).get() == []


def test_a_non_utf8_body_signed_long_ago_is_401(base, secret, db):
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    headers = clerk.signed_headers_over_bytes(secret, NOT_UTF8, when=when)
    answer = requests.post(f"{base}/webhooks/clerk", data=NOT_UTF8, headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    assert deliveries(db) == {}


def test_malformed_json_after_good_signature_is_400_and_recorded_failed(base, secret, db):
    body = '{"type": "user.created", "data": '
    headers = clerk.signed_headers(secret, body)
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 400
    records = deliveries(db)
    assert list(records) == [headers["svix-id"]]
    assert records[headers["svix-id"]]["status"] == "failed"
    assert db.collection("users").limit(1).get() == []


def test_unknown_event_type_is_acknowledged_and_ignored(base, secret, db):
    answer = clerk.post(base, secret, clerk.event("session.created", {"id": "sess_1"}))
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    (record,) = deliveries(db).values()
    assert record["status"] == "ignored" and record["type"] == "session.created"
    assert record["finishedAt"] >= record["receivedAt"]


def test_repeated_svix_id_is_applied_once(base, secret, db):
    first = clerk.event("user.updated", clerk.user("user_1", 20, username="first"))
    assert clerk.post(base, secret, first, msg_id="msg_same").status_code == 200
    # The same delivery id again, even carrying other content, is acknowledged and not applied.
    again = clerk.post(base, secret, first, msg_id="msg_same")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert db.collection("users").document("user_1").get().get("username") == "first"


def test_stale_update_is_acknowledged_but_not_applied(base, secret, db):
    clerk.post(base, secret, clerk.event("user.updated", clerk.user("user_1", 20, username="new")))
    answer = clerk.post(
        base, secret, clerk.event("user.updated", clerk.user("user_1", 10, username="old"))
    )
    assert answer.status_code == 200
    assert answer.json() == {"status": "ignored", "reason": "stale", "duplicate": False}
    assert db.collection("users").document("user_1").get().get("username") == "new"


def test_equal_updated_at_is_decided_by_envelope_timestamp(base, secret, db):
    later = clerk.event("user.updated", clerk.user("user_1", 20, username="later"), timestamp=2000)
    earlier = clerk.event(
        "user.updated", clerk.user("user_1", 20, username="earlier"), timestamp=1000
    )
    clerk.post(base, secret, later)
    clerk.post(base, secret, earlier)
    assert db.collection("users").document("user_1").get().get("username") == "later"


def test_delete_tombstones_and_nothing_resurrects(base, secret, db):
    clerk.post(base, secret, clerk.event("user.created", clerk.user("user_1", 10)))
    answer = clerk.post(base, secret, clerk.event("user.deleted", clerk.deleted("user", "user_1")))
    assert answer.json()["status"] == "processed"
    late = clerk.event("user.updated", clerk.user("user_1", 99_999_999_999_999))
    assert clerk.post(base, secret, late).json()["reason"] == "tombstoned"
    stored = db.collection("users").document("user_1").get().to_dict()
    assert set(stored) == {"id", "deleted", "deletedAt"} and stored["deleted"] is True


def test_an_update_replaces_the_whole_record(base, secret, db):
    clerk.post(base, secret, clerk.event("user.created", clerk.user("user_1", 10)))
    slimmer = clerk.user("user_1", 20, public_metadata={"tier": "x"}, last_name=None)
    clerk.post(base, secret, clerk.event("user.updated", slimmer))
    stored = db.collection("users").document("user_1").get().to_dict()
    assert stored["publicMetadata"] == {"tier": "x"}  # maps are replaced, not merged
    assert stored["lastName"] is None and stored["displayName"] == "Ada"


def test_a_failed_delivery_may_be_retried(base, secret, db):
    db.collection("deliveries").document("msg_retry").set({"status": "failed", "attempts": 1})
    envelope = clerk.event("user.created", clerk.user("user_1", 10))
    answer = clerk.post(base, secret, envelope, msg_id="msg_retry")
    assert answer.json() == {"status": "processed", "reason": None, "duplicate": False}
    record = db.collection("deliveries").document("msg_retry").get().to_dict()
    assert record["status"] == "processed" and record["attempts"] == 2


def test_display_name_never_reads_none(base, secret, db):
    data = clerk.user("user_2", 10, first_name=None, last_name=None, username=None)
    clerk.post(base, secret, clerk.event("user.created", data))
    assert db.collection("users").document("user_2").get().get("displayName") == "ada@example.com"


def test_organizations_and_memberships(base, secret, db):
    clerk.post(base, secret, clerk.event("organization.created", clerk.organization("org_1", 10)))
    clerk.post(
        base,
        secret,
        clerk.event(
            "organizationMembership.created", clerk.membership("orgmem_1", "org_1", "user_1", 10)
        ),
    )
    org = db.collection("organizations").document("org_1").get().to_dict()
    assert (org["name"], org["slug"], org["publicMetadata"]) == ("Acme", "acme", {"tier": "gold"})
    assert "private_metadata" not in json.dumps(org, default=str)
    mem = db.collection("memberships").document("orgmem_1").get().to_dict()
    assert (mem["orgId"], mem["userId"], mem["role"]) == ("org_1", "user_1", "org:member")

    deletion = clerk.membership("orgmem_1", "org_1", "user_1", 20)
    clerk.post(base, secret, clerk.event("organizationMembership.deleted", deletion))
    assert not db.collection("memberships").document("orgmem_1").get().exists
    late = clerk.membership("orgmem_1", "org_1", "user_1", 30, role="org:admin")
    clerk.post(base, secret, clerk.event("organizationMembership.updated", late))
    assert not db.collection("memberships").document("orgmem_1").get().exists

    clerk.post(
        base, secret, clerk.event("organization.deleted", clerk.deleted("organization", "org_1"))
    )
    org = db.collection("organizations").document("org_1").get().to_dict()
    assert set(org) == {"id", "deleted", "deletedAt"}


def test_twenty_concurrent_deliveries_of_one_event_apply_once(base, secret, db):
    envelope = clerk.event("user.created", clerk.user("user_1", 10))
    body = json.dumps(envelope)
    headers = clerk.signed_headers(secret, body, "msg_concurrent")

    def deliver(_):
        return requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(deliver, range(20)))
    codes = [a.status_code for a in answers]
    assert set(codes) == {200}, codes
    fresh = [a for a in answers if a.status_code == 200 and not a.json()["duplicate"]]
    assert len(fresh) == 1
    record = db.collection("deliveries").document("msg_concurrent").get().to_dict()
    assert record["status"] == "processed" and record["attempts"] == 1
    synced = db.collection("users").document("user_1").get().get("syncedAt")
    # Later retries are duplicates and leave the user untouched.
    for _ in range(3):
        assert deliver(0).json()["duplicate"] is True
    assert db.collection("users").document("user_1").get().get("syncedAt") == synced


def _latin1(headers: dict) -> dict:
    return {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}


def test_deleting_a_user_or_organization_deletes_the_sources_it_owns(clean, base, secret, db):
    from tests import partner
    from tests.partner import SourceAPI

    ingest = clean.url("ingest")
    personal = SourceAPI(ingest, clean.issuer.session_token("user_gone")).create("mine").json()
    org = (
        SourceAPI(ingest, clean.issuer.session_token("user_gone", org="org_gone"))
        .create("org")
        .json()
    )
    kept = SourceAPI(ingest, clean.issuer.session_token("user_stays")).create("other").json()

    clerk.post(base, secret, clerk.event("user.deleted", clerk.deleted("user", "user_gone")))
    assert db.collection("sources").document(personal["id"]).get().get("deleted") is True
    assert db.collection("sources").document(org["id"]).get().get("deleted") is False
    clerk.post(
        base, secret, clerk.event("organization.deleted", clerk.deleted("organization", "org_gone"))
    )
    assert db.collection("sources").document(org["id"]).get().get("deleted") is True
    assert db.collection("sources").document(kept["id"]).get().get("deleted") is False
    deletions = [
        d.to_dict() for d in db.collection("audit").stream() if d.get("action") == "source.deleted"
    ]
    assert sorted(d["actor"] for d in deletions) == [
        "clerk:organization.deleted",
        "clerk:user.deleted",
    ]
    # The ingest instance's key cache may hold these sources for up to 30 s (docs/ingest.md);
    # a source it has not cached yet is refused at once.
    assert partner.send(personal["url"], personal["secret"]).status_code == 404
    assert partner.send(kept["url"], kept["secret"]).status_code == 202


def test_concurrent_events_of_one_user_converge_to_the_newest(base, secret, db):
    updates = [
        clerk.event("user.updated", clerk.user("user_race", 100 + n, username=f"v{n}"))
        for n in range(12)
    ]

    def deliver(envelope):
        return clerk.post(base, secret, envelope).status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(deliver, reversed(updates)))
    assert codes == [200] * 12
    stored = db.collection("users").document("user_race").get().to_dict()
    assert stored["username"] == "v11" and stored["updatedAt"] == 111
    outcomes = [d.get("status") for d in db.collection("deliveries").stream()]
    assert len(outcomes) == 12 and set(outcomes) <= {"processed", "ignored"}


def test_metadata_firestore_cannot_hold_is_kept_as_json_text(base, secret, db):
    nested = {"matrix": [[1, 2], [3, 4]], "big": 2**70}
    answer = clerk.post(
        base, secret, clerk.event("user.created", clerk.user("user_1", 10, public_metadata=nested))
    )
    assert answer.status_code == 200, answer.text
    stored = db.collection("users").document("user_1").get().to_dict()
    assert stored["publicMetadata"] is None
    assert json.loads(stored["publicMetadataJson"]) == nested


@pytest.mark.parametrize(
    "body", ['{"type": "user.created", "data": {"id": "\\ud800"}}', '{"a": 1e400}']
)
def test_signed_json_that_is_not_strict_is_400_and_recorded_failed(base, secret, db, body):
    headers = clerk.signed_headers(secret, body)
    answer = requests.post(f"{base}/webhooks/clerk", data=body, headers=headers, timeout=10)
    assert answer.status_code == 400
    assert deliveries(db)[headers["svix-id"]]["status"] == "failed"
