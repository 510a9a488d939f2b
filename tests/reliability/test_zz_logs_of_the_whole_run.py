"""The whole run's service logs hold no secret, token, signature, admin key or event body
(docs/operations.md). Named to run last among the tests that use the session's services, so it
reads every line they wrote: the suite sends all of these, valid and forged, many times over.
"""

from __future__ import annotations

import re

import pytest

# What a secret, token or signature looks like, whoever it belongs to.
SHAPES = {
    "signing secret": re.compile(r"whsec_[A-Za-z0-9+/=]{8,}"),
    "public key": re.compile(r"whpk_[A-Za-z0-9+/=]{8,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "admin key": re.compile(r"inlet_ak_[0-9a-f]{16}_[0-9a-f]{16,}"),
    "Inlet signature": re.compile(r"v1=[0-9a-f]{64}"),
    "Svix signature": re.compile(r"v1,[A-Za-z0-9+/]{40,}={0,2}"),
    "ed25519 signature": re.compile(r"v1a,[A-Za-z0-9+/]{40,}={0,2}"),
    "ed25519 private key": re.compile(r"whsk_[A-Za-z0-9+/=]{8,}"),
    "GitHub signature": re.compile(r"sha256=[0-9a-fA-F]{64}"),
    "Clerk secret key": re.compile(r"sk_(test|live)_[A-Za-z0-9]{8,}"),
    "private key": re.compile(r"PRIVATE KEY"),
}


def service_lines(stack) -> list[str]:
    lines = []
    for name in ("clerk-sync", "ingest", "query"):
        lines += stack.processes[name].log_path.read_text(errors="replace").splitlines()
    return lines


@pytest.mark.slow
def test_no_service_log_line_of_the_whole_run_holds_a_secret_token_or_signature(stack):
    lines = service_lines(stack)
    assert len(lines) > 1000, "the logs of the run are missing"
    exact = [stack.webhook_secret, stack.source_kek.split(":", 1)[1]]
    leaks = [
        (what, line[:160]) for line in lines for what, shape in SHAPES.items() if shape.search(line)
    ] + [("configured secret", line[:160]) for line in lines for value in exact if value in line]
    assert leaks == []
