"""ed25519 (Standard Webhooks v1a), GitHub and Stripe sources over HTTP (docs/partners.md "ed25519
(v1a) sources", "GitHub sources", "Stripe sources")."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests

from tests import partner
from tests.support import request_log, wait_for

ATTACKER_SECRET = "attacker-chosen"  # noqa: S105 (a test value)
STRIPE_SECRET = "whsec_" + base64.b64encode(b"stripe endpoint secret 32 bytes!").decode()
GITHUB_SECRET = "It's a Secret to Everybody"  # noqa: S105 (GitHub's documented example)


def events(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("events")
    return [{**d.to_dict(), "id": d.id} for d in ref.stream()]


def post(url: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=30)


def stripe_event(event_id: str = "evt_1Abc", amount: int = 1250, **extra) -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"object": "payment_intent", "amount": amount, "currency": "eur"}},
        "pending_webhooks": 1,
        **extra,
    }
    return json.dumps(event).encode()


@pytest.fixture
def ed25519_source(tenant):
    private, public = partner.ed25519_keys()
    created = tenant.create("Signed by a partner", signing="ed25519", publicKey=public)
    assert created.status_code == 201, created.text
    return created.json(), private


def provider_source(tenant, provider: str, secret: str) -> dict:
    """A GitHub or Stripe source whose provider secret is set, as a team does after creating it."""
    created = tenant.create(provider.title(), provider=provider)
    assert created.status_code == 201, created.text
    assert tenant.rotate(created.json()["id"], secret=secret).status_code == 200
    return created.json()


@pytest.fixture
def stripe_source(tenant) -> dict:
    return provider_source(tenant, "stripe", STRIPE_SECRET)


@pytest.fixture
def github_source(tenant) -> dict:
    return provider_source(tenant, "github", GITHUB_SECRET)


# --- ed25519 -------------------------------------------------------------------------------------


def test_an_ed25519_source_stores_only_the_public_key_and_shows_no_secret(tenant, db):
    _, public = partner.ed25519_keys()
    created = tenant.create("Partner", signing="ed25519", publicKey=public)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert "secret" not in shown
    assert shown["provider"] == "inlet" and shown["signing"] == "ed25519"
    record = db.collection("sources").document(shown["id"]).get().to_dict()
    (key,) = record["keys"]
    assert key["publicKey"] == public and "sealed" not in key
    assert tenant.get(shown["id"]).json()["signing"] == "ed25519"


def test_a_v1a_signature_verifies_and_the_webhook_id_deduplicates(ed25519_source, db):
    source, private = ed25519_source
    body = b'{"order": 7}'
    hdrs = partner.ed25519_headers(private, body, msg_id="msg_ed_1")
    first = post(source["url"], body, hdrs)
    assert first.status_code == 202, first.text
    again = post(source["url"], body, hdrs)
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    (stored,) = events(db, source["id"])
    assert stored["idempotencyKey"] == "msg_ed_1" and stored["scheme"] == "standard"


def test_a_v1a_signature_from_another_key_is_401(ed25519_source, db):
    source, _ = ed25519_source
    stranger, _ = partner.ed25519_keys()
    body = b"{}"
    answer = post(source["url"], body, partner.ed25519_headers(stranger, body))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_signature"
    assert events(db, source["id"]) == []


def test_a_v1a_signature_over_other_bytes_is_401(ed25519_source):
    source, private = ed25519_source
    hdrs = partner.ed25519_headers(private, b'{"a": 1}')
    assert post(source["url"], b'{"a":1}', hdrs).status_code == 401


def test_an_ed25519_source_ignores_v1_entries_and_an_hmac_source_ignores_v1a(
    ed25519_source, source
):
    ed_source, private = ed25519_source
    body = b"{}"
    # An HMAC v1 entry (with any key) next to nothing usable for an ed25519 source: 401.
    hmac_only = {
        "Content-Type": "application/json",
        "webhook-id": "msg_x",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + base64.b64encode(b"k" * 32).decode(),
    }
    assert post(ed_source["url"], body, hmac_only).status_code == 401
    # A good v1a signature sent to an HMAC source: nothing there verifies it.
    signed = partner.ed25519_headers(private, body)
    answer = post(source["url"], body, signed)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_signature"


def test_a_good_v1a_entry_beside_malformed_ones_verifies(ed25519_source):
    source, private = ed25519_source
    body = b"{}"
    hdrs = partner.ed25519_headers(private, body)
    hdrs["webhook-signature"] = "v1a,@@ v1a,abc " + hdrs["webhook-signature"]
    assert post(source["url"], body, hdrs).status_code == 202


def test_a_v1a_header_with_no_well_formed_entry_is_400(ed25519_source):
    source, private = ed25519_source
    hdrs = partner.ed25519_headers(private, b"{}")
    hdrs["webhook-signature"] = "v1a," + "A" * 20
    answer = post(source["url"], b"{}", hdrs)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_signature_header"


def test_the_inlet_signature_scheme_is_not_accepted_by_an_ed25519_source(ed25519_source):
    source, _ = ed25519_source
    answer = partner.send(source["url"], "whsec_anything")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "scheme_not_accepted"


def test_a_stale_v1a_timestamp_is_401(ed25519_source):
    source, private = ed25519_source
    hdrs = partner.ed25519_headers(private, b"{}", timestamp=int(time.time()) - 400)
    answer = post(source["url"], b"{}", hdrs)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "stale"


def test_rotating_an_ed25519_source_takes_a_new_public_key_with_grace(tenant, ed25519_source, db):
    source, old = ed25519_source
    new, new_public = partner.ed25519_keys()
    rotated = tenant.rotate(source["id"], publicKey=new_public, graceSeconds=60)
    assert rotated.status_code == 200, rotated.text
    assert "secret" not in rotated.json() and rotated.json()["signing"] == "ed25519"
    for private in (old, new):  # both verify during the grace period
        body = json.dumps({"key": uuid.uuid4().hex}).encode()
        assert post(source["url"], body, partner.ed25519_headers(private, body)).status_code == 202
    newest, newest_public = partner.ed25519_keys()
    assert tenant.rotate(source["id"], publicKey=newest_public).status_code == 200
    for private, status in ((old, 401), (new, 401), (newest, 202)):  # at most two, no grace now
        body = json.dumps({"key": uuid.uuid4().hex}).encode()
        assert post(source["url"], body, partner.ed25519_headers(private, body)).status_code == (
            status
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"signing": "ed25519"}, "publicKey"),
        ({"signing": "ed25519", "publicKey": "whpk_short"}, "publicKey"),
        ({"signing": "ed25519", "publicKey": "whsec_" + "A" * 43 + "="}, "publicKey"),
        ({"signing": "rsa"}, "signing"),
        ({"signing": None}, "signing"),
        ({"provider": "gitlab"}, "provider"),
        ({"provider": "github", "signing": "ed25519"}, "signing"),
        ({"publicKey": "whpk_" + "A" * 43 + "="}, "publicKey"),
        ({"provider": "stripe", "secret": STRIPE_SECRET}, "secret"),
    ],
)
def test_invalid_creations_are_400_naming_the_field(tenant, db, body, field):
    answer = tenant.create("Bad", **body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["message"]
    assert list(db.collection("sources").stream()) == []


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("ed25519", {}, "publicKey"),
        ("ed25519", {"publicKey": "whpk_x"}, "publicKey"),
        ("ed25519", {"secret": STRIPE_SECRET}, "secret"),
        ("inlet", {"publicKey": "whpk_" + "A" * 43 + "="}, "publicKey"),
        ("inlet", {"secret": STRIPE_SECRET}, "secret"),
        ("stripe", {}, "secret"),
        ("stripe", {"secret": "not-a-stripe-secret"}, "secret"),
        ("github", {"secret": ""}, "secret"),
        ("github", {"secret": " padded "}, "secret"),
        ("github", {"secret": 42}, "secret"),
        ("github", {"publicKey": "whpk_" + "A" * 43 + "="}, "publicKey"),
    ],
)
def test_invalid_rotations_are_400_naming_the_field_and_change_nothing(
    tenant, db, kind, body, field
):
    _, public = partner.ed25519_keys()
    kinds = {
        "ed25519": {"signing": "ed25519", "publicKey": public},
        "inlet": {},
        "stripe": {"provider": "stripe"},
        "github": {"provider": "github"},
    }
    source = tenant.create("Source", **kinds[kind]).json()
    before = db.collection("sources").document(source["id"]).get().to_dict()["keys"]
    answer = tenant.rotate(source["id"], **body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["message"]
    assert db.collection("sources").document(source["id"]).get().to_dict()["keys"] == before


# --- GitHub --------------------------------------------------------------------------------------


def test_github_source_verifies_githubs_worked_example_and_stores_the_delivery(
    tenant, github_source, db
):
    # GitHub's documentation ("Validating webhook deliveries"): secret "It's a Secret to
    # Everybody" over "Hello, World!" gives this signature. Our receiver must agree with it.
    documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert partner.github_headers(GITHUB_SECRET, b"Hello, World!")["X-Hub-Signature-256"] == (
        documented
    )
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    hdrs = partner.github_headers(GITHUB_SECRET, body, delivery="72d3162e-cc78-11e3-81ab")
    first = post(github_source["url"], body, hdrs)
    assert first.status_code == 202, first.text
    (stored,) = events(db, github_source["id"])
    assert stored["scheme"] == "github" and stored["idempotencyKey"] == "72d3162e-cc78-11e3-81ab"
    assert stored["body"] == body


def test_github_worked_example_body_passes_signature_and_fails_only_as_json(github_source):
    """The documented payload is not JSON: it gets past step 6 (signature) to step 7's 400."""
    body = b"Hello, World!"
    hdrs = partner.github_headers(GITHUB_SECRET, body)
    assert hdrs["X-Hub-Signature-256"].endswith("c46f4379c8b043e17")
    answer = post(github_source["url"], body, hdrs)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    wrong = partner.github_headers("another secret", body)
    assert post(github_source["url"], body, wrong).json()["error"]["code"] == "invalid_signature"


def test_a_github_redelivery_is_a_duplicate_even_with_another_body(github_source, db):
    first = post(
        github_source["url"], b'{"n": 1}', partner.github_headers(GITHUB_SECRET, b'{"n": 1}', "d-1")
    )
    again_body = b'{"n": 1, "redelivery": true}'
    again = post(
        github_source["url"], again_body, partner.github_headers(GITHUB_SECRET, again_body, "d-1")
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert len(events(db, github_source["id"])) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Hub-Signature-256", "sha1=abc"),
        ("X-Hub-Signature-256", "sha256=xyz"),
        ("X-GitHub-Delivery", None),
        ("X-GitHub-Delivery", "k" * 256),
    ],
)
def test_malformed_github_headers_are_400_without_a_lookup(clean, github_source, name, value):
    body = b"{}"
    hdrs = partner.github_headers(GITHUB_SECRET, body)
    if value is None:
        del hdrs[name]
    else:
        hdrs[name] = value
    answer = post(github_source["url"], body, hdrs)
    assert answer.status_code == 400, answer.text
    assert request_log(clean, "ingest", answer.headers["X-Request-Id"])["firestoreOps"] == 0


def test_a_provider_source_without_its_secret_refuses_every_delivery_with_no_secret_set(tenant):
    created = tenant.create("GitHub", provider="github")
    assert created.status_code == 201 and "secret" not in created.json()
    source = created.json()
    assert source["provider"] == "github" and source["signing"] == "hmac"
    body = b"{}"
    answer = post(source["url"], body, partner.github_headers(GITHUB_SECRET, body))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "no_secret_set"
    # Setting it verifies at once (this instance forgot its cache entry).
    rotated = tenant.rotate(source["id"], secret=GITHUB_SECRET)
    assert rotated.status_code == 200 and "secret" not in rotated.json()
    assert post(source["url"], body, partner.github_headers(GITHUB_SECRET, body)).status_code == 202


def test_a_provider_secret_is_sealed_and_never_echoed(tenant, github_source, db):
    record = db.collection("sources").document(github_source["id"]).get().to_dict()
    (key,) = record["keys"]
    assert set(key["sealed"]) == {"kek", "nonce", "ciphertext"}
    assert GITHUB_SECRET.encode() not in key["sealed"]["ciphertext"]
    for shown in (tenant.get(github_source["id"]).text, tenant.list().text):
        assert (
            GITHUB_SECRET not in shown and "secret" not in json.loads(shown).get("items", [{}])[0]
        )


def test_another_tenant_can_neither_read_nor_set_a_provider_secret(clean, ingest_url, tenant, db):
    source = tenant.create("GitHub", provider="github").json()
    mallory = partner.SourceAPI(ingest_url, clean.issuer.session_token("user_mallory"))
    assert mallory.rotate(source["id"], secret=ATTACKER_SECRET).status_code == 404
    assert mallory.get(source["id"]).status_code == 404
    assert db.collection("sources").document(source["id"]).get().to_dict()["keys"] == []
    body = b"{}"
    forged = post(source["url"], body, partner.github_headers(ATTACKER_SECRET, body))
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "no_secret_set"


def test_a_github_source_does_not_accept_the_inlet_or_stripe_schemes(github_source):
    inlet = partner.send(github_source["url"], GITHUB_SECRET)
    assert inlet.status_code == 401 and inlet.json()["error"]["code"] == "scheme_not_accepted"
    body = stripe_event()
    stripe = post(github_source["url"], body, partner.stripe_headers(STRIPE_SECRET, body))
    assert stripe.status_code == 401 and stripe.json()["error"]["code"] == "scheme_not_accepted"


# --- Stripe --------------------------------------------------------------------------------------


def test_a_stripe_event_is_stored_under_its_event_id(stripe_source, db):
    body = stripe_event("evt_3Pq")
    answer = post(stripe_source["url"], body, partner.stripe_headers(STRIPE_SECRET, body))
    assert answer.status_code == 202, answer.text
    (stored,) = events(db, stripe_source["id"])
    assert stored["idempotencyKey"] == "evt_3Pq" and stored["scheme"] == "stripe"


def test_a_stripe_retry_with_re_rendered_fields_is_a_duplicate(stripe_source, db):
    first_body = stripe_event("evt_retry", pending_webhooks=2)
    first = post(
        stripe_source["url"], first_body, partner.stripe_headers(STRIPE_SECRET, first_body)
    )
    retry_body = stripe_event("evt_retry", pending_webhooks=1)
    retry = post(
        stripe_source["url"], retry_body, partner.stripe_headers(STRIPE_SECRET, retry_body)
    )
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"id": first.json()["id"], "duplicate": True}
    (stored,) = events(db, stripe_source["id"])
    assert stored["body"] == first_body


@pytest.mark.parametrize(
    "body",
    [b'{"object": "event"}', b'{"id": 42}', b'{"id": ""}', b'{"id": null}', b'{"id": "a\\tb"}'],
)
def test_a_stripe_event_without_a_string_id_is_400(stripe_source, db, body):
    answer = post(stripe_source["url"], body, partner.stripe_headers(STRIPE_SECRET, body))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_idempotency_key"
    assert events(db, stripe_source["id"]) == []


def test_a_stripe_signature_outside_the_300_s_tolerance_is_401(stripe_source):
    body = stripe_event()
    hdrs = partner.stripe_headers(STRIPE_SECRET, body, timestamp=int(time.time()) - 301)
    answer = post(stripe_source["url"], body, hdrs)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "stale"


def test_stripe_signatures_of_test_mode_and_several_v1_entries_verify(stripe_source):
    body = stripe_event("evt_multi")
    hdrs = partner.stripe_headers(STRIPE_SECRET, body)
    t, v1 = hdrs["Stripe-Signature"].split(",")
    hdrs["Stripe-Signature"] = f"{t},v1={'0' * 64},{v1},v0={'1' * 64}"
    assert post(stripe_source["url"], body, hdrs).status_code == 202


def test_a_stripe_signature_with_the_wrong_secret_is_401(stripe_source, db):
    body = stripe_event()
    wrong = "whsec_" + base64.b64encode(b"w" * 32).decode()
    answer = post(stripe_source["url"], body, partner.stripe_headers(wrong, body))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_signature"
    assert events(db, stripe_source["id"]) == []


def test_rotating_a_stripe_secret_keeps_the_old_one_for_the_grace(tenant, stripe_source):
    newer = "whsec_" + base64.b64encode(b"n" * 32).decode()
    assert tenant.rotate(stripe_source["id"], secret=newer, graceSeconds=60).status_code == 200
    for n, secret in enumerate((STRIPE_SECRET, newer)):
        body = stripe_event(f"evt_grace_{n}")
        answer = post(stripe_source["url"], body, partner.stripe_headers(secret, body))
        assert answer.status_code == 202, answer.text


def test_a_block_sums_stripe_amounts_over_24h(clean, dashboard, stripe_source):
    block = {
        "binding": {
            "dataSourceId": stripe_source["id"],
            "queryConfig": {
                "type": "webhook.aggregate",
                "params": {"window": "24h", "field": "data.object.amount", "op": "sum"},
            },
            "projection": {"fields": {"value": {"source": "value"}}},
        },
        "widget": {"template": "metric"},
    }
    assert dashboard.put_block("stripe-revenue", block).status_code == 201
    for n, amount in enumerate((1250, 800, 99)):
        body = stripe_event(f"evt_sum_{n}", amount)
        assert post(stripe_source["url"], body, partner.stripe_headers(STRIPE_SECRET, body)).ok
    retry = stripe_event("evt_sum_0", 1250, pending_webhooks=0)  # a retry: counted once
    assert post(stripe_source["url"], retry, partner.stripe_headers(STRIPE_SECRET, retry)).ok
    assert wait_for(
        lambda: dashboard.get_block("stripe-revenue").json()["widget"]["data"]["value"] == 2149, 20
    ), dashboard.get_block("stripe-revenue").json()
    query = {
        "type": "webhook.aggregate",
        "params": {"window": "24h", "op": "sum", "field": "$.data.object.amount"},
    }
    assert dashboard.query(stripe_source["id"], query).json()["result"]["value"] == 2149
