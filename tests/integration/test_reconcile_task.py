"""POST /tasks/reconcile on clerk-sync over HTTP: who may call it, a run through the route
against a loopback Clerk, Clerk down, no key, and a run cut short by its budget.

The module runs its own clerk-sync, configured like the session's but with ``CLERK_SECRET_KEY``
and ``CLERK_API_URL`` pointing at a loopback server speaking Clerk's Backend API; the
session's clerk-sync has no key, as ``make dev`` without one.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from devstack import issuer as dev_issuer
from devstack.processes import free_port, start_service
from services.clerk_sync import backfill
from services.common.clerk_api import RetryPolicy
from services.common.config import FirestoreSettings
from tests.integration.test_openapi_responses import conforms
from tests.integration.test_refresh_task import _unsigned
from tests.support import FakeClerkAPI

KEY = "sk_test_reconcile_task_0123456789"
USERS = "/v1/users"
TOMBSTONE = {"id", "deleted", "deletedAt"}


@pytest.fixture(scope="module")
def fake_clerk():
    api = FakeClerkAPI.directory(KEY, users=6)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def clerk_sync(stack, fake_clerk, tmp_path_factory):
    port = free_port()
    env = {**stack.service_env(), "CLERK_SECRET_KEY": KEY, "CLERK_API_URL": fake_clerk.url}
    process = start_service("clerk-sync", port, env, tmp_path_factory.mktemp("reconcile-task"))
    yield process, f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def synced(clean, fake_clerk):
    """Firestore holding everything the loopback Clerk has (a completed backfill)."""
    fresh = FakeClerkAPI.directory(KEY, users=6)  # the directory as it was, for this test
    fresh.stop()
    fake_clerk.lists = fresh.lists
    fake_clerk.recover()
    fake_clerk.before_page = None
    settings = backfill.Settings(FirestoreSettings.from_env(), fake_clerk.url, KEY)
    backfill.run(settings, retry=RetryPolicy(attempts=2, backoff_s=0.01), progress=False)
    fake_clerk.clear()
    return fake_clerk


def post(url: str, token: str | None, **headers: str) -> requests.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{url}/tasks/reconcile", headers=headers, timeout=120)


def users(db) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in db.collection("users").stream()}


def test_only_the_tasks_identity_may_reconcile(clean, clerk_sync, fake_clerk):
    _, url = clerk_sync
    claims = {
        "iss": clean.issuer.url,
        "aud": dev_issuer.TASKS_AUDIENCE,
        "email": dev_issuer.TASKS_SERVICE_ACCOUNT,
        "exp": 2**31,
    }
    fake_clerk.clear()
    for token in (
        None,
        _unsigned(claims),
        clean.issuer.task_token(audience="someone-else"),
        clean.issuer.task_token(email="intruder@example.iam.gserviceaccount.com"),
        clean.issuer.session_token("user_alice"),
    ):
        answer = conforms(post(url, token), "POST", "/tasks/reconcile")
        assert answer.status_code == 401
    assert fake_clerk.seen() == []  # refused before Clerk is asked anything


def test_a_run_through_the_route_tombstones_a_user_clerk_no_longer_has(
    clean, clerk_sync, synced, db
):
    process, url = clerk_sync
    synced.remove(USERS, "user_2")  # deleted in Clerk while the webhook was down

    answer = conforms(
        post(url, clean.issuer.task_token(), **{"X-Request-Id": "reconcile-run-1"}),
        "POST",
        "/tasks/reconcile",
    )

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["complete"] is True and report["stoppedIn"] is None
    assert report["counts"]["users"] == {"seen": 5, "updated": 0, "tombstoned": 1, "unchanged": 5}
    stored = users(db)
    assert set(stored["user_2"]) == TOMBSTONE
    assert not stored["user_1"]["deleted"]
    assert "/v1/users/user_2" in synced.paths(404)  # confirmed by a direct read first
    # One JSON log line with the counts, and never the key.
    log = process.log_path.read_text()
    line = next(
        json.loads(entry)
        for entry in log.splitlines()
        if entry.startswith("{") and "reconcile-run-1" in entry and "httpRequest" in entry
    )
    assert line["route"] == "/tasks/reconcile" and line["httpRequest"]["status"] == 200
    assert line["reconcile"]["counts"]["users"]["tombstoned"] == 1
    assert line["firestoreOps"] > 0
    assert KEY not in log


def test_clerk_down_answers_503_with_retry_after_and_tombstones_nothing(
    clean, clerk_sync, synced, db
):
    _, url = clerk_sync
    synced.remove(USERS, "user_2")
    synced.fail("/v1/users/user_2")  # the confirming read fails: nothing may be guessed

    answer = conforms(post(url, clean.issuer.task_token()), "POST", "/tasks/reconcile")

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert int(answer.headers["Retry-After"]) >= 1
    assert not users(db)["user_2"]["deleted"]

    synced.recover()  # Clerk is back: the next run confirms and tombstones
    again = post(url, clean.issuer.task_token())
    assert again.status_code == 200 and again.json()["counts"]["users"]["tombstoned"] == 1


def test_without_a_secret_key_the_route_answers_501_and_the_webhook_still_works(clean):
    # The session's clerk-sync runs as `make dev` does without CLERK_SECRET_KEY.
    answer = conforms(
        post(clean.url("clerk-sync"), clean.issuer.task_token()), "POST", "/tasks/reconcile"
    )
    assert answer.status_code == 501
    error = answer.json()["error"]
    assert error["code"] == "not_configured" and "CLERK_SECRET_KEY" in error["message"]
    assert "Retry-After" not in answer.headers
    health = requests.get(f"{clean.url('clerk-sync')}/health", timeout=10)
    assert health.status_code == 200


def test_a_run_past_its_budget_stops_and_says_so(clean, stack, synced, tmp_path, db):
    env = {
        **stack.service_env(),
        "CLERK_SECRET_KEY": KEY,
        "CLERK_API_URL": synced.url,
        "RECONCILE_BUDGET_S": "1",
    }
    port = free_port()
    process = start_service("clerk-sync", port, env, tmp_path)
    synced.remove(USERS, "user_2")
    synced.before_page = lambda path, offset: time.sleep(1.5)  # a slow Clerk
    try:
        answer = conforms(
            post(f"http://127.0.0.1:{port}", clean.issuer.task_token()),
            "POST",
            "/tasks/reconcile",
        )
    finally:
        synced.before_page = None
        process.stop()

    assert answer.status_code == 200, answer.text
    report = answer.json()
    # The users page under way finished; nothing after the budget started.
    assert report["complete"] is False and report["stoppedIn"] == "users"
    assert report["counts"]["users"]["seen"] == 5
    assert report["counts"]["organizations"]["seen"] == 0
    assert not users(db)["user_2"]["deleted"]  # left for the next run, never guessed
