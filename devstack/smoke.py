"""`make smoke INGEST_URL=… QUERY_URL=… SOURCE_ID=… SECRET=… TOKEN=…`: after a deploy, send one
signed event to the deployed ingest and read it back through the query API (docs/deploy.md).

Each step prints what it sent and what was answered; the first failure exits 1. The values come
from the environment (make passes its command-line variables there), never from the command
line, so the secret and the token stay out of the process list.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import requests

from devstack.send_event import sign

READ_BACK_WITHIN_S = 30
NEEDED = ("INGEST_URL", "QUERY_URL", "SOURCE_ID", "SECRET", "TOKEN")


class SmokeFailed(Exception):
    """One step's failure, with what was answered."""


def send(ingest_url: str, source_id: str, secret: str, marker: str) -> str:
    """Post one signed event carrying ``marker``; the stored event's id."""
    body = json.dumps({"type": "inlet.smoke", "smoke": marker}).encode()
    timestamp = int(time.time())
    answer = requests.post(
        f"{ingest_url.rstrip('/')}/webhooks/inbound/{source_id}",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": f"smoke-{marker}",
            "Inlet-Signature": f"t={timestamp},v1={sign(secret, timestamp, body)}",
        },
        timeout=30,
    )
    print(f"ingest: {answer.status_code} {answer.text.strip()}")
    if answer.status_code != 202:
        raise SmokeFailed(f"ingest answered {answer.status_code}, not 202")
    return answer.json()["id"]


def read_back(query_url: str, source_id: str, token: str, marker: str) -> None:
    """The event through ``webhook.list`` (the newest 20), within ``READ_BACK_WITHIN_S``."""
    deadline = time.monotonic() + READ_BACK_WITHIN_S
    while True:
        answer = requests.post(
            f"{query_url.rstrip('/')}/v1/sources/{source_id}/query",
            json={"type": "webhook.list", "params": {"limit": 20}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if answer.status_code != 200:
            print(f"query: {answer.status_code} {answer.text.strip()}")
            raise SmokeFailed(f"query answered {answer.status_code}, not 200")
        found = [e for e in answer.json()["result"] if e["body"].get("smoke") == marker]
        if found:
            print(f"query: 200, webhook.list holds the event {found[0]['id']}")
            return
        if time.monotonic() > deadline:
            raise SmokeFailed(f"the event was not listed within {READ_BACK_WITHIN_S} s")
        time.sleep(1)


def main() -> int:
    values = {name: os.environ.get(name, "") for name in NEEDED}
    missing = [name for name, value in values.items() if not value]
    if missing:
        print(f"make smoke: set {', '.join(missing)} (docs/deploy.md)", file=sys.stderr)
        return 2
    marker = uuid.uuid4().hex
    try:
        send(values["INGEST_URL"], values["SOURCE_ID"], values["SECRET"], marker)
        read_back(values["QUERY_URL"], values["SOURCE_ID"], values["TOKEN"], marker)
    except (SmokeFailed, requests.RequestException) as err:
        print(f"make smoke: FAILED: {err}", file=sys.stderr)
        return 1
    print("make smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
