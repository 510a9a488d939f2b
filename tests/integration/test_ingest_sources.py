"""The /v1/sources API: tenancy, secrets shown once, rotation with grace, deletion (README
"ingest")."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
import requests

from devstack.processes import free_port, start_service
from tests import partner
from tests.partner import SourceAPI
from tests.support import request_log, sweep, wait_for


@pytest.fixture
def bob(clean, ingest_url) -> SourceAPI:
    return SourceAPI(ingest_url, clean.issuer.session_token("user_bob"))


def org_member(stack, base, user, org, role) -> SourceAPI:
    return SourceAPI(base, stack.issuer.session_token(user, org=org, role=role))


def audit(db, action: str, source_id: str) -> list[dict]:
    entries = [d.to_dict() for d in db.collection("audit").stream()]
    return [e for e in entries if e["action"] == action and e["sourceId"] == source_id]


def test_create_returns_the_source_and_its_secret_once(tenant, db):
    created = tenant.create("Orders", retention=50)
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {
        "id",
        "label",
        "retention",
        "rateLimit",
        "url",
        "eventCount",
        "lastEventAt",
        "createdAt",
        "provider",
        "signing",
        "secret",
        "schema",
        "keyId",
        "previousKeyExpiresAt",
    }
    assert body["provider"] == "inlet" and body["signing"] == "hmac"
    assert body["url"].endswith(f"/webhooks/inbound/{body['id']}")
    assert body["retention"] == 50 and body["eventCount"] == 0 and body["lastEventAt"] is None
    assert body["secret"].startswith("whsec_") and len(body["secret"]) == 6 + 44
    assert "secret" not in tenant.get(body["id"]).json()
    assert all("secret" not in s for s in tenant.list().json()["items"])
    stored = db.collection("sources").document(body["id"]).get().to_dict()
    assert body["secret"] not in repr(stored)  # sealed, never in clear
    assert stored["keys"][0]["sealed"]["kek"] == "k1"
    (entry,) = audit(db, "source.created", body["id"])
    assert entry["actor"] == "user_alice" and entry["expireAt"] > entry["at"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"label": ""},
        {"label": 5},
        {"label": "x", "retention": 0},
        {"label": "x", "retention": 100_001},
    ],
)
def test_invalid_source_bodies_are_400(tenant, body):
    answer = requests.post(f"{tenant.base}/v1/sources", json=body, headers=tenant.auth, timeout=10)
    assert answer.status_code == 400


def test_event_count_and_last_event_time(tenant, source):
    other = tenant.create("Other").json()
    for n in range(3):
        partner.send(source["url"], source["secret"], {"n": n})
    partner.send(other["url"], other["secret"])
    # The refresh task keeps both on the source document, within about a second of the events.
    counted = wait_for(lambda: tenant.get(source["id"]).json()["eventCount"] == 3)
    assert counted
    assert tenant.get(source["id"]).json()["lastEventAt"].endswith("Z")
    listed = wait_for(
        lambda: (
            {s["id"]: s["eventCount"] for s in tenant.list().json()["items"]}
            == {source["id"]: 3, other["id"]: 1}
        )
    )
    assert listed


def test_listing_sources_reads_one_document_per_source(clean, tenant):
    for n in range(5):
        tenant.create(f"S{n}")
    answer = tenant.list()
    entry = request_log(clean, "ingest", answer.headers["X-Request-Id"])
    assert entry["firestoreOps"] == 1  # one query returns the page: no count, no query per source


def test_another_tenants_source_is_404_everywhere(bob, source):
    assert bob.get(source["id"]).status_code == 404
    assert bob.rotate(source["id"]).status_code == 404
    assert bob.delete(source["id"]).status_code == 404
    assert bob.list().json() == {"items": [], "nextCursor": None}


def test_org_sources_belong_to_the_org_and_only_admins_change_them(clean, ingest_url, db):
    admin = org_member(clean, ingest_url, "user_a", "org_1", "admin")
    member = org_member(clean, ingest_url, "user_m", "org_1", "member")
    outsider = org_member(clean, ingest_url, "user_o", "org_2", "admin")
    personal = SourceAPI(ingest_url, clean.issuer.session_token("user_a"))  # no active org
    created = admin.create("Org source").json()
    assert db.collection("sources").document(created["id"]).get().get("owner") == "org:org_1"
    assert member.get(created["id"]).status_code == 200
    assert [s["id"] for s in member.list().json()["items"]] == [created["id"]]
    assert member.create("nope").status_code == 403
    assert member.rotate(created["id"]).status_code == 403
    assert member.delete(created["id"]).status_code == 403
    assert outsider.get(created["id"]).status_code == 404
    assert personal.get(created["id"]).status_code == 404


def test_list_pages_with_a_cursor(tenant):
    ids = sorted(tenant.create(f"s{n}").json()["id"] for n in range(3))
    first = tenant.list(limit=2).json()
    assert [s["id"] for s in first["items"]] == ids[:2] and first["nextCursor"] == ids[1]
    second = tenant.list(limit=2, cursor=first["nextCursor"]).json()
    assert [s["id"] for s in second["items"]] == ids[2:] and second["nextCursor"] is None
    assert tenant.list(limit=0).status_code == 400


def test_rotation_without_grace_retires_the_old_secret_at_once(tenant, source, db):
    rotated = tenant.rotate(source["id"])
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != source["secret"]
    assert partner.send(source["url"], source["secret"]).status_code == 401
    assert partner.send(source["url"], new).status_code == 202
    assert audit(db, "source.rotated", source["id"])[0]["actor"] == "user_alice"


def test_rotation_with_grace_keeps_the_old_secret_until_the_grace_ends(tenant, source):
    new = tenant.rotate(source["id"], graceSeconds=3).json()["secret"]
    assert partner.send(source["url"], source["secret"]).status_code == 202
    assert partner.send(source["url"], new).status_code == 202
    time.sleep(3.5)
    assert partner.send(source["url"], source["secret"]).status_code == 401
    assert partner.send(source["url"], new).status_code == 202


def test_rotation_answers_the_new_key_id_and_when_the_old_secret_stops(tenant, source):
    assert source["keyId"].startswith("key_") and source["previousKeyExpiresAt"] is None
    before = dt.datetime.now(dt.UTC)
    rotated = tenant.rotate(source["id"], graceSeconds=600).json()
    assert rotated["keyId"] not in (None, source["keyId"])
    ends = dt.datetime.fromisoformat(rotated["previousKeyExpiresAt"])
    assert before + dt.timedelta(seconds=599) <= ends <= before + dt.timedelta(seconds=660)
    shown = tenant.get(source["id"]).json()  # the view shows the same, without the secret
    assert (shown["keyId"], shown["previousKeyExpiresAt"]) == (
        rotated["keyId"],
        rotated["previousKeyExpiresAt"],
    )
    without_grace = tenant.rotate(source["id"]).json()
    assert without_grace["keyId"] != rotated["keyId"]
    assert without_grace["previousKeyExpiresAt"] is None


def test_the_inspector_reports_the_key_id_the_view_shows(tenant, source):
    assert partner.send(source["url"], source["secret"]).status_code == 202
    listed = requests.get(
        f"{tenant.base}/v1/sources/{source['id']}/deliveries", headers=tenant.auth, timeout=15
    )
    items = listed.json()["items"]
    assert items[0]["keyId"] == tenant.get(source["id"]).json()["keyId"]


def test_rotating_during_a_grace_period_ends_the_oldest_secret(tenant, source):
    second = tenant.rotate(source["id"], graceSeconds=600).json()["secret"]
    third = tenant.rotate(source["id"], graceSeconds=600).json()["secret"]
    assert partner.send(source["url"], source["secret"]).status_code == 401
    assert partner.send(source["url"], second).status_code == 202
    assert partner.send(source["url"], third).status_code == 202


@pytest.mark.parametrize("grace", [-1, 86_401, "10", True])
def test_invalid_grace_is_400(tenant, source, grace):
    assert tenant.rotate(source["id"], graceSeconds=grace).status_code == 400


def test_a_new_secret_verifies_at_once_on_another_instance(clean, tenant, source, db):
    """Rotation on one instance; the other holds the old key in its cache and must reload."""
    assert partner.send(source["url"], source["secret"]).status_code == 202  # cache filled
    port = free_port()
    second = start_service("ingest", port, clean.service_env(), clean.state_dir / "logs")
    try:
        other = SourceAPI(f"http://127.0.0.1:{port}", clean.issuer.session_token("user_alice"))
        new = other.rotate(source["id"]).json()["secret"]
        time.sleep(1.1)  # the cached entry is now older than a second
        assert partner.send(source["url"], new).status_code == 202
    finally:
        second.stop()
    decrypted = audit(db, "secret.decrypted", source["id"])
    assert decrypted and all(e["actor"] == "ingest" for e in decrypted)


def test_delete_stops_events_at_once_and_repeats_as_204(tenant, source, db):
    assert partner.send(source["url"], source["secret"]).status_code == 202
    assert tenant.delete(source["id"]).status_code == 204
    assert partner.send(source["url"], source["secret"]).status_code == 404
    assert tenant.get(source["id"]).status_code == 404
    assert tenant.delete(source["id"]).status_code == 204
    assert len(audit(db, "source.deleted", source["id"])) == 1


def test_delete_is_swept_by_the_sweep_task_in_batches(clean, tenant, source, db):
    for n in range(5):
        partner.send(source["url"], source["secret"], {"n": n})
    tenant.delete(source["id"])
    ref = db.collection("sources").document(source["id"])

    # Not while instances may still hold its keys (30 s cache): events could land after it.
    assert sweep(clean)["purged"] == 0
    assert len(list(ref.collection("events").stream())) == 5
    ref.update({"deletedAt": ref.get().get("deletedAt") - dt.timedelta(minutes=5)})
    assert sweep(clean)["purged"] == 1
    assert list(ref.collection("events").stream()) == []
    assert list(ref.collection("idempotency").stream()) == []
    assert ref.get().get("purgedAt") is not None
    assert sweep(clean)["purged"] == 0  # safe to run again


def test_sweep_refuses_tokens_for_another_audience_or_identity(clean, ingest_url, tenant):
    for token in (
        clean.issuer.task_token(audience="someone-else"),
        clean.issuer.task_token(email="intruder@example.com"),
        clean.issuer.session_token("user_alice"),
    ):
        answer = requests.post(
            f"{ingest_url}/tasks/sweep", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 401


def test_session_tokens_are_verified_strictly(clean, ingest_url):
    key = clean.issuer.key_pem
    issuer = clean.issuer
    bad_tokens = {
        "expired": issuer.session_token("user_x", ttl_s=-120),
        "foreign issuer": issuer.session_token("user_x", iss="https://evil.example"),
        "unknown azp": issuer.session_token("user_x", azp="https://evil.example"),
        "hs256": jwt.encode(
            {"sub": "user_x", "iss": issuer.url, "exp": time.time() + 60}, "k" * 32
        ),
        "garbage": "not-a-token",
    }
    assert key  # the good key signs all but the HS256 one
    for name, token in bad_tokens.items():
        answer = requests.get(
            f"{ingest_url}/v1/sources", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 401, name
    assert requests.get(f"{ingest_url}/v1/sources", timeout=10).status_code == 401


def test_cors_preflight_for_configured_origins(ingest_url):
    answer = requests.options(
        f"{ingest_url}/v1/sources",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    other = requests.options(
        f"{ingest_url}/v1/sources", headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_hostile_api_input_is_400_not_500(tenant, source):
    lone_surrogate = b'{"label": "\\ud800"}'
    answer = requests.post(
        f"{tenant.base}/v1/sources",
        data=lone_surrogate,
        headers={**tenant.auth, "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert tenant.list(limit="\u00b2").status_code == 400
    assert tenant.list(cursor="../x").status_code == 400


def test_a_member_of_another_org_gets_404_not_403(clean, ingest_url, source):
    tenant_admin = org_member(clean, ingest_url, "user_a", "org_1", "admin")
    theirs = tenant_admin.create("theirs").json()
    stranger = org_member(clean, ingest_url, "user_s", "org_2", "member")
    assert stranger.rotate(theirs["id"], graceSeconds="bad").status_code == 404
    assert stranger.delete(theirs["id"]).status_code == 404


def test_receiver_urls_follow_the_scheme_the_client_used(tenant):
    answer = requests.post(
        f"{tenant.base}/v1/sources",
        json={"label": "behind a proxy"},
        headers={**tenant.auth, "X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert answer.json()["url"].startswith("https://127.0.0.1:")


@pytest.mark.parametrize("deleted", ["user", "organization"])
def test_a_deleted_owner_with_a_valid_token_cannot_create_a_source(clean, ingest_url, db, deleted):
    from tests import clerk

    token = clean.issuer.session_token("user_gone", org="org_gone")
    api = SourceAPI(ingest_url, token)
    assert api.create("before").status_code == 201
    object_id = "user_gone" if deleted == "user" else "org_gone"
    answer = clerk.post(
        clean.url("clerk-sync"),
        clean.webhook_secret,
        clerk.event(f"{deleted}.deleted", clerk.deleted(deleted, object_id)),
    )
    assert answer.status_code == 200, answer.text
    refused = api.create("after")  # the session token is still valid
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "owner_deleted"
    labels = [d.get("label") for d in db.collection("sources").stream()]
    assert labels == ["before"]


def test_a_source_created_before_ids_carried_a_check_works_when_listed(clean, db):
    """Ids minted before the keyed check (src_ + 20 hex) keep working if LEGACY_SOURCE_IDS
    lists them; every other id of that shape is refused without a lookup."""
    from services.common.crypto import Keyring
    from services.ingest.sources import new_secret

    legacy_id = "src_" + "0a1b2c3d4e" * 2
    secret = new_secret()
    sealed = Keyring.parse(clean.source_kek).seal(secret.encode(), legacy_id.encode())
    now = dt.datetime.now(dt.UTC)
    key = {"id": "key_legacy", "sealed": sealed.to_record(), "createdAt": now, "expiresAt": None}
    db.collection("sources").document(legacy_id).set(
        {
            "id": legacy_id,
            "owner": "user:user_alice",
            "label": "Old",
            "retention": 1000,
            "createdAt": now,
            "createdBy": "user_alice",
            "deleted": False,
            "deletedAt": None,
            "purgedAt": None,
            "keys": [key],
        }
    )
    unlisted = clean.url("ingest") + f"/webhooks/inbound/{legacy_id}"
    assert partner.send(unlisted, secret).status_code == 404  # this instance does not list it
    port = free_port()
    env = {**clean.service_env(), "LEGACY_SOURCE_IDS": legacy_id}
    listing = start_service("ingest", port, env, clean.state_dir / "logs")
    try:
        base = f"http://127.0.0.1:{port}/webhooks/inbound"
        assert partner.send(f"{base}/{legacy_id}", secret).status_code == 202
        assert partner.send(f"{base}/src_{'f' * 20}", secret).status_code == 404
    finally:
        listing.stop()
