"""The shared Backend API client against a loopback Clerk (services/common/clerk_api.py)."""

from __future__ import annotations

import pytest

from devstack.processes import free_port
from services.common.clerk_api import (
    NO_RETRY,
    ClerkAPI,
    ClerkAPIError,
    ClerkAPISettings,
    ClerkUnavailable,
)
from services.common.config import Env
from tests import clerk
from tests.support import FakeClerkAPI

KEY = "sk_test_clerk_api_0123456789"


@pytest.fixture
def fake():
    api = FakeClerkAPI(
        KEY,
        users=[clerk.user("user_1", 100)],
        organizations=[clerk.organization("org_1", 100)],
        memberships=[clerk.membership("orgmem_1", "org_1", "user_1", 100)],
    ).start()
    yield api
    api.stop()


def client(url: str, key: str = KEY) -> ClerkAPI:
    return ClerkAPI(ClerkAPISettings(url, key), NO_RETRY)


def test_get_user_answers_the_user_or_none_for_clerks_404(fake):
    api = client(fake.url)
    assert api.get_user("user_1")["id"] == "user_1"
    assert api.get_user("user_gone") is None
    assert api.get_organization("org_1")["name"] == "Acme"
    assert api.get_organization("org_gone") is None
    assert [m["id"] for m in api.user_memberships("user_1")] == ["orgmem_1"]
    assert api.user_memberships("user_gone") is None
    assert fake.paths(404) == [
        "/v1/users/user_gone",
        "/v1/organizations/org_gone",
        "/v1/users/user_gone/organization_memberships",
    ]


def test_a_429_is_one_request_and_carries_retry_after(fake):
    fake.throttle_once("/v1/users/user_1", retry_after=7)

    with pytest.raises(ClerkUnavailable) as refused:
        client(fake.url).get_user("user_1")

    assert (refused.value.status, refused.value.retry_after) == (429, 7.0)
    assert fake.paths() == ["/v1/users/user_1"]  # no in-request retry


def test_a_5xx_or_no_answer_is_unavailable(fake):
    fake.fail("/v1/users/user_1")
    with pytest.raises(ClerkUnavailable) as failed:
        client(fake.url).get_user("user_1")
    assert failed.value.status == 500

    with pytest.raises(ClerkUnavailable) as down:
        client(f"http://127.0.0.1:{free_port()}").get_user("user_1")
    assert down.value.status is None


def test_a_refused_key_is_an_error_that_never_names_the_key(fake):
    with pytest.raises(ClerkAPIError) as refused:
        client(fake.url, "sk_test_wrong_987654321").get_user("user_1")
    assert not isinstance(refused.value, ClerkUnavailable)
    assert refused.value.status == 401 and "sk_test_wrong" not in str(refused.value)


def test_ids_are_one_path_segment(fake):
    assert client(fake.url).get_user("../users") is None
    assert fake.paths() == ["/v1/users/..%2Fusers"]


def test_settings_are_off_without_a_secret_key_and_hide_it():
    assert ClerkAPISettings.from_env(Env({})) is None
    settings = ClerkAPISettings.from_env(Env({"CLERK_SECRET_KEY": "sk_x"}))
    assert settings.api_url == "https://api.clerk.com" and "sk_x" not in repr(settings)
