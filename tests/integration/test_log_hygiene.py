"""No secret, signature, token or event body in any service log line (docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import json

import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests import clerk, partner
from tests.support import refreshes, wait_for


def service_log_lines(stack) -> list[str]:
    lines = []
    for name in ("clerk-sync", "ingest", "query"):
        lines += stack.processes[name].log_path.read_text(errors="replace").splitlines()
    return lines


def test_secrets_signatures_tokens_and_bodies_never_reach_the_logs(clean, tenant, ingest_url):
    canary = "BODY-CANARY-7f3a"
    token = tenant.auth["Authorization"].removeprefix("Bearer ")
    source = tenant.create("Secrets").json()
    rotated = tenant.rotate(source["id"], graceSeconds=60).json()
    forbidden = {source["secret"], rotated["secret"], token, clean.webhook_secret, canary}

    for secret in (source["secret"], rotated["secret"], "whsec_wrong"):
        body = json.dumps({"note": canary}).encode()
        hdrs = partner.headers(secret, body)
        forbidden.add(hdrs["Inlet-Signature"].split("v1=")[1])
        requests.post(source["url"], data=body, headers=hdrs, timeout=10)
    bad_json = partner.send(source["url"], rotated["secret"], body=f'{{"x": {canary}'.encode())
    assert bad_json.status_code == 400
    now = dt.datetime.now(dt.UTC)
    standard = StandardWebhook(rotated["secret"]).sign("msg_logs", now, json.dumps({"n": canary}))
    forbidden.add(standard.split(",", 1)[1])
    requests.post(
        source["url"],
        data=json.dumps({"n": canary}),
        headers={
            "Content-Type": "application/json",
            "webhook-id": "msg_logs",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": standard,
        },
        timeout=10,
    )
    forbidden.add(clean.source_kek.split(":", 1)[1])  # the key-encryption key itself

    envelope = clerk.event("user.created", clerk.user("user_logs", 10, username=canary))
    body = json.dumps(envelope)
    hdrs = clerk.signed_headers(clean.webhook_secret, body)
    forbidden.add(hdrs["svix-signature"].split(",", 1)[1])
    assert requests.post(
        f"{clean.url('clerk-sync')}/webhooks/clerk", data=body, headers=hdrs, timeout=10
    ).ok
    malformed = '{"type": "user.created", "data": ' + canary
    hdrs = clerk.signed_headers(clean.webhook_secret, malformed)
    requests.post(
        f"{clean.url('clerk-sync')}/webhooks/clerk", data=malformed, headers=hdrs, timeout=10
    )
    requests.get(
        f"{ingest_url}/v1/sources",
        headers={"Authorization": "Bearer " + token[:-3] + "abc"},
        timeout=10,
    )

    # The refresh runs in the query service once its one-second window has closed.
    assert wait_for(lambda: refreshes(clean, source["id"])), "no refresh reached the query service"
    lines = service_log_lines(clean)
    assert len(lines) > 10
    leaks = [(value[:12], line[:120]) for line in lines for value in forbidden if value in line]
    assert leaks == []
    # And every request left exactly one structured line.
    request_lines = [
        json.loads(line) for line in lines if line.startswith("{") and '"httpRequest"' in line
    ]
    assert all(
        {"severity", "requestId", "firestoreOps", "httpRequest"} <= set(e) for e in request_lines
    )
