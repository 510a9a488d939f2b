"""A partner's side of the inbound wire format, written from the README's wire format, not from the
service."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests


def inlet_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(secret: str, body: bytes, key: str | None = None, timestamp: int | None = None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": key or str(uuid.uuid4()),
        "Inlet-Signature": f"t={timestamp},v1={inlet_signature(secret, timestamp, body)}",
    }


def stripe_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers exactly as Stripe signs: ``t=…,v1=<hex HMAC of "<t>.<body>">``, keyed with the
    whole ``whsec_…`` string. Stripe's own ``construct_event`` must accept every one we send."""
    import stripe

    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    header = f"t={timestamp},v1={digest.hexdigest()}"
    stripe.Webhook.construct_event(body, header, secret, tolerance=10**10)  # raises if not
    return {"Content-Type": "application/json", "Stripe-Signature": header}


def github_headers(secret: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    """Headers as GitHub sends them: ``X-Hub-Signature-256: sha256=<hex HMAC of the body>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def ed25519_keys() -> tuple[object, str]:
    """A partner's new ed25519 key pair: the private key, and ``whpk_<base64>`` for Inlet."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, "whpk_" + base64.b64encode(raw).decode()


def ed25519_headers(private, body: bytes, msg_id: str | None = None, timestamp=None):
    """Standard Webhooks ``v1a`` headers: ed25519 over ``<id>.<timestamp>.<body>``."""
    import base64

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = private.sign(f"{msg_id}.{timestamp}.".encode() + body)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1a," + base64.b64encode(signed).decode(),
    }


def send(url: str, secret: str, event=None, *, key=None, body: bytes | None = None, **kw):
    body = (
        json.dumps(event if event is not None else {"amount": 1}).encode() if body is None else body
    )
    extra = kw.pop("headers", {})
    return requests.post(
        url, data=body, headers={**headers(secret, body, key), **extra}, timeout=30, **kw
    )


def repeats(url: str, secret: str, body: bytes, key: str, copies: int) -> list[requests.Response]:
    """``copies`` identical signed requests (one idempotency key) sent at once."""
    signed = headers(secret, body, key=key)

    def post(_) -> requests.Response:
        return requests.post(url, data=body, headers=signed, timeout=30)

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(post, range(copies)))


def one_accepted(answers: list[requests.Response]) -> str:
    """The event id every answer names, once exactly one was accepted (202) and the others
    answered as its duplicates (200)."""
    assert sorted({a.status_code for a in answers}) in ([200, 202], [202])
    assert [a.status_code for a in answers].count(202) == 1
    (event_id,) = {a.json()["id"] for a in answers}
    return event_id


class SourceAPI:
    """The /v1/sources API as one tenant sees it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}

    def create(self, label: str = "Orders", **body) -> requests.Response:
        return requests.post(
            f"{self.base}/v1/sources", json={"label": label, **body}, headers=self.auth, timeout=15
        )

    def list(self, **params) -> requests.Response:
        return requests.get(f"{self.base}/v1/sources", params=params, headers=self.auth, timeout=15)

    def get(self, source_id: str) -> requests.Response:
        return requests.get(f"{self.base}/v1/sources/{source_id}", headers=self.auth, timeout=15)

    def rotate(self, source_id: str, **body) -> requests.Response:
        url = f"{self.base}/v1/sources/{source_id}/rotate-secret"
        return requests.post(url, json=body, headers=self.auth, timeout=15)

    def delete(self, source_id: str) -> requests.Response:
        return requests.delete(f"{self.base}/v1/sources/{source_id}", headers=self.auth, timeout=15)

    def put_schema(self, source_id: str, schema) -> requests.Response:
        url = f"{self.base}/v1/sources/{source_id}/schema"
        return requests.put(url, json={"schema": schema}, headers=self.auth, timeout=15)

    def get_schema(self, source_id: str) -> requests.Response:
        url = f"{self.base}/v1/sources/{source_id}/schema"
        return requests.get(url, headers=self.auth, timeout=15)

    def delete_schema(self, source_id: str) -> requests.Response:
        url = f"{self.base}/v1/sources/{source_id}/schema"
        return requests.delete(url, headers=self.auth, timeout=15)


def count_block(source_id: str, window: str = "1h") -> dict:
    """A block showing how many events the source received in ``window``."""
    count = {"type": "webhook.aggregate", "params": {"window": window, "op": "count"}}
    return {
        "binding": {
            "dataSourceId": source_id,
            "queryConfig": count,
            "projection": {"fields": {"value": {"source": "value"}}},
        },
        "widget": {"template": "metric"},
    }


class QueryAPI:
    """The query service's API (queries and blocks) as one tenant sees it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}

    def query(self, source_id: str, body=None, **kw) -> requests.Response:
        url = f"{self.base}/v1/sources/{source_id}/query"
        return requests.post(url, json=body, headers=self.auth, timeout=30, **kw)

    def put_block(self, block_id: str, body) -> requests.Response:
        url = f"{self.base}/v1/blocks/{block_id}"
        return requests.put(url, json=body, headers=self.auth, timeout=30)

    def get_block(self, block_id: str) -> requests.Response:
        return requests.get(f"{self.base}/v1/blocks/{block_id}", headers=self.auth, timeout=15)

    def delete_block(self, block_id: str) -> requests.Response:
        return requests.delete(f"{self.base}/v1/blocks/{block_id}", headers=self.auth, timeout=15)

    def list_blocks(self, **params) -> requests.Response:
        url = f"{self.base}/v1/blocks"
        return requests.get(url, params=params, headers=self.auth, timeout=15)
