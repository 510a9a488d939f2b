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
between runs: a run can stop at any point and simply be run again. That is how a run with a
``deadline`` (clerk-sync's ``POST /tasks/reconcile``, bounded to fit a Cloud Scheduler attempt)
ends when time runs out: it starts no new page or direct read, and its report says where it
stopped (``complete`` false).
"""

from __future__ import annotations

import contextvars
import sys
import time
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
    """Per collection: objects Clerk listed (seen) and what became of every object looked at;
    ``stopped_in`` names the collection a run with a deadline stopped in, None when it finished."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    stopped_in: str | None = None

    @property
    def complete(self) -> bool:
        return self.stopped_in is None

    def as_json(self) -> dict[str, Any]:
        """The answer of ``POST /tasks/reconcile``: every collection with every outcome."""
        counts = {}
        for listing in LISTINGS:
            tally = self.counts.get(listing.collection, Counter())
            counts[listing.collection] = {
                **{name: tally[name] for name in OUTCOMES},
                **{name: n for name, n in sorted(tally.items()) if name not in OUTCOMES},
            }
        return {"complete": self.complete, "stoppedIn": self.stopped_in, "counts": counts}

    def summary(self) -> str:
        lines = []
        for listing in LISTINGS:
            tally = self.counts.get(listing.collection, Counter())
            parts = [f"{tally[name]} {name}" for name in OUTCOMES]
            parts += [f"{n} {name}" for name, n in sorted(tally.items()) if name not in OUTCOMES]
            lines.append(f"{listing.collection}: {', '.join(parts)}")
        if self.stopped_in:
            lines.append(f"stopped in {self.stopped_in} at the deadline; run it again")
        return "\n".join(lines)


class _OutOfTime(Exception):
    """The run's deadline passed; raised between units of work, never inside one."""


@dataclass(frozen=True)
class _Clock:
    deadline: float | None
    now: Callable[[], float]

    def check(self) -> None:
        if self.deadline is not None and self.now() >= self.deadline:
            raise _OutOfTime


def run(
    settings: Settings,
    *,
    limit: int = MAX_LIMIT,
    overlap: int = DEFAULT_OVERLAP,
    workers: int = 8,
    retry: RetryPolicy | None = None,
    progress: bool = True,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """One reconciliation pass over users, organizations and memberships, in that order.

    With ``deadline`` (a ``clock`` time), no page is requested and no stored object is read
    from Clerk once it has passed: the report then names the collection it stopped in. The work
    already under way (one page, one direct read) finishes first, so the caller leaves room for
    it after the deadline."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    report = Report()
    timer = _Clock(deadline, clock)
    api = client(settings, retry)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for listing in LISTINGS:
                tally = report.counts.setdefault(listing.collection, Counter())
                try:
                    timer.check()
                    listed = _apply_listing(
                        api, pool, listing, limit, overlap, tally, progress, timer
                    )
                    _confirm_the_rest(api, listing.collection, listed, tally, timer)
                except _OutOfTime:
                    report.stopped_in = listing.collection
                    break
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
    timer: _Clock,
) -> set[str]:
    """Apply every object Clerk lists; the ids it listed. Checks the deadline between pages."""
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
            # Each worker runs in a copy of this thread's context, so a request's Firestore
            # budget and operation count (services/common/store.py) cover its writes too.
            contexts = [contextvars.copy_context() for _ in fresh]
            tally.update(
                pool.map(
                    lambda ctx, item: ctx.run(_apply, listing.collection, item), contexts, fresh
                )
            )
            bar.update(len(fresh))
            if not page.last:
                timer.check()  # before the next page is requested
    return listed


def _confirm_the_rest(
    api: ClerkAPI, collection: str, listed: set[str], tally: Counter, timer: _Clock
) -> None:
    """Read each stored object the listing did not show; tombstone it only on Clerk's 404."""
    confirm: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
        USERS: lambda stored: api.get_user(stored["id"]),
        ORGANIZATIONS: lambda stored: api.get_organization(stored["id"]),
        MEMBERSHIPS: lambda stored: _membership(api, stored),
    }
    for stored in _stored(collection):
        if stored["id"] in listed:
            continue
        timer.check()
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
