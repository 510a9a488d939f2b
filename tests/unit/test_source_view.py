"""The public shape of a source (README "Data sources API"): provider and signing included."""

from __future__ import annotations

import datetime as dt

from services.common.source_view import view

CREATED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
RECORD = {"id": "src_1", "label": "Orders", "retention": 10, "createdAt": CREATED}


def test_a_record_older_than_providers_reads_as_an_inlet_hmac_source():
    shown = view(RECORD, "https://ingest.example")
    assert (shown["provider"], shown["signing"]) == ("inlet", "hmac")
    assert "secret" not in shown


def test_provider_and_signing_are_shown_as_stored_and_keys_never_are():
    record = {**RECORD, "provider": "stripe", "signing": "hmac", "keys": [{"sealed": b"x"}]}
    shown = view(record, "https://ingest.example/")
    assert shown["provider"] == "stripe" and shown["signing"] == "hmac"
    assert "keys" not in shown
    assert shown["url"] == "https://ingest.example/webhooks/inbound/src_1"
