"""Sign one event with ed25519 (Standard Webhooks v1a) and send it to an Inlet source."""

import base64
import json
import os
import time
import uuid

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

url = os.environ["INLET_URL"]  # the source's receiver URL
signing_key = os.environ["INLET_SIGNING_KEY"]  # whsk_<base64 of the 32-byte private key>
private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing_key[5:]))

body = json.dumps({"type": "order.paid", "amount": 42.5}).encode()
msg_id = f"msg_{uuid.uuid4().hex}"  # also the idempotency key: reuse it when you retry
timestamp = str(int(time.time()))
signature = private_key.sign(f"{msg_id}.{timestamp}.".encode() + body)
answer = requests.post(
    url,
    data=body,
    headers={
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    },
    timeout=30,
)
print(answer.status_code, answer.text)
answer.raise_for_status()
