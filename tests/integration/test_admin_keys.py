"""Admin API keys on the Firestore emulator: create, use, revoke, cache, lastUsedAt (README
"query")."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Request

from devstack.issuer import DEV_AUTHORIZED_PARTY
from services.common import admin_keys, admin_keys_cli
from services.common.admin_keys import AdminKeyVerifier, AdminPrincipal
from services.common.auth import (
    Principal,
    authenticate,
    require_admin_key,
    require_session,
)
from services.common.config import ClerkAuthSettings
from services.common.errors import Forbidden, NotFound, Unauthorized

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    """Monotonic and wall time that move only when a test says so."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.elapsed)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def instance(clock: Clock) -> AdminKeyVerifier:
    """One service instance's verifier, on the test's clock."""
    return AdminKeyVerifier(monotonic=clock.monotonic, now=clock.now)


def stored(db, key_id: str):
    return db.collection("admin_keys").document(key_id).get()


def bearer(token: str) -> Request:
    return Request.from_values(headers={"Authorization": f"Bearer {token}"})


def test_a_created_key_verifies_and_only_its_hash_is_stored(clean, db, clock):
    key, token = admin_keys.create("billing backend")

    principal = instance(clock).verify(token)

    assert principal == AdminPrincipal(key_id=key.id, name="billing backend")
    assert token.startswith(f"inlet_ak_{key.id}_")
    record = stored(db, key.id).to_dict()
    secret = token.rsplit("_", 1)[1]
    assert secret not in str(record) and token not in str(record)
    assert set(record) == {"id", "name", "secretHash", "createdAt", "lastUsedAt", "revokedAt"}


def test_wrong_secret_and_unknown_id_are_the_same_401(clean, clock):
    key, token = admin_keys.create("ci")
    last = token[-1]
    wrong_secret = token[:-1] + ("0" if last != "0" else "1")
    unknown_id = f"inlet_ak_{'0' * 16}_{token.rsplit('_', 1)[1]}"
    verifier = instance(clock)

    answers = []
    for candidate in (wrong_secret, unknown_id):
        with pytest.raises(Unauthorized) as refused:
            verifier.verify(candidate)
        answers.append((refused.value.status, refused.value.code, refused.value.message))

    assert answers[0] == answers[1] == (401, "unauthorized", "invalid admin API key")
    assert verifier.verify(token).key_id == key.id


@pytest.mark.parametrize(
    "token",
    [
        "inlet_ak_",
        "inlet_ak__",
        "inlet_ak_0123456789abcdef",
        "inlet_ak_0123456789abcdef_",
        "inlet_ak_0123456789ABCDEF_" + "a" * 64,
        "inlet_ak_0123456789abcdef_" + "a" * 63,
        "inlet_ak_0123456789abcdef_" + "a" * 65,
        "inlet_ak_0123456789abcdef_" + "a" * 64 + "\n",
        "inlet_ak_0123456789abcdef_" + "é" * 64,
        "inlet_ak_../../x_" + "a" * 64,
        "inlet_ak_" + "a" * 10_000,
        "inlet_ak_\x00",
    ],
)
def test_malformed_keys_are_401_never_500(clean, clock, token):
    with pytest.raises(Unauthorized):
        instance(clock).verify(token)
    if "\n" not in token:  # a header cannot carry a newline at all
        with pytest.raises(Unauthorized):
            authenticate(bearer(token), _clerk_settings(clean), instance(clock))


def test_a_revoked_key_stops_within_the_cache_ttl_on_every_instance(clean, clock):
    key, token = admin_keys.create("to revoke")
    warm, cold = instance(clock), instance(clock)
    warm.verify(token)  # this instance has the key cached

    revoked = admin_keys.revoke(key.id)

    assert revoked.revoked_at is not None
    with pytest.raises(Unauthorized):
        cold.verify(token)  # an instance that reads now refuses at once
    warm.verify(token)  # the cached copy is still trusted, for less than 30 s
    clock.advance(admin_keys.CACHE_TTL_S)
    assert admin_keys.CACHE_TTL_S < 30
    with pytest.raises(Unauthorized):
        warm.verify(token)


def test_revoking_an_unknown_key_is_not_found_and_revoking_twice_keeps_the_first_time(clean):
    key, _ = admin_keys.create("twice")
    first = admin_keys.revoke(key.id).revoked_at
    assert admin_keys.revoke(key.id).revoked_at == first
    with pytest.raises(NotFound):
        admin_keys.revoke("0" * 16)
    with pytest.raises(NotFound):
        admin_keys.revoke("../admin_keys")


def test_last_used_is_written_at_most_once_a_minute_per_key(clean, db, clock):
    key, token = admin_keys.create("busy")
    verifier = instance(clock)

    for _ in range(20):
        verifier.verify(token)
    first = stored(db, key.id)
    assert first.get("lastUsedAt") == T0

    clock.advance(30)
    for _ in range(5):
        verifier.verify(token)  # re-reads after the TTL; the stored value is 30 s old
    assert stored(db, key.id).update_time == first.update_time

    clock.advance(31)
    verifier.verify(token)
    assert stored(db, key.id).get("lastUsedAt") == T0 + dt.timedelta(seconds=61)


def test_two_instances_with_the_same_stale_view_write_last_used_once(clean, db, clock):
    key, token = admin_keys.create("shared")
    instance(clock).verify(token)  # lastUsedAt = T0
    # Two instances whose caches never expire here, so both keep the same read of the key.
    a = AdminKeyVerifier(monotonic=lambda: 0.0, now=clock.now)
    b = AdminKeyVerifier(monotonic=lambda: 0.0, now=clock.now)
    clock.advance(30)
    a.verify(token)
    b.verify(token)  # both read lastUsedAt = T0, 30 s old: neither writes
    clock.advance(31)

    a.verify(token)  # over a minute: the first write lands ...
    written = stored(db, key.id)
    b.verify(token)  # ... and the second is refused by its update-time guard

    after = stored(db, key.id)
    assert after.update_time == written.update_time
    assert after.get("lastUsedAt") == T0 + dt.timedelta(seconds=61)


def _clerk_settings(stack) -> ClerkAuthSettings:
    return ClerkAuthSettings(stack.issuer.url, stack.issuer.jwks_url, (DEV_AUTHORIZED_PARTY,))


def test_authenticate_tells_a_clerk_session_from_an_admin_key(clean, clock):
    settings, verifier = _clerk_settings(clean), instance(clock)
    key, token = admin_keys.create("backend")

    admin = authenticate(bearer(token), settings, verifier)
    user = authenticate(bearer(clean.issuer.session_token("user_ada")), settings, verifier)

    assert isinstance(admin, AdminPrincipal) and admin.kind == "admin_key"
    assert admin.key_id == key.id
    assert isinstance(user, Principal) and user.kind == "clerk_session"
    assert user.user_id == "user_ada"
    assert require_admin_key(admin) is admin and require_session(user) is user
    with pytest.raises(Forbidden):
        require_admin_key(user)
    with pytest.raises(Forbidden):
        require_session(admin)
    with pytest.raises(Unauthorized):
        authenticate(Request.from_values(), settings, verifier)
    with pytest.raises(Unauthorized):
        authenticate(bearer("not-a-jwt"), settings, verifier)


def test_the_console_script_prints_the_key_once_and_lists_without_secrets(clean, capsys, clock):
    assert admin_keys_cli.main(["create", "--name", "reporting"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("inlet_ak_") and "\n" not in token
    assert "shown once" in out.err and token not in out.err
    key_id = token.split("_")[2]

    assert admin_keys_cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and "reporting" in listed
    assert token.rsplit("_", 1)[1] not in listed

    assert admin_keys_cli.main(["revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().err
    with pytest.raises(Unauthorized):
        instance(clock).verify(token)
    assert admin_keys_cli.main(["revoke", "0" * 16]) == 1
    assert "no admin API key" in capsys.readouterr().err
