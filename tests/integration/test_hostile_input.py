"""Hostile input never becomes a 500 or a stored event (README "clerk-sync", "ingest")."""

from __future__ import annotations

import string

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
