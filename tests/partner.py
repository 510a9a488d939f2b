"""A partner's side of the inbound wire format, written from the README's wire format, not from the
service."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

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


def send(url: str, secret: str, event=None, *, key=None, body: bytes | None = None, **kw):
    body = (
        json.dumps(event if event is not None else {"amount": 1}).encode() if body is None else body
    )
    extra = kw.pop("headers", {})
    return requests.post(
        url, data=body, headers={**headers(secret, body, key), **extra}, timeout=30, **kw
    )


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

    def list_blocks(self, **params) -> requests.Response:
        url = f"{self.base}/v1/blocks"
        return requests.get(url, params=params, headers=self.auth, timeout=15)
