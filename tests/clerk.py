"""Clerk webhook events shaped as Clerk documents them, signed the way Svix signs them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import uuid

import requests
from svix.webhooks import Webhook

_ms = itertools.count(1_700_000_000_000, 1000)


def user(user_id: str, updated_at: int, email: str = "ada@example.com", **overrides) -> dict:
    """A Clerk ``user`` object (Backend API and webhook ``data`` shape)."""
    email_id = f"idn_{user_id}"
    data = {
        "id": user_id,
        "object": "user",
        "username": "ada",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "image_url": "https://img.clerk.com/ada.png",
        "has_image": True,
        "primary_email_address_id": email_id,
        "primary_phone_number_id": None,
        "email_addresses": [
            {
                "id": "idn_other",
                "object": "email_address",
                "email_address": "other@example.com",
                "verification": {"status": "verified", "strategy": "email_code"},
                "linked_to": [],
            },
            {
                "id": email_id,
                "object": "email_address",
                "email_address": email,
                "verification": {"status": "verified", "strategy": "email_code"},
                "linked_to": [],
            },
        ],
        "phone_numbers": [],
        "external_accounts": [],
        "public_metadata": {"plan": "pro"},
        "private_metadata": {"stripeCustomer": "cus_secret"},
        "unsafe_metadata": {"theme": "dark"},
        "password_enabled": True,
        "two_factor_enabled": False,
        "last_sign_in_at": None,
        "created_at": 1_690_000_000_000,
        "updated_at": updated_at,
    }
    data.update(overrides)
    return data


def organization(org_id: str, updated_at: int, name: str = "Acme", **overrides) -> dict:
    data = {
        "id": org_id,
        "object": "organization",
        "name": name,
        "slug": name.lower(),
        "image_url": "https://img.clerk.com/acme.png",
        "has_image": True,
        "members_count": 1,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": True,
        "public_metadata": {"tier": "gold"},
        "private_metadata": {"secret": "x"},
        "created_by": "user_1",
        "created_at": 1_690_000_000_000,
        "updated_at": updated_at,
    }
    data.update(overrides)
    return data


def membership(mem_id: str, org_id: str, user_id: str, updated_at: int, role="org:member") -> dict:
    return {
        "id": mem_id,
        "object": "organization_membership",
        "role": role,
        "permissions": [],
        "public_metadata": {},
        "private_metadata": {},
        "organization": organization(org_id, updated_at),
        "public_user_data": {
            "user_id": user_id,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "identifier": "ada@example.com",
            "image_url": "https://img.clerk.com/ada.png",
            "has_image": True,
        },
        "created_at": 1_690_000_000_000,
        "updated_at": updated_at,
    }


def event(event_type: str, data: dict, timestamp: int | None = None) -> dict:
    """The webhook envelope: ``{data, object: "event", type, timestamp, instance_id}``."""
    return {
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": next(_ms) if timestamp is None else timestamp,
        "instance_id": "ins_test",
    }


def deleted(object_name: str, object_id: str) -> dict:
    """Deletion payloads carry only ``{id, object, deleted}``."""
    return {"id": object_id, "object": object_name, "deleted": True}


def signed_headers(secret: str, body: str, msg_id: str | None = None, when=None) -> dict:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or dt.datetime.now(dt.UTC)
    signature = Webhook(secret).sign(msg_id, when, body)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(when.timestamp())),
        "svix-signature": signature,
        "content-type": "application/json",
    }


def signed_headers_over_bytes(secret: str, body: bytes, when=None) -> dict:
    """Svix's signature over bytes its library cannot sign (not UTF-8): HMAC-SHA256 of
    ``<id>.<timestamp>.<body>`` keyed with the secret's base64 part, as Svix documents."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = str(int((when or dt.datetime.now(dt.UTC)).timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": msg_id,
        "svix-timestamp": stamp,
        "svix-signature": "v1," + base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


def post(base_url: str, secret: str, envelope: dict, msg_id: str | None = None, **kw):
    body = json.dumps(envelope)
    headers = signed_headers(secret, body, msg_id)
    return requests.post(f"{base_url}/webhooks/clerk", data=body, headers=headers, timeout=20, **kw)
