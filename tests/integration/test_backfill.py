"""The Clerk backfill against a loopback Backend API and the Firestore emulator (README
"clerk-sync")."""

from __future__ import annotations

import json
import time

import pytest

from services.clerk_sync import backfill, cli
from services.clerk_sync.directory import Settings
from services.common.clerk_api import ClerkAPIError, RetryPolicy
from services.common.config import FirestoreSettings
from tests import clerk
from tests.support import FakeClerkAPI

API_KEY = "sk_test_backfill_0123456789"
USERS, ORGS, MEMBERSHIPS = "/v1/users", "/v1/organizations", "/v1/organization_memberships"
FAST = RetryPolicy(attempts=3, backoff_s=0.01)


@pytest.fixture
def clerk_api(clean):
    api = FakeClerkAPI.directory(API_KEY, users=7)
    yield api
    api.stop()


@pytest.fixture
def settings(clerk_api) -> Settings:
    return Settings(FirestoreSettings.from_env(), clerk_api.url, API_KEY)


def run(settings: Settings, **kw) -> backfill.Report:
    return backfill.run(settings, limit=2, retry=FAST, progress=False, **kw)


def docs(db, collection: str) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in db.collection(collection).stream()}


def state(db) -> dict:
    return db.collection("backfill").document("clerk").get().to_dict()


def test_full_backfill_pages_through_users_organizations_and_memberships(settings, clerk_api, db):
    report = run(settings)

    users = docs(db, "users")
    assert sorted(users) == [f"user_{n}" for n in range(1, 8)]
    assert users["user_3"]["email"] == "u3@example.com"
    assert users["user_3"]["displayName"] == "Ada Lovelace"
    assert users["user_3"]["version"] == {"updatedAt": 103, "eventTimestamp": 0}
    assert "cus_secret" not in json.dumps(users, default=str)
    orgs = docs(db, "organizations")
    assert {o: (r["name"], r["updatedAt"]) for o, r in orgs.items()} == {
        "org_1": ("Org1", 101),
        "org_2": ("Org2", 102),
        "org_3": ("Org3", 103),
    }
    memberships = docs(db, "memberships")
    assert {m: (r["orgId"], r["userId"]) for m, r in memberships.items()} == {
        "orgmem_1": ("org_2", "user_1"),
        "orgmem_2": ("org_3", "user_2"),
        "orgmem_3": ("org_1", "user_3"),
        "orgmem_4": ("org_2", "user_4"),
    }
    assert db.collection("deliveries").limit(1).get() == []  # backfill is not a delivery

    # Every page once, in order; a short page or Clerk's total_count ends a listing.
    assert clerk_api.offsets(USERS) == [0, 2, 4, 6]
    assert clerk_api.offsets(ORGS) == [0, 2]
    assert clerk_api.offsets(MEMBERSHIPS) == [0, 2]
    assert [r.path for r in clerk_api.seen()][:2] == ["/v1/users/count", USERS]
    assert {r.limit for r in clerk_api.seen() if r.path != "/v1/users/count"} == {2}
    assert {r.status for r in clerk_api.seen()} == {200}

    assert {c: dict(n) for c, n in report.counts.items()} == {
        "users": {"applied": 7},
        "organizations": {"applied": 3},
        "memberships": {"applied": 4},
    }
    stored = state(db)
    assert stored["status"] == "completed" and stored["completedAt"] is not None
    assert stored["counts"]["users"] == {"applied": 7}


def test_rate_limited_page_waits_retry_after_and_loses_nothing(settings, clerk_api, db):
    clerk_api.throttle_once(USERS, offset=2, retry_after=1)
    clerk_api.throttle_once(ORGS, offset=0, retry_after=1)

    started = time.monotonic()
    run(settings)

    assert time.monotonic() - started >= 2.0  # two Retry-After: 1 waits
    assert clerk_api.offsets(USERS, status=429) == [2]
    assert clerk_api.offsets(USERS) == [0, 2, 4, 6]
    assert clerk_api.offsets(ORGS, status=429) == [0]
    assert clerk_api.offsets(ORGS) == [0, 2]
    assert len(docs(db, "users")) == 7 and len(docs(db, "organizations")) == 3
    assert len(docs(db, "memberships")) == 4


def test_interrupted_backfill_resumes_from_the_stored_offset(settings, clerk_api, db):
    clerk_api.fail(ORGS, offset=2)  # Clerk keeps failing half-way through organizations

    with pytest.raises(ClerkAPIError) as stopped:
        run(settings)
    assert stopped.value.status == 500
    assert clerk_api.offsets(ORGS, status=500) == [2, 2, 2]  # bounded retries, then stop
    assert len(docs(db, "users")) == 7
    assert sorted(docs(db, "organizations")) == ["org_1", "org_2"]
    assert docs(db, "memberships") == {}
    position = state(db)
    assert (position["status"], position["collection"], position["offset"]) == (
        "running",
        "organizations",
        2,
    )

    clerk_api.recover()
    clerk_api.clear()
    report = run(settings)

    assert report.resumed_from == ("organizations", 2)
    assert clerk_api.offsets(USERS) == []  # earlier pages are not requested again
    assert clerk_api.offsets(ORGS) == [2]
    assert clerk_api.offsets(MEMBERSHIPS) == [0, 2]
    assert len(docs(db, "organizations")) == 3 and len(docs(db, "memberships")) == 4
    assert state(db)["status"] == "completed"
    # Counts carry over from the interrupted run.
    assert {c: dict(n) for c, n in report.counts.items()} == {
        "users": {"applied": 7},
        "organizations": {"applied": 3},
        "memberships": {"applied": 4},
    }


def test_completed_backfill_runs_again_only_with_restart(settings, clerk_api, db):
    run(settings)
    clerk_api.clear()

    again = run(settings)
    assert again.already_completed and clerk_api.seen() == []

    report = run(settings, restart=True)
    assert clerk_api.offsets(USERS) == [0, 2, 4, 6]
    assert clerk_api.offsets(MEMBERSHIPS) == [0, 2]
    # Same objects, same versions: acknowledged as stale, nothing rewritten.
    assert {c: dict(n) for c, n in report.counts.items()} == {
        "users": {"stale": 7},
        "organizations": {"stale": 3},
        "memberships": {"stale": 4},
    }
    assert state(db)["status"] == "completed"


def test_backfill_never_overwrites_a_newer_version_or_a_tombstone(settings, clean, db):
    base, secret = clean.url("clerk-sync"), clean.webhook_secret
    deliveries = [
        clerk.event("user.updated", clerk.user("user_1", 500, username="newer")),
        clerk.event("user.deleted", clerk.deleted("user", "user_2")),
        clerk.event("user.updated", clerk.user("user_3", 1, username="older")),
        clerk.event("organization.deleted", clerk.deleted("organization", "org_1")),
        clerk.event(
            "organizationMembership.deleted", clerk.membership("orgmem_1", "org_2", "user_1", 1)
        ),
    ]
    for envelope in deliveries:
        answer = clerk.post(base, secret, envelope)
        assert answer.status_code == 200 and answer.json()["status"] == "processed", answer.text

    report = run(settings)

    users = docs(db, "users")
    assert users["user_1"]["username"] == "newer" and users["user_1"]["updatedAt"] == 500
    assert set(users["user_2"]) == {"id", "deleted", "deletedAt"}
    assert users["user_3"]["username"] == "ada" and users["user_3"]["updatedAt"] == 103
    assert set(docs(db, "organizations")["org_1"]) == {"id", "deleted", "deletedAt"}
    assert "orgmem_1" not in docs(db, "memberships")
    assert dict(report.counts["users"]) == {"applied": 5, "stale": 1, "tombstoned": 1}
    assert dict(report.counts["organizations"]) == {"applied": 2, "tombstoned": 1}
    assert dict(report.counts["memberships"]) == {"applied": 3, "tombstoned": 1}


def test_a_webhook_copy_wins_over_the_backfilled_copy_of_the_same_version(settings, clean, db):
    envelope = clerk.event("user.updated", clerk.user("user_4", 104, username="webhook"))
    assert clerk.post(clean.url("clerk-sync"), clean.webhook_secret, envelope).ok

    run(settings)

    assert docs(db, "users")["user_4"]["username"] == "webhook"


def test_malformed_object_is_skipped_and_reported(settings, clerk_api, db):
    clerk_api.lists[MEMBERSHIPS].append({"id": "orgmem_bad", "object": "organization_membership"})

    report = run(settings)

    assert dict(report.counts["memberships"]) == {"applied": 4, "malformed": 1}
    assert "orgmem_bad" not in docs(db, "memberships")
    assert state(db)["status"] == "completed"


def test_main_reads_the_environment_and_never_prints_the_key(clerk_api, db, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_API_URL", clerk_api.url)
    monkeypatch.setenv("CLERK_SECRET_KEY", API_KEY)

    assert cli.main(["--limit", "3"]) == 0

    out = capsys.readouterr()
    assert "users: 7 applied" in out.out
    assert "users: 100%" in out.err and "7/7" in out.err  # the progress bar, total from /count
    assert API_KEY not in out.out + out.err
    assert clerk_api.offsets(USERS) == [0, 3, 6]
    assert len(docs(db, "memberships")) == 4


def test_main_with_a_refused_key_stops_without_printing_it(clerk_api, db, monkeypatch, capsys):
    wrong = "sk_test_wrong_key_987654321"
    monkeypatch.setenv("CLERK_API_URL", clerk_api.url)
    monkeypatch.setenv("CLERK_SECRET_KEY", wrong)

    assert cli.main(["--no-progress"]) == 1

    out = capsys.readouterr()
    assert "HTTP 401" in out.err and "CLERK_SECRET_KEY" in out.err
    assert wrong not in out.out + out.err
    assert [r.status for r in clerk_api.seen()] == [401]  # a 401 is not retried
    assert docs(db, "users") == {}


def test_main_names_a_missing_variable(stack, monkeypatch, capsys):
    monkeypatch.delenv("CLERK_SECRET_KEY", raising=False)

    assert cli.main([]) == 2

    assert "CLERK_SECRET_KEY is required" in capsys.readouterr().err


def test_settings_repr_hides_the_key():
    settings = Settings(FirestoreSettings("p", "(default)", None), "https://api.clerk.com", "sk_x")
    assert "sk_x" not in repr(settings)
