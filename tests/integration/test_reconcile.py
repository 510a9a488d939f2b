"""Reconciliation against a loopback Clerk API and the Firestore emulator (``--reconcile``)."""

from __future__ import annotations

import pytest

from services.clerk_sync import backfill, cli, reconcile
from services.clerk_sync.directory import Settings
from services.common.clerk_api import ClerkAPIError, RetryPolicy
from services.common.config import FirestoreSettings
from tests import clerk
from tests.support import FakeClerkAPI

API_KEY = "sk_test_reconcile_0123456789"
USERS, ORGS, MEMBERSHIPS = "/v1/users", "/v1/organizations", "/v1/organization_memberships"
FAST = RetryPolicy(attempts=3, backoff_s=0.01)
TOMBSTONE = {"id", "deleted", "deletedAt"}


@pytest.fixture
def clerk_api(clean):
    api = FakeClerkAPI.directory(API_KEY, users=8)
    yield api
    api.stop()


@pytest.fixture
def settings(clerk_api) -> Settings:
    return Settings(FirestoreSettings.from_env(), clerk_api.url, API_KEY)


@pytest.fixture
def synced(settings, clerk_api):
    """Firestore holding everything Clerk has (a completed backfill)."""
    backfill.run(settings, limit=3, retry=FAST, progress=False)
    clerk_api.clear()
    return settings


def run(settings: Settings, **kw) -> reconcile.Report:
    return reconcile.run(settings, limit=3, overlap=1, retry=FAST, progress=False, **kw)


def docs(db, collection: str) -> dict[str, dict]:
    return {d.id: d.to_dict() for d in db.collection(collection).stream()}


def counts(report: reconcile.Report) -> dict[str, dict[str, int]]:
    return {c: {k: n for k, n in tally.items() if n} for c, tally in report.counts.items()}


def test_objects_clerk_no_longer_has_are_tombstoned_after_a_404(synced, clerk_api, db):
    clerk_api.remove(USERS, "user_2")  # deleted in Clerk while the webhook was down
    clerk_api.remove(ORGS, "org_3")
    clerk_api.remove(MEMBERSHIPS, "orgmem_1")  # user_1 is still there
    clerk_api.remove(USERS, "user_4")  # and with the user, their membership orgmem_4
    clerk_api.remove(MEMBERSHIPS, "orgmem_4")
    clerk_api.remove(USERS, "user_5")  # and one update the webhook missed
    clerk_api.add(USERS, clerk.user("user_5", 999, username="renamed"))

    report = run(synced)

    users = docs(db, "users")
    assert set(users["user_2"]) == TOMBSTONE and set(users["user_4"]) == TOMBSTONE
    assert users["user_5"]["username"] == "renamed"
    assert not users["user_1"]["deleted"]
    assert set(docs(db, "organizations")["org_3"]) == TOMBSTONE
    assert sorted(docs(db, "memberships")) == ["orgmem_2", "orgmem_3"]
    # Each removal confirmed by a direct read answering 404 first.
    assert {"/v1/users/user_2", "/v1/users/user_4", "/v1/organizations/org_3"} <= set(
        clerk_api.paths(404)
    )
    assert "/v1/users/user_1/organization_memberships" in clerk_api.paths(200)
    assert counts(report) == {
        "users": {"seen": 6, "updated": 1, "unchanged": 5, "tombstoned": 2},
        "organizations": {"seen": 2, "unchanged": 2, "tombstoned": 1},
        "memberships": {"seen": 2, "unchanged": 2, "tombstoned": 2},
    }
    assert "users: 6 seen, 1 updated, 2 tombstoned, 5 unchanged" in report.summary()


def test_a_run_with_nothing_missing_changes_nothing(synced, clerk_api, db):
    before = docs(db, "users")

    report = run(synced)

    assert counts(report)["users"] == {"seen": 8, "unchanged": 8}
    assert docs(db, "users") == before
    assert clerk_api.paths(404) == []


def test_deletions_during_the_run_never_tombstone_an_object_that_still_exists(
    synced, clerk_api, db
):
    def delete_listed_users(path: str, offset: int) -> None:
        # After the first page (user_1..3) was read, three of them are deleted in Clerk: every
        # later offset shifts by three, more than the one-object overlap re-reads.
        if path == USERS and offset == 2:
            for n in (1, 2, 3):
                clerk_api.remove(USERS, f"user_{n}")

    clerk_api.before_page = delete_listed_users

    report = run(synced)

    users = docs(db, "users")
    # The shifted objects the listing skipped were read directly, found, and kept.
    assert all(not users[f"user_{n}"]["deleted"] for n in range(4, 9))
    # Deleted after being listed: left to the webhook (or the next run), never guessed.
    assert all(not users[f"user_{n}"]["deleted"] for n in (1, 2, 3))
    assert counts(report)["users"].get("tombstoned", 0) == 0
    skipped = [p for p in clerk_api.paths(200) if p.startswith("/v1/users/user_")]
    assert skipped  # the shift did skip objects; the direct reads caught them

    clerk_api.before_page = None
    again = run(synced)  # the next run finds the three deletions
    assert counts(again)["users"]["tombstoned"] == 3
    assert all(set(docs(db, "users")[f"user_{n}"]) == TOMBSTONE for n in (1, 2, 3))


def test_objects_created_during_the_run_are_never_tombstoned(synced, clean, clerk_api, db):
    newer = clerk.user("user_new", 500, email="new@example.com")

    def create_mid_run(path: str, offset: int) -> None:
        if (
            path == ORGS
            and offset == 0
            and not any(u["id"] == "user_new" for u in clerk_api.lists[USERS])
        ):
            # Created in Clerk after the user listing passed; its webhook lands at once.
            clerk_api.add(USERS, newer)
            answer = clerk.post(
                clean.url("clerk-sync"), clean.webhook_secret, clerk.event("user.created", newer)
            )
            assert answer.status_code == 200

    clerk_api.before_page = create_mid_run
    clerk_api.add(ORGS, clerk.organization("org_new", 300, name="New"))  # listed last

    report = run(synced)

    assert docs(db, "users")["user_new"]["email"] == "new@example.com"
    assert docs(db, "organizations")["org_new"]["name"] == "New"
    assert counts(report)["users"].get("tombstoned", 0) == 0
    assert counts(report)["organizations"] == {"seen": 4, "updated": 1, "unchanged": 3}


def test_a_clerk_failure_during_confirmation_stops_the_run_without_tombstoning(
    synced, clerk_api, db
):
    clerk_api.remove(USERS, "user_2")
    clerk_api.fail("/v1/users/user_2")

    with pytest.raises(ClerkAPIError):
        run(synced)

    assert not docs(db, "users")["user_2"]["deleted"]


def test_the_console_script_reconciles_and_prints_counts(synced, clerk_api, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_API_URL", clerk_api.url)
    monkeypatch.setenv("CLERK_SECRET_KEY", API_KEY)
    clerk_api.remove(ORGS, "org_1")

    assert cli.main(["--reconcile", "--no-progress", "--limit", "2"]) == 0

    out = capsys.readouterr()
    assert "organizations: 2 seen, 0 updated, 1 tombstoned, 2 unchanged" in out.out
    assert API_KEY not in out.out + out.err


def test_a_run_past_its_deadline_starts_no_new_page_and_says_where_it_stopped(
    synced, clerk_api, db
):
    clerk_api.remove(USERS, "user_8")  # on a page the run never reaches

    # The clock reads as the number of Clerk requests: the deadline passes with the first page.
    report = run(synced, deadline=1, clock=lambda: len(clerk_api.seen()))

    assert report.stopped_in == "users" and not report.complete
    assert clerk_api.offsets(USERS) == [0]  # no second page requested
    assert counts(report) == {"users": {"seen": 3, "unchanged": 3}}
    assert not docs(db, "users")["user_8"]["deleted"]
    assert report.as_json()["counts"]["memberships"] == {
        "seen": 0,
        "updated": 0,
        "tombstoned": 0,
        "unchanged": 0,
    }
    assert report.summary().endswith("stopped in users at the deadline; run it again")
