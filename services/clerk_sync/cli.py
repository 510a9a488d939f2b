"""``inlet-backfill``: the console script for the backfill and, with ``--reconcile``, the
reconciliation (docs/clerk-sync.md). Parses arguments, runs one of the two, prints a report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.clerk_sync import backfill, reconcile
from services.clerk_sync.directory import DEFAULT_WORKERS, Settings
from services.common import store
from services.common.clerk_api import MAX_LIMIT, ClerkAPIError
from services.common.config import ConfigError


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
            report = reconcile.run(
                settings, limit=args.limit, workers=args.workers, progress=not args.no_progress
            )
        else:
            report = backfill.run(
                settings,
                limit=args.limit,
                restart=args.restart,
                workers=args.workers,
                progress=not args.no_progress,
            )
    except (backfill.BackfillError, ClerkAPIError) as err:
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
