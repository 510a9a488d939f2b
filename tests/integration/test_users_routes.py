"""The users routes of the query service over HTTP (README, "Users"): 401 vs 403 on every
route, the Clerk fallback, and every answer as openapi.yaml documents it.

The module runs its own query service process, configured like the session's but with
``CLERK_SECRET_KEY`` and ``CLERK_API_URL`` pointing at a loopback server speaking Clerk's
Backend API, so the fallback is exercised for real.
"""

from __future__ import annotations

import pytest
import requests

from devstack.processes import free_port, start_service
from services.common import admin_keys
from tests import clerk
from tests.integration.test_openapi_responses import conforms
from tests.support import FakeClerkAPI

KEY = "sk_test_routes_0123456789"


@pytest.fixture(scope="module")
def fake_clerk():
    api = FakeClerkAPI(KEY, users=[clerk.user("user_new", 7)]).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def base_url(stack, fake_clerk, tmp_path_factory):
    port = free_port()
    env = {**stack.service_env(), "CLERK_SECRET_KEY": KEY, "CLERK_API_URL": fake_clerk.url}
    process = start_service("query", port, env, tmp_path_factory.mktemp("users-routes"))
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def world(clean, base_url):
    """A stored user, a tombstone, a live admin key and a revoked one."""
    for event in (
        clerk.event("user.created", clerk.user("user_ada", 5)),
        clerk.event("user.created", clerk.user("user_gone", 5)),
        clerk.event("user.deleted", clerk.deleted("user", "user_gone")),
    ):
        assert clerk.post(clean.url("clerk-sync"), clean.webhook_secret, event).ok
    _, live = admin_keys.create("routes")
    revoked_key, revoked = admin_keys.create("old")
    admin_keys.revoke(revoked_key.id)
    return {
        "admin": live,
        "revoked": revoked,
        "session": clean.issuer.session_token("user_ada"),
        "gone_session": clean.issuer.session_token("user_gone"),
        "new_session": clean.issuer.session_token("user_new"),
    }


def get(base_url: str, path: str, token: str | None, template: str, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(f"{base_url}{path}", headers=headers, timeout=20, **kw)
    return conforms(answer, "GET", template)


ROUTES = [
    ("/v1/me", "/v1/me"),
    ("/v1/users", "/v1/users"),
    ("/v1/users/user_ada", "/v1/users/{userId}"),
]


@pytest.mark.parametrize(("path", "template"), ROUTES)
def test_every_route_refuses_no_token_and_bad_or_revoked_keys_with_401(
    world, base_url, path, template
):
    bad_secret = world["admin"][:-1] + ("0" if world["admin"][-1] != "0" else "1")
    for token in (None, "", world["revoked"], bad_secret, "inlet_ak_x", "inlet_ak_" + "f" * 500):
        assert get(base_url, path, token, template).status_code == 401, token


def test_admin_routes_refuse_a_clerk_session_with_403_and_me_refuses_an_admin_key(world, base_url):
    assert get(base_url, "/v1/users", world["session"], "/v1/users").status_code == 403
    answer = get(base_url, "/v1/users/user_ada", world["session"], "/v1/users/{userId}")
    assert answer.status_code == 403
    assert get(base_url, "/v1/me", world["admin"], "/v1/me").status_code == 403


def test_each_route_answers_its_caller(world, base_url):
    me = get(base_url, "/v1/me", world["session"], "/v1/me")
    assert me.status_code == 200 and me.json()["id"] == "user_ada"
    fetched = get(base_url, "/v1/me", world["new_session"], "/v1/me")  # the Clerk fallback
    assert fetched.status_code == 200 and fetched.json()["id"] == "user_new"
    assert get(base_url, "/v1/me", world["gone_session"], "/v1/me").status_code == 404

    listed = get(base_url, "/v1/users?limit=2", world["admin"], "/v1/users")
    assert [u["id"] for u in listed.json()["items"]] == ["user_ada", "user_gone"]
    assert listed.json()["items"][1] == {
        "id": "user_gone",
        "deleted": True,
        "deletedAt": listed.json()["items"][1]["deletedAt"],
    }
    page = get(
        base_url,
        "/v1/users",
        world["admin"],
        "/v1/users",
        params={"cursor": listed.json()["nextCursor"], "limit": 2},
    )
    assert [u["id"] for u in page.json()["items"]] == ["user_new"]
    assert get(base_url, "/v1/users?limit=0", world["admin"], "/v1/users").status_code == 400
    assert get(base_url, "/v1/users?cursor=z!z", world["admin"], "/v1/users").status_code == 400

    one = get(base_url, "/v1/users/user_ada", world["admin"], "/v1/users/{userId}")
    assert one.status_code == 200 and one.json()["memberships"] == []
    missing = get(base_url, "/v1/users/user_nobody", world["admin"], "/v1/users/{userId}")
    assert missing.status_code == 404


def test_me_passes_on_clerks_retry_after_as_a_documented_503(world, base_url, fake_clerk):
    fake_clerk.throttle_once("/v1/users/user_new", retry_after=9)

    answer = get(base_url, "/v1/me", world["new_session"], "/v1/me")

    assert answer.status_code == 503 and answer.headers["Retry-After"] == "9"
    assert answer.json()["error"]["code"] == "upstream_unavailable"


def test_me_404_says_why_the_user_is_missing(world, base_url, stack):
    """Clerk answered 404 (this module's query), or the fallback is off (the session's query,
    started without ``CLERK_SECRET_KEY``), or the user was deleted."""
    nobody = stack.issuer.session_token("user_nobody")
    clerk_404 = get(base_url, "/v1/me", nobody, "/v1/me").json()["error"]["message"]
    assert "no Clerk webhook" in clerk_404 and "answered 404" in clerk_404

    fallback_off = get(stack.url("query"), "/v1/me", nobody, "/v1/me").json()["error"]["message"]
    assert "no Clerk webhook" in fallback_off and "CLERK_SECRET_KEY is unset" in fallback_off

    gone = get(base_url, "/v1/me", world["gone_session"], "/v1/me").json()["error"]["message"]
    assert "deleted in Clerk" in gone
