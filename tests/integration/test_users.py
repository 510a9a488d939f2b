"""The users service layer (services/query/users.py) against the Firestore emulator, clerk-sync
and a loopback Clerk API: ``/v1/me`` with its Clerk fallback, and the admin reads (README
"query")."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from jsonschema import Draft202012Validator

from devstack.processes import free_port
from services.common.auth import Principal
from services.common.clerk_api import ClerkAPISettings
from services.common.config import Env
from services.common.errors import BadRequest, NotFound, UpstreamUnavailable
from services.query import users
from services.query.users import UsersSettings
from tests import clerk
from tests.integration.test_openapi_responses import REGISTRY, SPEC_URI
from tests.support import FakeClerkAPI

KEY = "sk_test_users_0123456789"
ADA = "user_ada"
ADA_PATH = f"/v1/users/{ADA}"


@pytest.fixture
def clerk_api(clean):
    api = FakeClerkAPI(KEY, users=[clerk.user(ADA, 200, username="from_clerk")]).start()
    yield api
    api.release()
    api.stop()


@pytest.fixture
def settings(clerk_api) -> UsersSettings:
    return UsersSettings(ClerkAPISettings(clerk_api.url, KEY))


def matches(schema: str, value) -> None:
    """``value``, rendered as the routes render it, is valid for openapi.yaml's ``schema``."""
    ref = {"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}
    rendered = json.loads(json.dumps(value, default=str))
    errors = [e.message for e in Draft202012Validator(ref, registry=REGISTRY).iter_errors(rendered)]
    assert errors == [], errors


def deliver(stack, event_type: str, data: dict) -> None:
    answer = clerk.post(
        stack.url("clerk-sync"), stack.webhook_secret, clerk.event(event_type, data)
    )
    assert answer.status_code == 200, answer.text


def stored(db, user_id: str = ADA) -> dict | None:
    snap = db.collection("users").document(user_id).get()
    return snap.to_dict() if snap.exists else None


def test_me_answers_the_stored_user_with_memberships_and_no_clerk_call(clean, settings, clerk_api):
    deliver(clean, "user.created", clerk.user(ADA, 300, username="from_webhook"))
    deliver(
        clean,
        "organizationMembership.created",
        clerk.membership("orgmem_2", "org_b", ADA, 300, role="org:admin"),
    )
    deliver(
        clean, "organizationMembership.created", clerk.membership("orgmem_1", "org_a", ADA, 300)
    )
    deliver(
        clean, "organizationMembership.created", clerk.membership("orgmem_3", "org_a", "u_x", 9)
    )

    answer = users.me(Principal(ADA), settings)

    assert answer["id"] == ADA and answer["username"] == "from_webhook"
    assert answer["email"] == "ada@example.com" and answer["deleted"] is False
    assert answer["memberships"] == [
        {"id": "orgmem_1", "orgId": "org_a", "role": "org:member"},
        {"id": "orgmem_2", "orgId": "org_b", "role": "org:admin"},
    ]
    assert not {"version", "syncedAt", "privateMetadata"} & set(answer)
    matches("UserWithMemberships", answer)
    assert "cus_secret" not in str(answer)
    assert clerk_api.seen() == []


def test_me_falls_back_to_clerk_and_stores_under_the_version_rules(clean, db, settings, clerk_api):
    answer = users.me(Principal(ADA), settings)

    assert answer["username"] == "from_clerk" and answer["memberships"] == []
    record = stored(db)
    assert record["version"] == {"updatedAt": 200, "eventTimestamp": 0}
    assert "cus_secret" not in str(record)
    assert clerk_api.paths() == [ADA_PATH]

    users.me(Principal(ADA), settings)  # stored now: Clerk is not asked again
    assert clerk_api.paths() == [ADA_PATH]

    # A later webhook of the same version still wins (envelope timestamp > 0).
    deliver(clean, "user.updated", clerk.user(ADA, 200, username="webhook_same_version"))
    assert users.me(Principal(ADA), settings)["username"] == "webhook_same_version"


def test_a_user_clerk_does_not_know_is_404_and_nothing_is_stored(clean, db, settings, clerk_api):
    with pytest.raises(NotFound):
        users.me(Principal("user_nobody"), settings)
    assert stored(db, "user_nobody") is None
    assert clerk_api.paths(404) == ["/v1/users/user_nobody"]


def test_clerk_throttling_is_a_503_with_its_retry_after(clean, db, settings, clerk_api):
    clerk_api.throttle_once(ADA_PATH, retry_after=7)

    with pytest.raises(UpstreamUnavailable) as refused:
        users.me(Principal(ADA), settings)

    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "7"
    assert clerk_api.paths() == [ADA_PATH]  # one request, no retry inside the call
    assert stored(db) is None
    assert users.me(Principal(ADA), settings)["username"] == "from_clerk"  # the retry works


def test_clerk_down_or_failing_is_a_503(clean, settings, clerk_api):
    clerk_api.fail(ADA_PATH)
    with pytest.raises(UpstreamUnavailable) as failed:
        users.me(Principal(ADA), settings)
    assert failed.value.headers["Retry-After"] == "5"

    down = UsersSettings(ClerkAPISettings(f"http://127.0.0.1:{free_port()}", KEY))
    with pytest.raises(UpstreamUnavailable):
        users.me(Principal(ADA), down)


def test_a_refused_secret_key_is_a_503_not_a_404(clean, clerk_api):
    wrong = UsersSettings(ClerkAPISettings(clerk_api.url, "sk_test_wrong_000000"))
    with pytest.raises(UpstreamUnavailable):
        users.me(Principal(ADA), wrong)


def test_without_a_secret_key_the_fallback_is_off(clean, clerk_api):
    off = UsersSettings.from_env(Env({"CLERK_API_URL": clerk_api.url}))
    assert off.clerk is None

    with pytest.raises(NotFound):
        users.me(Principal(ADA), off)
    assert clerk_api.seen() == []


@pytest.mark.parametrize("sub", ["a/b", "__name__", "..", "", "x" * 1501])
def test_a_subject_that_cannot_be_a_document_id_is_404_not_500(clean, settings, clerk_api, sub):
    with pytest.raises(NotFound):
        users.me(Principal(sub), settings)
    assert clerk_api.seen() == []


def test_a_tombstoned_user_is_404_and_clerk_is_not_asked(clean, db, settings, clerk_api):
    deliver(clean, "user.deleted", clerk.deleted("user", ADA))

    with pytest.raises(NotFound):
        users.me(Principal(ADA), settings)
    assert clerk_api.seen() == []
    assert set(stored(db)) == {"id", "deleted", "deletedAt"}


def _me_while_clerk_holds(settings, clerk_api, during) -> dict:
    """Run ``me`` while Clerk's answer is held, call ``during()``, then let Clerk answer."""
    clerk_api.hold()
    result: dict = {}

    def call() -> None:
        try:
            result["answer"] = users.me(Principal(ADA), settings)
        except Exception as err:
            result["error"] = err

    caller = threading.Thread(target=call)
    caller.start()
    _wait_for(lambda: clerk_api.arrived == [ADA_PATH])
    during()
    clerk_api.release()
    caller.join(30)
    return result


def test_a_webhook_landing_during_the_fallback_is_not_overwritten(clean, db, settings, clerk_api):
    newer = clerk.user(ADA, 900, username="webhook_newer")

    result = _me_while_clerk_holds(
        settings, clerk_api, lambda: deliver(clean, "user.updated", newer)
    )

    assert result["answer"]["username"] == "webhook_newer"  # the answer is what won
    assert stored(db)["version"]["updatedAt"] == 900
    assert clerk_api.paths() == [ADA_PATH]


def test_a_deletion_landing_during_the_fallback_is_never_resurrected(
    clean, db, settings, clerk_api
):
    result = _me_while_clerk_holds(
        settings, clerk_api, lambda: deliver(clean, "user.deleted", clerk.deleted("user", ADA))
    )

    assert isinstance(result.get("error"), NotFound)
    assert set(stored(db)) == {"id", "deleted", "deletedAt"}


def test_concurrent_first_calls_share_one_clerk_fetch(clean, settings, clerk_api):
    clerk_api.hold()
    answers: list = []
    callers = [
        threading.Thread(target=lambda: answers.append(users.me(Principal(ADA), settings)))
        for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    _wait_for(lambda: clerk_api.arrived == [ADA_PATH])
    time.sleep(0.5)  # let the other callers reach the shared fetch; not a timed assertion
    clerk_api.release()
    for caller in callers:
        caller.join(30)

    assert len(answers) == 8 and {a["username"] for a in answers} == {"from_clerk"}
    assert clerk_api.paths() == [ADA_PATH]


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


# --- admin reads ---------------------------------------------------------------------------------


def test_get_user_answers_users_and_tombstones_without_personal_data(clean, clerk_api):
    deliver(clean, "user.created", clerk.user("user_b", 5))
    deliver(
        clean, "organizationMembership.created", clerk.membership("orgmem_1", "org_a", "user_b", 5)
    )
    deliver(clean, "user.created", clerk.user("user_c", 5))
    deliver(clean, "user.deleted", clerk.deleted("user", "user_c"))

    found = users.get_user("user_b")
    assert found["email"] == "ada@example.com"
    assert found["memberships"] == [{"id": "orgmem_1", "orgId": "org_a", "role": "org:member"}]
    gone = users.get_user("user_c")
    assert set(gone) == {"id", "deleted", "deletedAt"} and gone["deleted"] is True
    assert dt.datetime.fromisoformat(gone["deletedAt"]).tzinfo is not None
    matches("UserWithMemberships", found)
    matches("UserTombstone", gone)
    for missing in ("user_none", "../users", "", "__x__"):
        with pytest.raises(NotFound):
            users.get_user(missing)
    assert clerk_api.seen() == []  # admin reads never fall back to Clerk


def test_list_users_pages_in_a_stable_order_with_an_opaque_cursor(clean):
    for n in (3, 1, 5, 2, 4):
        deliver(clean, "user.created", clerk.user(f"user_{n}", 5, email=f"u{n}@example.com"))
    deliver(clean, "user.deleted", clerk.deleted("user", "user_4"))

    first = users.list_users(limit=2)
    assert [u["id"] for u in first["items"]] == ["user_1", "user_2"]
    deliver(clean, "user.created", clerk.user("user_0", 5))  # before the cursor: not seen
    second = users.list_users(first["nextCursor"], "2")
    assert [u["id"] for u in second["items"]] == ["user_3", "user_4"]
    assert set(second["items"][1]) == {"id", "deleted", "deletedAt"}
    last = users.list_users(second["nextCursor"], 2)
    assert [u["id"] for u in last["items"]] == ["user_5"] and last["nextCursor"] is None
    assert last["items"][0]["email"] == "u5@example.com"

    matches("UserList", second)
    everything = users.list_users(limit=100)
    assert [u["id"] for u in everything["items"]] == [f"user_{n}" for n in range(6)]
    assert users.list_users()["nextCursor"] is None


@pytest.mark.parametrize("limit", [0, 101, -1, "x", "1.5", " ", "", "+5", " 5", "\u0665"])
def test_list_users_refuses_a_limit_outside_1_to_100(clean, limit):
    with pytest.raises(BadRequest):
        users.list_users(limit=limit)


@pytest.mark.parametrize("cursor", ["!!", "dXNlcl8x=", "a/b", "..", "\u00e9", "a" * 129, "__x__"])
def test_list_users_refuses_a_cursor_of_another_shape(clean, cursor):
    with pytest.raises(BadRequest):
        users.list_users(cursor, 10)
