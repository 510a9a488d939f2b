"""Hostile input never becomes a 500 or a stored event (docs/clerk-sync.md, "ingest")."""

from __future__ import annotations

import string
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import partner

# What a client library can send at all: printable ASCII, no surrounding whitespace.
header_text = st.text(
    alphabet=string.printable.translate({ord(c): None for c in "\r\n\t\x0b\x0c"}), max_size=120
).map(str.strip)
signature_header = st.one_of(
    header_text,
    st.builds(lambda t, v: f"t={t},v1={v}", st.integers(-(10**13), 10**13), header_text),
    st.builds(lambda v: f"t=1700000000,v1={v}", st.text("0123456789abcdef", max_size=70)),
)
bodies = st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode))
refusals = {400, 401, 404, 413, 415}
fuzz = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz
@given(
    signature=st.one_of(st.none(), signature_header),
    key=st.one_of(st.none(), header_text),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; x"]),
    body=bodies,
)
def test_inbound_refuses_hostile_requests_without_a_500(
    source, db, signature, key, content_type, body
):
    hdrs = {"Content-Type": content_type}
    if signature is not None:
        hdrs["Inlet-Signature"] = signature
    if key is not None:
        hdrs["Idempotency-Key"] = key
    answer = requests.post(source["url"], data=body, headers=hdrs, timeout=10)
    assert answer.status_code in refusals, (answer.status_code, answer.text)
    assert answer.json()["error"]["code"]


@fuzz
@given(body=bodies)
def test_a_good_signature_over_any_bytes_is_stored_only_when_they_are_strict_json(source, body):
    answer = partner.send(source["url"], source["secret"], body=body)
    assert answer.status_code in {202, 400}, (answer.status_code, answer.text)


@fuzz
@given(
    svix_id=st.one_of(header_text, st.just("msg_1")),
    timestamp=st.one_of(header_text, st.integers().map(str)),
    signature=header_text,
    body=bodies,
)
def test_clerk_webhook_refuses_hostile_requests_without_a_500(
    clean, svix_id, timestamp, signature, body
):
    hdrs = {"svix-id": svix_id, "svix-timestamp": timestamp, "svix-signature": signature}
    answer = requests.post(
        f"{clean.url('clerk-sync')}/webhooks/clerk", data=body, headers=hdrs, timeout=10
    )
    assert answer.status_code in {400, 401, 413}, (answer.status_code, answer.text)


@pytest.fixture
def signed_sources(tenant) -> dict[str, dict]:
    """One source of each other kind, with its key material (docs/partners.md "GitHub sources",
    "Stripe
    sources", "ed25519 (v1a) sources")."""
    private, public = partner.ed25519_keys()
    github = tenant.create("GitHub", provider="github").json()
    assert tenant.rotate(github["id"], secret=GITHUB_SECRET).status_code == 200
    stripe = tenant.create("Stripe", provider="stripe").json()
    assert tenant.rotate(stripe["id"], secret=STRIPE_SECRET).status_code == 200
    ed25519 = tenant.create("Ed", signing="ed25519", publicKey=public).json()
    return {"github": github, "stripe": stripe, "ed25519": {**ed25519, "private": private}}


GITHUB_SECRET = "hostile-input"  # noqa: S105 (a test value)
STRIPE_SECRET = "whsec_" + "A" * 43 + "="
provider_header = st.one_of(
    header_text,
    st.builds(lambda v: f"sha256={v}", st.text("0123456789abcdefABCDEF", max_size=70)),
    st.builds(lambda t, v: f"t={t},v1={v}", st.integers(-(10**13), 10**13), header_text),
    st.builds(lambda v: f"v1a,{v}", st.text(string.ascii_letters + "+/=", max_size=90)),
)


@fuzz
@given(
    name=st.sampled_from(["Stripe-Signature", "X-Hub-Signature-256", "webhook-signature"]),
    value=provider_header,
    delivery=st.one_of(st.none(), header_text),
    body=bodies,
)
def test_provider_and_ed25519_sources_refuse_hostile_requests_without_a_500(
    signed_sources, name, value, delivery, body
):
    hdrs = {"Content-Type": "application/json", name: value}
    if delivery is not None:
        hdrs.update({"X-GitHub-Delivery": delivery, "webhook-id": delivery})
        hdrs["webhook-timestamp"] = str(int(time.time()))
    for source in signed_sources.values():
        answer = requests.post(source["url"], data=body, headers=hdrs, timeout=10)
        assert answer.status_code in refusals, (answer.status_code, answer.text)
        assert answer.json()["error"]["code"]


@fuzz
@given(body=bodies)
def test_good_github_and_v1a_signatures_over_any_bytes_store_only_strict_json(signed_sources, body):
    github = signed_sources["github"]
    answer = requests.post(
        github["url"], data=body, headers=partner.github_headers(GITHUB_SECRET, body), timeout=10
    )
    assert answer.status_code in {202, 400}, (answer.status_code, answer.text)
    ed25519 = signed_sources["ed25519"]
    hdrs = partner.ed25519_headers(ed25519["private"], body)
    answer = requests.post(ed25519["url"], data=body, headers=hdrs, timeout=10)
    assert answer.status_code in {202, 400}, (answer.status_code, answer.text)
