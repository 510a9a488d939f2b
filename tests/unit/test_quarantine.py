"""The quarantine's pure parts: when an instance asks for the bound to be enforced, and what a
replay request may say (docs/ingest.md "Quarantine and replay")."""

from __future__ import annotations

import pytest

from services.common.config import TaskSettings
from services.common.errors import BadRequest
from services.ingest import quarantine, replay
from services.ingest.quarantine import Quarantine

TASKS = TaskSettings(
    queue="projects/p/locations/l/queues/q",
    refresh_url="https://query.invalid/tasks/refresh",
    service_account="tasks@p.iam.gserviceaccount.com",
    audience="inlet-tasks",
    emulator_host=None,
    oidc_issuer="https://accounts.google.com",
    oidc_certs_url="https://www.googleapis.com/oauth2/v3/certs",
    dev_signing_key_file=None,
)


def test_a_trim_is_asked_for_on_the_first_event_and_then_every_trim_every_events():
    kept = Quarantine(TASKS, trim_every=3)
    asked = [n for n in range(1, 11) if kept._trim_due("src_a")]
    assert asked == [1, 4, 7, 10]
    assert kept._trim_due("src_b")  # each source counts on its own


def test_the_tally_is_bounded_and_forgets_the_longest_idle_source_first():
    kept = Quarantine(TASKS, trim_every=3, max_sources=2)
    for source_id in ("src_a", "src_b", "src_a", "src_c"):
        kept._trim_due(source_id)
    assert list(kept._kept) == ["src_a", "src_c"]


def test_an_entry_id_is_the_same_for_the_same_key_and_has_the_listed_shape():
    assert quarantine.entry_id("order-1") == quarantine.entry_id("order-1")
    assert quarantine.entry_id("order-1") != quarantine.entry_id("order-2")
    assert quarantine.ID.fullmatch(quarantine.entry_id("x" * 255))


def test_a_cursor_round_trips_and_a_foreign_one_is_400():
    at_id = quarantine.parse_cursor(quarantine.encode_cursor(*_at(), quarantine.entry_id("k")))
    assert at_id == (*_at(), quarantine.entry_id("k"))
    for cursor in ("nope", "1.q_x", "1.q_" + "0" * 32 + "\n"):
        with pytest.raises(BadRequest):
            quarantine.parse_cursor(cursor)


def _at():
    import datetime as dt

    return (dt.datetime(2026, 12, 5, 5, 0, 0, 123456, tzinfo=dt.UTC),)


@pytest.mark.parametrize(
    "body",
    [
        {"ids": "all"},
        {"ids": ["q_nope"]},
        {"ids": [quarantine.entry_id("a")] * 2},
        {"ids": [quarantine.entry_id(str(n)) for n in range(replay.MAX_EVENTS + 1)]},
        {"ids": [quarantine.entry_id("a")], "cursor": "1.q_" + "0" * 32},
        {"cursor": 5},
        {"everything": True},
    ],
)
def test_a_replay_request_that_does_not_fit_is_400(body):
    with pytest.raises(BadRequest):
        replay.parse(body)


def test_a_replay_request_names_ids_or_continues_after_a_cursor():
    ids = [quarantine.entry_id("a"), quarantine.entry_id("b")]
    assert replay.parse({"ids": ids}) == (ids, None)
    assert replay.parse({}) == (None, None)
    cursor = "1764910800123456." + quarantine.entry_id("a")
    assert replay.parse({"cursor": cursor})[1][1] == quarantine.entry_id("a")
