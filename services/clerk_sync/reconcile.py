"""Reconciliation: tombstone what Firestore still holds that Clerk no longer has.

Webhooks can be missed for good (Svix gives up after days of failures; an endpoint can be
disabled), so ``inlet-backfill --reconcile`` compares Firestore with Clerk's Backend API:
1. it lists Clerk's users, organizations and memberships, oldest first, and applies each under
   the webhook's version rules (a newer stored copy or a tombstone is never overwritten);
2. every object Firestore still holds that the listing did not show is read from Clerk directly
   (``GET /v1/users/{id}``, ``GET /v1/organizations/{id}``, and for a membership its user's
   memberships, since Clerk has no GET for one membership): only a 404 (or a membership its user
   no longer has) tombstones it; an object that answers is applied instead.
Offset paging shifts when objects are deleted during a run, so consecutive pages overlap by
``overlap`` objects; whatever a larger shift still skips is caught by the direct read of step 2,
never tombstoned. Objects created during a run sort last (creation order) and are read then, or,
if a webhook stored them after the listing passed, found by their direct read. Nothing is stored
between runs: a run can stop at any point and simply be run again.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from services.clerk_sync.directory import LISTINGS, Listing, Settings, client
from services.common import clerk_store, store
from services.common.clerk_api import MAX_LIMIT, ClerkAPI, RetryPolicy
from services.common.clerk_events import (
    MEMBERSHIPS,
    ORGANIZATIONS,
    USERS,
    MalformedEvent,
    change_from_object,
)

DEFAULT_OVERLAP = 50  # objects re-read at the start of each page (capped below the page size)
OUTCOMES = ("seen", "updated", "tombstoned", "unchanged")


@dataclass
class Report:
    """Per collection: objects Clerk listed (seen) and what became of every object looked at."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for listing in LISTINGS:
            tally = self.counts.get(listing.collection, Counter())
            parts = [f"{tally[name]} {name}" for name in OUTCOMES]
            parts += [f"{n} {name}" for name, n in sorted(tally.items()) if name not in OUTCOMES]
            lines.append(f"{listing.collection}: {', '.join(parts)}")
        return "\n".join(lines)


def run(
    settings: Settings,
    *,
    limit: int = MAX_LIMIT,
    overlap: int = DEFAULT_OVERLAP,
    workers: int = 8,
    retry: RetryPolicy | None = None,
    progress: bool = True,
) -> Report:
    """One reconciliation pass over users, organizations and memberships, in that order."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    report = Report()
    api = client(settings, retry)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for listing in LISTINGS:
                tally = report.counts.setdefault(listing.collection, Counter())
                listed = _apply_listing(api, pool, listing, limit, overlap, tally, progress)
                _confirm_the_rest(api, listing.collection, listed, tally)
    finally:
        api.close()
    return report


def _apply_listing(
    api: ClerkAPI,
    pool: ThreadPoolExecutor,
    listing: Listing,
    limit: int,
    overlap: int,
    tally: Counter[str],
    progress: bool,
) -> set[str]:
    """Apply every object Clerk lists; the ids it listed."""
    listed: set[str] = set()
    with tqdm(desc=f"reconcile {listing.collection}", unit=" objects", disable=not progress,
              file=sys.stderr) as bar:  # fmt: skip
        for page in api.pages(listing.path, limit=limit, overlap=overlap):
            fresh = []
            for item in page.items:
                object_id = item.get("id") if isinstance(item, dict) else None
                if isinstance(object_id, str) and object_id in listed:
                    continue  # re-read by the overlap
                if isinstance(object_id, str):
                    listed.add(object_id)
                fresh.append(item)
            tally["seen"] += len(fresh)
            tally.update(pool.map(lambda item: _apply(listing.collection, item), fresh))
            bar.update(len(fresh))
    return listed


def _confirm_the_rest(api: ClerkAPI, collection: str, listed: set[str], tally: Counter) -> None:
    """Read each stored object the listing did not show; tombstone it only on Clerk's 404."""
    confirm: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
        USERS: lambda stored: api.get_user(stored["id"]),
        ORGANIZATIONS: lambda stored: api.get_organization(stored["id"]),
        MEMBERSHIPS: lambda stored: _membership(api, stored),
    }
    for stored in _stored(collection):
        if stored["id"] in listed:
            continue
        found = confirm[collection](stored)
        if found is None:
            change = change_from_object(collection, "delete", {"id": stored["id"]}, 0)
            outcome = clerk_store.apply_change(change)
            tally["tombstoned" if outcome.status == "processed" else "unchanged"] += 1
        else:
            tally[_apply(collection, found)] += 1


def _membership(api: ClerkAPI, stored: dict[str, Any]) -> dict[str, Any] | None:
    """A stored membership as Clerk has it now: among its user's memberships, else None."""
    user_id = stored.get("userId")
    mine = api.user_memberships(user_id) if isinstance(user_id, str) and user_id else None
    return next((m for m in mine or [] if m.get("id") == stored["id"]), None)


def _stored(collection: str) -> Iterator[dict[str, Any]]:
    """What Firestore holds that is not a tombstone: ids (and a membership's user)."""
    fields = ["userId"] if collection == MEMBERSHIPS else ["deleted"]
    query = store.client().collection(collection).select(fields)
    for snap in query.stream(retry=store.retry()):
        record = snap.to_dict() or {}
        if not record.get("deleted"):
            yield {"id": snap.id, **record}


def _apply(collection: str, item: Any) -> str:
    """Apply one Clerk object under the webhook's rules: updated, or unchanged."""
    try:
        if not isinstance(item, dict):
            raise MalformedEvent("object is not a JSON object")
        change = change_from_object(collection, "upsert", item, event_ts=0)
        outcome = clerk_store.apply_change(change)
    except MalformedEvent:
        return "malformed"
    except clerk_store.Unstorable:
        return "unstorable"
    return "updated" if outcome.status == "processed" else "unchanged"
