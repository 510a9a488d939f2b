"""Who owns what a caller creates, and the development issuer's tokens and keys
(docs/operations.md, "Configuration")."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.auth import Principal, key_id, public_jwks, sign_local_token

# RFC 7638 section 3.1: this key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
        "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0"
        "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


@pytest.fixture(scope="module")
def private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def thumbprint(jwk: dict) -> str:
    """RFC 7638 written out: required members only, sorted, no whitespace, SHA-256, base64url."""
    canonical = '{"e":"%s","kty":"%s","n":"%s"}' % (jwk["e"], jwk["kty"], jwk["n"])  # noqa: UP031
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# --- Principal -----------------------------------------------------------------------------------


def test_a_user_token_without_an_organization_owns_as_the_user():
    principal = Principal(user_id="user_alice")

    assert principal.owner == "user:user_alice"
    assert principal.may_administer


def test_an_org_token_owns_as_the_organization():
    principal = Principal(user_id="user_alice", org_id="org_acme", org_role="org:member")

    assert principal.owner == "org:org_acme"


def test_an_org_admin_may_administer_the_organizations_resources():
    assert Principal("user_alice", "org_acme", "org:admin").may_administer


@pytest.mark.parametrize("role", ["org:member", "admin", "org:billing", "", None])
def test_anyone_but_an_org_admin_may_not_administer_the_organizations_resources(role):
    assert not Principal("user_bob", "org_acme", role).may_administer


def test_the_same_user_owns_different_things_with_and_without_an_active_org():
    alone = Principal("user_alice")
    in_org = Principal("user_alice", "org_acme", "org:admin")

    assert alone.owner != in_org.owner


# --- Development issuer --------------------------------------------------------------------------


def test_key_id_is_the_rfc_7638_thumbprint():
    assert key_id(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert thumbprint(RFC7638_JWK) == key_id(RFC7638_JWK)


def test_key_id_ignores_optional_members():
    bare = {k: RFC7638_JWK[k] for k in ("kty", "n", "e")}

    assert key_id(bare) == key_id({**RFC7638_JWK, "use": "sig", "kid": "other"})


def test_public_jwks_publishes_one_rs256_signing_key_and_no_private_part(private_pem):
    (jwk,) = public_jwks(private_pem)["keys"]

    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert jwk["kid"] == thumbprint(jwk)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


def test_public_jwks_is_stable_for_the_same_key(private_pem):
    assert public_jwks(private_pem) == public_jwks(private_pem)


def test_a_local_token_verifies_against_the_published_jwks(private_pem):
    jwks = public_jwks(private_pem)
    token = sign_local_token(
        private_pem, {"iss": "http://127.0.0.1:9999", "sub": "user_alice", "azp": "http://app"}
    )

    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        issuer="http://127.0.0.1:9999",
        options={"require": ["exp", "iat", "nbf", "sub", "iss"]},
    )

    assert header["alg"] == "RS256"
    assert header["kid"] == thumbprint(jwk)
    assert claims["sub"] == "user_alice"
    assert claims["azp"] == "http://app"


def test_a_local_token_lasts_an_hour_by_default(private_pem):
    before = int(time.time())
    token = sign_local_token(private_pem, {"sub": "user_alice"})
    claims = jwt.decode(token, options={"verify_signature": False})

    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600


def test_local_tokens_carry_unique_ids(private_pem):
    ids = {
        jwt.decode(
            sign_local_token(private_pem, {"sub": "u"}), options={"verify_signature": False}
        )["jti"]
        for _ in range(5)
    }

    assert len(ids) == 5


def test_claims_given_by_the_caller_override_the_filled_in_times(private_pem):
    token = sign_local_token(private_pem, {"sub": "u", "exp": 123}, ttl_s=60)

    assert jwt.decode(token, options={"verify_signature": False})["exp"] == 123


def test_a_local_token_does_not_verify_under_another_key(private_pem):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    token = sign_local_token(private_pem, {"sub": "user_alice"})

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["RS256"])


def test_jwks_round_trips_through_json(private_pem):
    jwks = json.loads(json.dumps(public_jwks(private_pem)))
    token = sign_local_token(private_pem, {"sub": "user_alice"})

    kid = jwt.get_unverified_header(token)["kid"]

    assert jwt.PyJWKSet.from_dict(jwks)[kid].key_id == kid
