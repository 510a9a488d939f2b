"""Backfill: copy the users, organizations and memberships Clerk already has into Firestore.

Webhooks never deliver objects that existed before the endpoint did (docs/clerk-sync.md), so this
console script (``inlet-backfill``, ``make backfill``) pages through Clerk's Backend API
(https://clerk.com/docs/reference/backend-api) and applies every object through the same version
rules as webhooks (``clerk_store.apply_change``): a newer stored version or a tombstone is never
overwritten, so it is safe to run while webhooks arrive, and safe to run twice.

Progress (collection and next offset) is stored in ``backfill/clerk`` after every page, so a
re-run after a crash continues where the last one stopped; ``--restart`` starts over, and a
finished run records ``status: completed``. The console script's entry is ``cli.py``.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from services.clerk_sync.directory import DEFAULT_WORKERS, LISTINGS, Listing, Settings, client
from services.common import clerk_store as sync
from services.common import store
from services.common.clerk_api import MAX_LIMIT, ClerkAPI, RetryPolicy
from services.common.clerk_events import MalformedEvent, change_from_object

STATE_COLLECTION = "backfill"
STATE_DOCUMENT = "clerk"


class BackfillError(RuntimeError):
    """The backfill stopped; progress up to the last complete page is stored."""


@dataclass
class Report:
    """What a run did: per collection, how many objects ended in each outcome."""

    counts: dict[str, Counter[str]]
    resumed_from: tuple[str, int] | None = None
    already_completed: bool = False

    def summary(self) -> str:
        if self.already_completed:
            return "backfill already completed; run with --restart to run it again"
        lines = []
        if self.resumed_from:
            lines.append("resumed at {} offset {}".format(*self.resumed_from))
        for listing in LISTINGS:
            tally = self.counts.get(listing.collection, Counter())
            parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally.items()))
            lines.append(f"{listing.collection}: {parts or 'none'}")
        return "\n".join(lines)


def run(
    settings: Settings,
    *,
    limit: int = MAX_LIMIT,
    restart: bool = False,
    workers: int = DEFAULT_WORKERS,
    retry: RetryPolicy | None = None,
    progress: bool = True,
) -> Report:
    """Run the backfill, or resume the one stored; raises BackfillError with progress kept."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    state = _State.load(restart)
    if state.completed:
        return Report(state.counts, already_completed=True)
    resumed_from = (state.collection, state.offset) if state.resumed else None
    start = next(i for i, listing in enumerate(LISTINGS) if listing.collection == state.collection)
    api = client(settings, retry)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for listing in LISTINGS[start:]:
                offset = state.offset if listing.collection == state.collection else 0
                _copy(api, pool, state, listing, offset, limit, progress)
    finally:
        api.close()
    state.complete()
    return Report(state.counts, resumed_from=resumed_from)


def _copy(
    api: ClerkAPI,
    pool: ThreadPoolExecutor,
    state: _State,
    listing: Listing,
    offset: int,
    limit: int,
    progress: bool,
) -> None:
    """Copy one listing from ``offset`` on, storing the position after every page."""
    total = api.count(listing.count_path) if listing.count_path else None
    with tqdm(
        total=total,
        initial=offset,
        desc=listing.collection,
        unit=" objects",
        disable=not progress,
        file=sys.stderr,
    ) as bar:
        for page in api.pages(listing.path, limit=limit, offset=offset):
            if page.total is not None and bar.total != page.total:
                bar.total = page.total
                bar.refresh()
            tally = state.counts.setdefault(listing.collection, Counter())
            tally.update(pool.map(lambda item: _apply(listing.collection, item), page.items))
            if page.last:
                state.advance(_next(listing), 0)
            else:
                state.advance(listing.collection, page.end)
            bar.update(len(page.items))


def _next(listing: Listing) -> str | None:
    index = LISTINGS.index(listing) + 1
    return LISTINGS[index].collection if index < len(LISTINGS) else None


def _apply(collection: str, item: Any) -> str:
    """Apply one Backend API object as webhooks would; the outcome's name for the report."""
    try:
        if not isinstance(item, dict):
            raise MalformedEvent("object is not a JSON object")
        # Envelope timestamp 0: between equal ``updated_at`` a webhook's copy wins.
        change = change_from_object(collection, "upsert", item, event_ts=0)
    except MalformedEvent as err:
        object_id = item.get("id") if isinstance(item, dict) else None
        tqdm.write(f"skipped a malformed {collection} object {object_id!r}: {err}", file=sys.stderr)
        return "malformed"
    try:
        outcome = sync.apply_change(change)
    except sync.Unstorable as err:
        tqdm.write(f"skipped a {collection} object Firestore refuses: {err}", file=sys.stderr)
        return "unstorable"
    return "applied" if outcome.status == "processed" else outcome.reason


class _State:
    """The stored position of the backfill: ``backfill/clerk``."""

    def __init__(self, ref, record: dict[str, Any], resumed: bool) -> None:
        self._ref = ref
        self.collection: str = record["collection"]
        self.offset: int = record["offset"]
        self.completed = record["status"] == "completed"
        self.counts = {name: Counter(n) for name, n in (record.get("counts") or {}).items()}
        self.resumed = resumed

    @classmethod
    def load(cls, restart: bool) -> _State:
        ref = store.client().collection(STATE_COLLECTION).document(STATE_DOCUMENT)
        snap = None if restart else ref.get(retry=store.retry())
        if snap is not None and snap.exists:
            record = snap.to_dict()
            if record.get("status") == "completed":
                return cls(ref, record, resumed=False)
            known = {listing.collection for listing in LISTINGS}
            if (
                record.get("status") != "running"
                or record.get("collection") not in known
                or not isinstance(record.get("offset"), int)
            ):
                raise BackfillError(f"{ref.path} is not a backfill position; run with --restart")
            return cls(ref, record, resumed=True)
        at = sync.now()
        record = {
            "status": "running",
            "collection": LISTINGS[0].collection,
            "offset": 0,
            "counts": {},
            "startedAt": at,
            "updatedAt": at,
            "completedAt": None,
        }
        ref.set(record, retry=store.retry())
        return cls(ref, record, resumed=False)

    def advance(self, collection: str | None, offset: int) -> None:
        """Record that everything before (collection, offset) is applied."""
        if collection is None:
            return  # the last listing is done; complete() records it
        self.collection, self.offset = collection, offset
        self._save({"collection": collection, "offset": offset})

    def complete(self) -> None:
        self.completed = True
        self._save({"status": "completed", "collection": None, "completedAt": sync.now()})

    def _save(self, fields: dict[str, Any]) -> None:
        counts = {name: dict(tally) for name, tally in self.counts.items()}
        self._ref.set(
            {**fields, "counts": counts, "updatedAt": sync.now()}, merge=True, retry=store.retry()
        )
