"""`make send-event`: sign and post one JSON event the way a partner would (docs/ingest.md)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import uuid

import requests

from devstack.dev_env import read_dev_env


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """What a partner's code does: HMAC-SHA256 keyed with the whole secret string."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def main() -> int:
    env = read_dev_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="receiver URL (default: the demo source's)")
    parser.add_argument("--secret", help="signing secret (default: the demo source's)")
    parser.add_argument("--body", default=None, help="JSON body (default: a sample order)")
    parser.add_argument("--key", default=None, help="Idempotency-Key (default: random)")
    args = parser.parse_args()
    url = args.url
    if url is None and env.get("INGEST_URL") and env.get("DEMO_SOURCE_ID"):
        url = f"{env['INGEST_URL']}/webhooks/inbound/{env['DEMO_SOURCE_ID']}"
    secret = args.secret or env.get("DEMO_SOURCE_SECRET")
    if not url or not secret:
        print("no --url/--secret and no .inlet/dev.env: start `make dev` first", file=sys.stderr)
        return 2
    body_text = args.body or json.dumps({"type": "order.paid", "amount": 42.5, "currency": "EUR"})
    body = body_text.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": args.key or str(uuid.uuid4()),
        "Inlet-Signature": f"t={timestamp},v1={sign(secret, timestamp, body)}",
    }
    answer = requests.post(url, data=body, headers=headers, timeout=15)
    print(answer.status_code, answer.text)
    return 0 if answer.ok else 1


if __name__ == "__main__":
    sys.exit(main())
