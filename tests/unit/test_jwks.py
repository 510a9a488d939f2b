"""Clerk's key rotation as docs/operations.md states it: a new kid verifies at once, a kid
withdrawn
from the JWKS stops verifying within five minutes. Keys are generated here and served from a
loopback JWKS whose key set each test changes."""

from __future__ import annotations

import json
import threading

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from devstack.loopback import LoopbackServer, QuietHandler
from services.common import auth
from services.common.config import ClerkAuthSettings
from services.common.errors import Unauthorized

ISSUER = "https://clerk.example.test"
PARTY = "http://localhost:3000"


def new_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class RotatingJwks(LoopbackServer):
    """A JWKS endpoint whose published keys the test sets, counting the fetches."""

    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.fetches = 0
        self.failing = False
        self._lock = threading.Lock()
        jwks = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with jwks._lock:
                    jwks.fetches += 1
                    keys = [auth.public_jwks(pem)["keys"][0] for pem in jwks.published]
                    status = 500 if jwks.failing else 200
                body = json.dumps({"keys": keys}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
        self.jwks_url = self.url + "/.well-known/jwks.json"

    def publish(self, *pems: bytes) -> None:
        with self._lock:
            self.published = list(pems)


class Clock:
    """A monotonic clock the test moves; sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def jwks():
    server = RotatingJwks().start()
    yield server
    server.stop()


def token(pem: bytes, sub: str = "user_a") -> str:
    return auth.sign_local_token(pem, {"iss": ISSUER, "sub": sub, "azp": PARTY})


def kid(pem: bytes) -> str:
    return auth.public_jwks(pem)["keys"][0]["kid"]


def verifies(keys: auth.SigningKeys, pem: bytes) -> bool:
    try:
        jwt.decode(token(pem), keys.key(kid(pem)), algorithms=["RS256"], issuer=ISSUER)
    except Unauthorized:
        return False
    return True


def session(jwks_url: str, bearer: str) -> auth.Principal:
    settings = ClerkAuthSettings(issuer=ISSUER, jwks_url=jwks_url, authorized_parties=(PARTY,))
    request = Request(EnvironBuilder(headers={"Authorization": f"Bearer {bearer}"}).get_environ())
    return auth.verify_session(request, settings)


def test_a_new_kid_verifies_at_once_through_the_session_check(jwks):
    old, new = new_key(), new_key()
    jwks.publish(old)
    assert session(jwks.jwks_url, token(old)).user_id == "user_a"
    jwks.publish(old, new)  # Clerk rotates: the new key is published, then used
    assert session(jwks.jwks_url, token(new, "user_b")).user_id == "user_b"


def test_a_withdrawn_kid_stops_verifying_within_five_minutes(jwks):
    clock = Clock()
    keys = auth.SigningKeys(jwks.jwks_url, clock=clock, sleep=clock.sleep)
    old, new = new_key(), new_key()
    jwks.publish(old, new)
    assert verifies(keys, old)
    jwks.publish(new)  # the old key is withdrawn
    clock.now += 5 * 60
    assert not verifies(keys, old)
    assert verifies(keys, new)


def test_a_known_kid_costs_no_fetch_until_the_set_ages(jwks):
    clock = Clock()
    keys = auth.SigningKeys(jwks.jwks_url, clock=clock, sleep=clock.sleep)
    pem = new_key()
    jwks.publish(pem)
    for _ in range(5):
        assert verifies(keys, pem)
    assert jwks.fetches == 1
    clock.now += auth.MAX_KEY_AGE_S
    assert verifies(keys, pem)
    assert jwks.fetches == 2


def test_unknown_kids_fetch_the_set_at_most_once_per_cooldown(jwks):
    clock = Clock()
    keys = auth.SigningKeys(jwks.jwks_url, clock=clock, sleep=clock.sleep)
    jwks.publish(new_key())
    started = clock.now
    for n in range(5):
        with pytest.raises(Unauthorized):
            keys.key(f"kid_{n}")
    assert jwks.fetches <= 1 + (clock.now - started) / auth.UNKNOWN_KID_COOLDOWN_S


def test_an_unreachable_jwks_is_503_and_is_not_hammered(jwks):
    clock = Clock()
    keys = auth.SigningKeys(jwks.jwks_url, clock=clock, sleep=clock.sleep)
    jwks.publish(new_key())
    jwks.failing = True
    for _ in range(3):
        with pytest.raises(auth.AuthUnavailable):
            keys.key("any")
    assert jwks.fetches == 1
