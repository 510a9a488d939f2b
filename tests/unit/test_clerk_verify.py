"""clerk-sync's Svix check: the library for UTF-8 bodies, the same rule over other bytes."""

from __future__ import annotations

import datetime as dt

import pytest

from devstack.stack import new_webhook_secret
from services.clerk_sync.verify import SvixVerifier
from services.common.errors import Unauthorized
from tests import clerk

SECRET = new_webhook_secret()


def test_the_raw_bytes_rule_is_svix_s_rule():
    body, when = '{"type": "user.created"}', dt.datetime.now(dt.UTC)
    ours = clerk.signed_headers_over_bytes(SECRET, body.encode(), when=when)
    theirs = clerk.signed_headers(SECRET, body, msg_id=ours["svix-id"], when=when)
    assert theirs == ours


def test_a_signed_non_utf8_body_verifies():
    body = b"\xff\xfe{}"
    SvixVerifier(SECRET).verify(body, clerk.signed_headers_over_bytes(SECRET, body))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: {**h, "svix-signature": "v1,AAAA"},
        lambda h: {**h, "svix-signature": "v2," + h["svix-signature"][3:]},
        lambda h: {**h, "svix-signature": "v1,@@@"},
        lambda h: {**h, "svix-timestamp": "abc"},
        lambda h: {**h, "svix-timestamp": "1" * 40},
        lambda h: {**h, "svix-id": h["svix-id"] + "x"},
    ],
)
def test_a_non_utf8_body_whose_signature_does_not_verify_is_unauthorized(tamper):
    body = b"\xff\xfe{}"
    headers = tamper(clerk.signed_headers_over_bytes(SECRET, body))
    with pytest.raises(Unauthorized):
        SvixVerifier(SECRET).verify(body, headers)


def test_a_non_utf8_body_signed_by_another_secret_is_unauthorized():
    body = b"\xff"
    with pytest.raises(Unauthorized):
        SvixVerifier(SECRET).verify(
            body, clerk.signed_headers_over_bytes(new_webhook_secret(), body)
        )


def test_a_stale_non_utf8_body_is_unauthorized():
    body = b"\xff"
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    with pytest.raises(Unauthorized):
        SvixVerifier(SECRET).verify(body, clerk.signed_headers_over_bytes(SECRET, body, when=when))
