"""The references every figure is a ratio against: the smallest code that does each job.

Served by functions-framework like the services (``--source=bench/references.py``):
- ``minimal``: parses ``Inlet-Signature``, checks the HMAC for one fixed secret, and commits one
  atomic batch creating the idempotency document and the event document. Nothing else.
- ``bare``: reads one header and answers 401 with a JSON error.
- ``minimal_clerk``: verifies the Svix signature for one fixed secret (the ``svix`` library),
  then does what a Clerk user upsert needs in the fewest round trips: one read of the delivery
  record and the stored user, one commit guarded on it, writing the same two documents
  clerk-sync writes (the user's stored fields, the delivery record).

They stay minimal on purpose: tuning a reference to flatter a ratio would defeat the point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets

from flask import Request

SECRET = os.environ.get("BENCH_SECRET", "").encode()
CLERK_SECRET = os.environ.get("BENCH_WEBHOOK_SECRET", "")
SOURCE = "src_bench_minimal"
_client = None


def _db():
    global _client
    if _client is None:
        from google.cloud import firestore

        _client = firestore.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"])
    return _client


def _refuse(code: str):
    return {"error": {"code": code, "message": code.replace("_", " ")}}, 401


def minimal(request: Request):
    fields = dict(
        part.split("=", 1)
        for part in request.headers.get("Inlet-Signature", "").split(",")
        if "=" in part
    )
    body = request.get_data()
    message = fields.get("t", "").encode() + b"." + body
    expected = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        return _refuse("invalid_signature")
    key = request.headers.get("Idempotency-Key", "")
    db = _db()
    source = db.collection("sources").document(SOURCE)
    event_id = "evt_" + secrets.token_hex(12)
    batch = db.batch()
    batch.create(
        source.collection("idempotency").document(hashlib.sha256(key.encode()).hexdigest()),
        {"eventId": event_id},
    )
    batch.create(
        source.collection("events").document(event_id),
        {"receivedAt": dt.datetime.now(dt.UTC), "idempotencyKey": key, "body": body},
    )
    batch.commit()
    return {"id": event_id, "duplicate": False}, 202


def bare(request: Request):
    request.headers.get("Inlet-Signature")
    return _refuse("invalid_signature")


def minimal_clerk(request: Request):
    from google.api_core import exceptions as gexc
    from svix.webhooks import Webhook

    body = request.get_data()
    try:
        Webhook(CLERK_SECRET).verify(body, dict(request.headers))
    except Exception:  # any refusal is the same 401 here
        return _refuse("invalid_signature")
    event = json.loads(body)
    db = _db()
    user_ref = db.collection("bench_users").document(event["data"]["id"])
    delivery = db.collection("bench_deliveries").document(request.headers["svix-id"])
    # One read of the delivery and the stored user, one commit guarded on what was read: the
    # same two round trips the service makes, none of its rules.
    seen_delivery, stored = db.get_all([delivery, user_ref])
    if seen_delivery.exists:
        return {"status": "duplicate"}, 200
    user, record = clerk_documents(event, dt.datetime.now(dt.UTC))
    batch = db.batch()
    if stored.exists:
        batch.update(user_ref, user, option=db.write_option(last_update_time=stored.update_time))
    else:
        batch.create(user_ref, user)
    batch.create(delivery, record)
    try:
        batch.commit()
    except (gexc.AlreadyExists, gexc.FailedPrecondition):
        return {"error": {"code": "conflict", "message": "retry"}}, 409
    return {"status": "processed"}, 200


def clerk_documents(event: dict, now: dt.datetime) -> tuple[dict, dict]:
    """The two documents clerk-sync stores for a user event (the user's stored fields and the
    delivery record that expires), copied straight from the payload: none of its checks or
    version rules. Storing them is the job; a smaller placeholder would measure a lighter one."""
    data = event["data"]
    emails = [address["email_address"] for address in data["email_addresses"]]
    user = {
        "id": data["id"],
        "email": emails[0] if emails else None,
        "emails": emails,
        "firstName": data["first_name"],
        "lastName": data["last_name"],
        "displayName": f"{data['first_name']} {data['last_name']}",
        "username": data["username"],
        "imageUrl": data["image_url"],
        "publicMetadata": data["public_metadata"],
        "createdAt": data["created_at"],
        "updatedAt": data["updated_at"],
        "deleted": False,
        "version": {"updatedAt": data["updated_at"], "eventTimestamp": event["timestamp"]},
        "syncedAt": now,
    }
    delivery = {
        "type": event["type"],
        "status": "processed",
        "error": None,
        "attempts": 1,
        "receivedAt": now,
        "finishedAt": now,
        "expireAt": now + dt.timedelta(days=30),
    }
    return user, delivery
