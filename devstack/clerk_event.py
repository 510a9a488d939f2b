"""`make clerk-event TYPE=user.created SUB=user_x [ORG=org_y] [ROLE=member] [DATA='{…}']`: one
Clerk webhook event, shaped as Clerk documents it and signed with the `svix` library as Svix
signs it, posted to the running stack's clerk-sync (docs/local-stack.md).

`make dev` stores its demo user this way, so `GET /v1/me` answers with the demo token on a fresh
stack. Each event's `updated_at` is now, so a later event always wins under the version rules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from typing import Any

import requests
from svix.webhooks import Webhook

from devstack.dev_env import read_dev_env

USER_EVENTS = ("user.created", "user.updated", "user.deleted")
ORGANIZATION_EVENTS = ("organization.created", "organization.updated", "organization.deleted")
MEMBERSHIP_EVENTS = (
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
)
TYPES = USER_EVENTS + ORGANIZATION_EVENTS + MEMBERSHIP_EVENTS


def user(user_id: str, now_ms: int) -> dict[str, Any]:
    """A Clerk ``user`` object; its email and names derive from the id (``user_demo`` is
    ``demo@example.com``)."""
    name = user_id.removeprefix("user_") or user_id
    email_id = f"idn_{name}"
    return {
        "id": user_id,
        "object": "user",
        "username": name,
        "first_name": name.capitalize(),
        "last_name": "Example",
        "image_url": None,
        "primary_email_address_id": email_id,
        "email_addresses": [
            {
                "id": email_id,
                "object": "email_address",
                "email_address": f"{name}@example.com",
                "verification": {"status": "verified", "strategy": "email_code"},
            }
        ],
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "created_at": now_ms,
        "updated_at": now_ms,
    }


def organization(org_id: str, created_by: str, now_ms: int) -> dict[str, Any]:
    name = org_id.removeprefix("org_") or org_id
    return {
        "id": org_id,
        "object": "organization",
        "name": name.capitalize(),
        "slug": name.lower(),
        "image_url": None,
        "public_metadata": {},
        "private_metadata": {},
        "created_by": created_by,
        "created_at": now_ms,
        "updated_at": now_ms,
    }


def membership(org_id: str, user_id: str, role: str, now_ms: int) -> dict[str, Any]:
    """One id per (organization, user), so ``.created``, ``.updated`` and ``.deleted`` of the
    same pair name the same membership."""
    return {
        "id": f"orgmem_{org_id}_{user_id}",
        "object": "organization_membership",
        "role": f"org:{role}",
        "public_metadata": {},
        "private_metadata": {},
        "organization": organization(org_id, user_id, now_ms),
        "public_user_data": {"user_id": user_id, "identifier": f"{user_id}@example.com"},
        "created_at": now_ms,
        "updated_at": now_ms,
    }


def event_data(event_type: str, sub: str, org: str | None, role: str, now_ms: int) -> dict:
    """The ``data`` of one event; a deletion carries only ``{id, object, deleted}``, as Clerk's."""
    if event_type in USER_EVENTS:
        data = user(sub, now_ms)
    elif org is None:
        raise ValueError(f"{event_type} needs ORG (an organization id such as org_acme)")
    elif event_type in ORGANIZATION_EVENTS:
        data = organization(org, sub, now_ms)
    else:
        data = membership(org, sub, role, now_ms)
    if event_type.endswith(".deleted"):
        return {"id": data["id"], "object": data["object"], "deleted": True}
    return data


def envelope(event_type: str, data: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": now_ms,
        "instance_id": "ins_dev",
    }


def post(clerk_sync_url: str, secret: str, event: dict[str, Any]) -> requests.Response:
    """Sign the exact bytes sent with the endpoint's ``whsec_…`` secret, as Svix does."""
    body = json.dumps(event)
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return requests.post(
        f"{clerk_sync_url.rstrip('/')}/webhooks/clerk", data=body, headers=headers, timeout=30
    )


def send(
    clerk_sync_url: str,
    secret: str,
    event_type: str,
    sub: str,
    org: str | None = None,
    role: str = "admin",
    overrides: dict[str, Any] | None = None,
) -> requests.Response:
    now_ms = time.time_ns() // 1_000_000
    data = {**event_data(event_type, sub, org, role, now_ms), **(overrides or {})}
    return post(clerk_sync_url, secret, envelope(event_type, data, now_ms))


def main() -> int:
    env = read_dev_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--type", required=True, choices=TYPES, metavar="TYPE", help="|".join(TYPES)
    )
    parser.add_argument("--sub", default="", help="user id (default: DEMO_USER_ID)")
    parser.add_argument("--org", default="", help="organization id, for organization events")
    parser.add_argument("--role", choices=("admin", "member"), default="admin")
    parser.add_argument("--data", default="", help="JSON merged over the event's data object")
    args = parser.parse_args()
    if not env.get("CLERK_SYNC_URL") or not env.get("CLERK_WEBHOOK_SECRET"):
        print(
            "make clerk-event: no .inlet/dev.env: start the stack first (make dev)", file=sys.stderr
        )
        return 2
    sub = args.sub or env.get("DEMO_USER_ID") or "user_demo"
    try:
        overrides = json.loads(args.data) if args.data else {}
        if not isinstance(overrides, dict):
            raise ValueError("DATA must be a JSON object")
        answer = send(
            env["CLERK_SYNC_URL"],
            env["CLERK_WEBHOOK_SECRET"],
            args.type,
            sub,
            args.org or None,
            args.role,
            overrides,
        )
    except ValueError as err:
        print(f"make clerk-event: {err}", file=sys.stderr)
        return 2
    print(answer.status_code, answer.text.strip())
    return 0 if answer.ok else 1


if __name__ == "__main__":
    sys.exit(main())
