"""The README's partner snippets (examples/, included verbatim) sign events that a live ingest
accepts, and fail loudly (the status printed, a non-zero exit) when it refuses them: HMAC
(``Inlet-Signature``) and ed25519, in Python and in Node with ``node:crypto`` when Node is there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def partner_keys() -> tuple[str, str]:
    made = run([sys.executable, str(EXAMPLES / "ed25519_keys.py")])
    assert made.returncode == 0, made.stderr
    private, public = made.stdout.split()
    assert private.startswith("whsk_") and public.startswith("whpk_")
    return private, public


@pytest.fixture
def ed25519_source(tenant, partner_keys) -> dict:
    created = tenant.create("Partner", signing="ed25519", publicKey=partner_keys[1])
    assert created.status_code == 201, created.text
    return created.json()


def stored_bodies(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("events")
    return [json.loads(d.get("body")) for d in ref.stream()]


def test_the_python_snippet_signs_events_the_source_accepts(ed25519_source, partner_keys, db):
    sent = run(
        [sys.executable, str(EXAMPLES / "ed25519_send.py")],
        INLET_URL=ed25519_source["url"],
        INLET_SIGNING_KEY=partner_keys[0],
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("202 ")
    assert stored_bodies(db, ed25519_source["id"]) == [{"type": "order.paid", "amount": 42.5}]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_snippet_signs_events_the_source_accepts(ed25519_source, partner_keys, db):
    sent = run(
        ["node", str(EXAMPLES / "ed25519_send.mjs")],
        INLET_URL=ed25519_source["url"],
        INLET_SIGNING_KEY=partner_keys[0],
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("202 ")
    assert stored_bodies(db, ed25519_source["id"]) == [{"type": "order.paid", "amount": 42.5}]


def test_a_snippet_signing_with_another_key_is_refused(tenant, ed25519_source):
    other = run([sys.executable, str(EXAMPLES / "ed25519_keys.py")]).stdout.split()[0]
    sent = run(
        [sys.executable, str(EXAMPLES / "ed25519_send.py")],
        INLET_URL=ed25519_source["url"],
        INLET_SIGNING_KEY=other,
    )
    assert sent.returncode != 0 and sent.stdout.startswith("401 ")


HMAC_SENDERS = [
    pytest.param([sys.executable, str(EXAMPLES / "hmac_send.py")], id="python"),
    pytest.param(
        ["node", str(EXAMPLES / "hmac_send.mjs")],
        id="node",
        marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    ),
]


@pytest.mark.parametrize("sender", HMAC_SENDERS)
def test_the_hmac_snippet_sends_an_event_the_source_accepts(sender, source, db):
    sent = run(sender, INLET_URL=source["url"], INLET_SECRET=source["secret"])
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("202 ") and '"duplicate":false' in sent.stdout
    assert stored_bodies(db, source["id"]) == [{"type": "order.paid", "amount": 42.5}]


@pytest.mark.parametrize("sender", HMAC_SENDERS)
def test_the_hmac_snippet_fails_loudly_on_a_wrong_secret(sender, source, db):
    wrong = "whsec_" + "A" * 43 + "="
    sent = run(sender, INLET_URL=source["url"], INLET_SECRET=wrong)
    assert sent.returncode != 0
    assert sent.stdout.startswith("401 ") and "invalid_signature" in sent.stdout
    assert stored_bodies(db, source["id"]) == []


@pytest.mark.parametrize("sender", HMAC_SENDERS)
def test_the_hmac_snippet_without_its_variables_fails_loudly(sender):
    sent = run(sender, INLET_URL="", INLET_SECRET="")
    assert sent.returncode != 0 and sent.stdout == ""
