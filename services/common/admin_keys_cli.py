"""``inlet-admin-key``: create, list and revoke admin API keys (docs/query.md).

Talks to Firestore directly (``GOOGLE_CLOUD_PROJECT``, and ``FIRESTORE_EMULATOR_HOST`` locally),
so whoever runs it needs write access to the deployment's database. ``create`` prints the key on
stdout, alone, once; everything else goes to stderr, so ``KEY=$(inlet-admin-key create ...)``
captures only the key.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.common import admin_keys, store
from services.common.config import ConfigError, FirestoreSettings
from services.common.errors import NotFound


def _when(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="inlet-admin-key", description="Manage Inlet's deployment-wide admin API keys."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it, once")
    create.add_argument("--name", required=True, help="who or what holds the key")
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key: it stops working within 30 s")
    revoke.add_argument("id", help="the key's id, as `list` shows it")
    args = parser.parse_args(argv)
    try:
        FirestoreSettings.from_env()
    except ConfigError as err:
        print(f"inlet-admin-key: {err}", file=sys.stderr)
        return 2
    try:
        if args.command == "create":
            try:
                key, token = admin_keys.create(args.name)
            except ValueError as err:
                parser.error(str(err))
            print(
                f"created admin API key {key.id} ({key.name}); it is shown once, store it now:",
                file=sys.stderr,
            )
            print(token)
        elif args.command == "list":
            print(f"{'ID':<16}  {'CREATED':<20}  {'LAST USED':<20}  {'REVOKED':<20}  NAME")
            for key in admin_keys.list_keys():
                print(
                    f"{key.id:<16}  {_when(key.created_at):<20}  {_when(key.last_used_at):<20}  "
                    f"{_when(key.revoked_at):<20}  {key.name}"
                )
        else:
            key = admin_keys.revoke(args.id)
            print(
                f"revoked admin API key {key.id} ({key.name}) at {_when(key.revoked_at)}; "
                "every instance refuses it within 30 s",
                file=sys.stderr,
            )
    except NotFound as err:
        print(f"inlet-admin-key: {err.message}", file=sys.stderr)
        return 1
    except store.storage_errors() as err:
        print(f"inlet-admin-key: Firestore unavailable ({type(err).__name__})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
