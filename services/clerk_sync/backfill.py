"""Backfill: copy the users, organizations and memberships Clerk already has into Firestore.

Webhooks never deliver objects that existed before the endpoint did (README "clerk-sync"), so this
console script (``inlet-backfill``, ``make backfill``) pages through Clerk's Backend API
(https://clerk.com/docs/reference/backend-api) and applies every object through the same version
rules as webhooks (``clerk_store.apply_change``): a newer stored version or a tombstone is never
overwritten, so it is safe to run while webhooks arrive, and safe to run twice.

Progress (collection and next offset) is stored in ``backfill/clerk`` after every page, so a
re-run after a crash continues where the last one stopped; ``--restart`` starts over, and a
finished run records ``status: completed``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from services.common import clerk_store as sync
from services.common import store
from services.common.clerk_api import (
    DEFAULT_API_URL,
    MAX_LIMIT,
    ClerkAPI,
    ClerkAPIError,
    ClerkAPISettings,
    RetryPolicy,
)
from services.common.clerk_events import (
    MEMBERSHIPS,
    ORGANIZATIONS,
    USERS,
    MalformedEvent,
    change_from_object,
)
from services.common.config import ConfigError, Env, FirestoreSettings

DEFAULT_WORKERS = 8  # objects of one page applied in parallel; each is its own transaction
STATE_COLLECTION = "backfill"
STATE_DOCUMENT = "clerk"


@dataclass(frozen=True)
class Listing:
    """One Backend API list endpoint and the collection its objects go to."""

    collection: str
    path: str
    count_path: str | None = None  # where the total is, when list pages do not carry it


# The order of the pass (README "clerk-sync"): users, then organizations, then memberships.
LISTINGS = (
    Listing(USERS, "/v1/users", count_path="/v1/users/count"),
    Listing(ORGANIZATIONS, "/v1/organizations"),
    Listing(MEMBERSHIPS, "/v1/organization_memberships"),
)


@dataclass(frozen=True)
class Settings:
    """What the backfill reads from the environment, once (README "Configuration")."""

    firestore: FirestoreSettings
    api_url: str
    secret_key: str = field(repr=False)  # never printed

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        return cls(
            firestore=FirestoreSettings.from_env(env),
            api_url=env.str("CLERK_API_URL", DEFAULT_API_URL).rstrip("/"),
            secret_key=env.str("CLERK_SECRET_KEY"),
        )


def client(settings: Settings, retry: RetryPolicy | None = None) -> ClerkAPI:
    """The Backend API client for a run: listings are ordered by creation time (oldest first),
    so objects created while a run goes on (or between a crash and its resume) land after the
    stored offset instead of shifting the pages not yet read."""
    return ClerkAPI(
        ClerkAPISettings(settings.api_url, settings.secret_key), retry, user_agent="inlet-backfill"
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="inlet-backfill",
        description="Copy Clerk's existing users, organizations and memberships into Firestore.",
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="also tombstone what Firestore holds that Clerk no longer has (each confirmed by "
        "a direct read answering 404); stores no progress, safe to run on a schedule",
    )
    parser.add_argument(
        "--limit", type=int, default=MAX_LIMIT, help=f"objects per page, 1-{MAX_LIMIT}"
    )
    parser.add_argument(
        "--restart", action="store_true", help="ignore stored progress and start over"
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="objects applied in parallel"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if not 1 <= args.limit <= MAX_LIMIT:
        parser.error(f"--limit must be between 1 and {MAX_LIMIT}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"inlet-backfill: {err}", file=sys.stderr)
        return 2
    try:
        if args.reconcile:
            from services.clerk_sync import reconcile

            report = reconcile.run(
                settings, limit=args.limit, workers=args.workers, progress=not args.no_progress
            )
        else:
            report = run(
                settings,
                limit=args.limit,
                restart=args.restart,
                workers=args.workers,
                progress=not args.no_progress,
            )
    except (BackfillError, ClerkAPIError) as err:
        again = "run it again" if args.reconcile else "run again to resume"
        print(f"inlet-backfill: stopped: {err}; {again}", file=sys.stderr)
        return 1
    except store.storage_errors() as err:
        print(
            f"inlet-backfill: Firestore unavailable ({type(err).__name__}); run again to resume",
            file=sys.stderr,
        )
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
