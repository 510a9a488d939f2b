"""Any order of one user's deliveries, duplicates included, converges to one state (README
"clerk-sync").

Each example is delivered over HTTP to the running clerk-sync service against the emulator.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.common.clerk_events import Version, user_record
from tests import clerk

BASE_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Planned:
    """One event of the example: an upsert at (updated_at, timestamp), or a deletion."""

    kind: str  # user.created | user.updated | user.deleted
    updated_at: int = 0
    timestamp: int = 0

    @property
    def version(self) -> tuple[int, int]:
        return (self.updated_at, self.timestamp)


# Few distinct values, so equal updated_at (and equal versions) turn up often.
_updated_at = st.integers(min_value=0, max_value=1).map(lambda k: BASE_MS + k * 1000)
_timestamp = st.integers(min_value=0, max_value=3).map(lambda k: BASE_MS + k * 1000)
_upserts = st.builds(
    Planned, st.sampled_from(["user.created", "user.updated"]), _updated_at, _timestamp
)


@st.composite
def deliveries(draw) -> tuple[list[Planned], list[int]]:
    """At most 6 events (deletions in a minority of examples) and a delivery order of their
    indexes, some delivered twice."""
    planned = draw(st.lists(_upserts, min_size=2, max_size=5))
    deletions = draw(st.sampled_from([0, 0, 0, 1, 2]))
    planned += [Planned("user.deleted")] * min(deletions, 6 - len(planned))
    repeats = draw(st.lists(st.sampled_from(range(len(planned))), max_size=3))
    order = draw(st.permutations([*range(len(planned)), *repeats]))
    return planned, order


def user_data(user_id: str, event: Planned) -> dict:
    """The user's content is a function of its version, so equal versions carry equal records."""
    tag = f"{event.updated_at - BASE_MS}_{event.timestamp - BASE_MS}"
    return clerk.user(
        user_id,
        event.updated_at,
        email=f"v{tag}@example.com",
        username=f"v{tag}",
        first_name=f"First{tag}",
    )


def envelope(user_id: str, event: Planned) -> dict:
    if event.kind == "user.deleted":
        return clerk.event(event.kind, clerk.deleted("user", user_id))
    return clerk.event(event.kind, user_data(user_id, event), timestamp=event.timestamp)


def at(kind: str, updated_at: int, timestamp: int) -> Planned:
    return Planned(kind, BASE_MS + updated_at * 1000, BASE_MS + timestamp * 1000)


# The cases the rules name, run on every test run whatever Hypothesis draws.
EQUAL_UPDATED_AT = ([at("user.updated", 0, 1), at("user.updated", 0, 0)], [1, 0, 1])
NEWER_BEATS_LATER_ENVELOPE = ([at("user.updated", 1, 0), at("user.updated", 0, 3)], [0, 1])
DELETE_FIRST = (
    [at("user.created", 0, 0), Planned("user.deleted"), at("user.updated", 1, 1)],
    [1, 0, 2, 1],
)
DELETE_ONLY = ([Planned("user.deleted")], [0, 0])


@example(example=EQUAL_UPDATED_AT)
@example(example=NEWER_BEATS_LATER_ENVELOPE)
@example(example=DELETE_FIRST)
@example(example=DELETE_ONLY)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(example=deliveries())
def test_any_order_of_a_users_deliveries_converges_to_the_rules_state(clean, db, example):
    planned, order = example
    stack = clean
    stack.reset_firestore()  # `clean` runs once per test, not once per example
    base, secret = stack.url("clerk-sync"), stack.webhook_secret
    user_id = f"user_{uuid.uuid4().hex[:16]}"
    envelopes = [envelope(user_id, event) for event in planned]
    svix_ids = [f"msg_{uuid.uuid4().hex}" for _ in planned]

    seen: set[int] = set()
    for index in order:
        answer = clerk.post(base, secret, envelopes[index], msg_id=svix_ids[index])
        assert answer.status_code == 200, answer.text
        assert answer.json()["duplicate"] is (index in seen), answer.text
        seen.add(index)

    stored = db.collection("users").document(user_id).get().to_dict()
    if any(event.kind == "user.deleted" for event in planned):
        assert set(stored) == {"id", "deleted", "deletedAt"}, stored
        assert (stored["id"], stored["deleted"]) == (user_id, True)
    else:
        winner = max(planned, key=lambda event: event.version)
        stored.pop("syncedAt")
        assert stored == {
            **user_record(user_data(user_id, winner)),
            "version": Version(*winner.version).to_record(),
        }

    records = {d.id: d.to_dict() for d in db.collection("deliveries").stream()}
    assert set(records) == set(svix_ids)
    assert all(r["status"] in ("processed", "ignored") for r in records.values()), records


# Values a signed event might carry where Clerk documents Unix milliseconds.
hostile_times = st.one_of(
    st.integers(min_value=2**63, max_value=10**40),
    st.integers(max_value=-1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from([10**30, 1e30, "abc", "1700000000000", -1, True, 1.5, [1], {"ms": 1}]),
)
time_fields = st.sampled_from(["updated_at", "created_at", "timestamp"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(field=time_fields, value=hostile_times, kind=st.sampled_from(["user", "organization"]))
def test_a_signed_event_with_a_malformed_time_is_400_and_recorded_failed(
    clean, db, field, value, kind
):
    object_id = f"{kind[:4]}_{uuid.uuid4().hex[:16]}"
    data = clerk.user(object_id, BASE_MS) if kind == "user" else clerk.organization(object_id, 1)
    event = clerk.event(f"{kind}.created", data)
    if field == "timestamp":
        event["timestamp"] = value
    else:
        data[field] = value
    svix_id = f"msg_{uuid.uuid4().hex}"
    answer = clerk.post(clean.url("clerk-sync"), clean.webhook_secret, event, msg_id=svix_id)
    assert answer.status_code == 400, (answer.status_code, answer.text)
    assert answer.json()["error"]["code"] == "malformed_event"
    record = db.collection("deliveries").document(svix_id).get().to_dict()
    assert record["status"] == "failed", record
    assert not db.collection(f"{kind}s").document(object_id).get().exists
