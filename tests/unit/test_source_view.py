"""The public shape of a source (docs/ingest.md "Data sources API"): provider and signing
included."""

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


def test_the_view_names_the_current_key_and_when_the_previous_one_stops_verifying():
    now = dt.datetime(2026, 1, 2, 4, 0, tzinfo=dt.UTC)
    ends = now + dt.timedelta(minutes=10)
    keys = [
        {"id": "key_00000000000b", "sealed": b"new", "expiresAt": None},
        {"id": "key_00000000000a", "sealed": b"old", "expiresAt": ends},
    ]
    shown = view({**RECORD, "keys": keys}, "https://ingest.example", now=now)
    assert shown["keyId"] == "key_00000000000b"
    assert shown["previousKeyExpiresAt"] == "2026-01-02T04:10:00Z"
    assert "sealed" not in str(shown)


def test_a_previous_key_past_its_grace_or_no_key_at_all_shows_null():
    now = dt.datetime(2026, 1, 2, 4, 0, tzinfo=dt.UTC)
    keys = [
        {"id": "key_00000000000b", "expiresAt": None},
        {"id": "key_00000000000a", "expiresAt": now - dt.timedelta(seconds=1)},
    ]
    shown = view({**RECORD, "keys": keys}, "https://ingest.example", now=now)
    assert (shown["keyId"], shown["previousKeyExpiresAt"]) == ("key_00000000000b", None)
    unset = view({**RECORD, "provider": "github", "keys": []}, "https://ingest.example", now=now)
    assert (unset["keyId"], unset["previousKeyExpiresAt"]) == (None, None)
