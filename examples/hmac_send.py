"""Sign one event with a source's secret (Inlet-Signature) and send it to that Inlet source."""

import hashlib
import hmac
import json
import os
import sys
import time
import uuid

import requests

url = os.environ["INLET_URL"]  # the source's receiver URL
secret = os.environ["INLET_SECRET"]  # whsec_…, shown once when the source was created

body = json.dumps({"type": "order.paid", "amount": 42.5}).encode()
t = int(time.time())
signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
answer = requests.post(
    url,
    data=body,  # sign exactly the bytes you send
    headers={
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),  # one per logical event: reuse it when you retry
        "Inlet-Signature": f"t={t},v1={signature}",
    },
    timeout=30,
)
print(answer.status_code, answer.text)
if not answer.ok:
    sys.exit(1)
