"""Clerk payloads to records and the version rules between them (common/clerk_events.py)."""

from __future__ import annotations

import json

import pytest

from services.common.clerk_events import (
    MEMBERSHIPS,
    ORGANIZATIONS,
    USERS,
    Change,
    MalformedEvent,
    Version,
    change_from_event,
    decide,
    display_name,
    membership_record,
    organization_record,
    user_record,
)
from tests import clerk


def upsert(updated_at: int, timestamp: int, doc_id: str = "user_1") -> Change:
    return change_from_event(
        clerk.event("user.updated", clerk.user(doc_id, updated_at), timestamp=timestamp)
    )


def deletion(doc_id: str = "user_1") -> Change:
    return change_from_event(clerk.event("user.deleted", clerk.deleted("user", doc_id)))


def stored_at(updated_at: int, timestamp: int) -> dict:
    """A live stored record at a version, as sync writes it."""
    return {"id": "user_1", "deleted": False, "version": Version(updated_at, timestamp).to_record()}


TOMBSTONE = {"id": "user_1", "deleted": True, "deletedAt": "2024-01-01T00:00:00Z"}


# --- users --------------------------------------------------------------------------------------


def test_primary_email_is_the_address_named_by_primary_email_address_id():
    record = user_record(clerk.user("user_1", 10, email="ada@example.com"))
    # The fixture lists "other@example.com" first; the primary id points at the second address.
    assert record["email"] == "ada@example.com"
    assert record["emails"] == ["other@example.com", "ada@example.com"]


def test_primary_email_falls_back_to_the_first_address_without_a_primary_id():
    record = user_record(clerk.user("user_1", 10, primary_email_address_id=None))
    assert record["email"] == "other@example.com"


def test_primary_email_falls_back_to_the_first_address_when_the_primary_id_is_unknown():
    record = user_record(clerk.user("user_1", 10, primary_email_address_id="idn_gone"))
    assert record["email"] == "other@example.com"


def test_user_without_email_addresses_has_no_email():
    record = user_record(clerk.user("user_1", 10, email_addresses=[]))
    assert record["email"] is None and record["emails"] == []
    assert record["displayName"] == "Ada Lovelace"


def test_user_record_keeps_the_documented_fields():
    record = user_record(clerk.user("user_1", 42))
    assert record == {
        "id": "user_1",
        "email": "ada@example.com",
        "emails": ["other@example.com", "ada@example.com"],
        "firstName": "Ada",
        "lastName": "Lovelace",
        "displayName": "Ada Lovelace",
        "username": "ada",
        "imageUrl": "https://img.clerk.com/ada.png",
        "publicMetadata": {"plan": "pro"},
        "createdAt": 1_690_000_000_000,
        "updatedAt": 42,
        "deleted": False,
    }


def test_private_and_unsafe_metadata_never_reach_the_user_record():
    data = clerk.user(
        "user_1",
        10,
        private_metadata={"stripeCustomer": "cus_secret"},
        unsafe_metadata={"note": "unsafe_value"},
    )
    flat = json.dumps(user_record(data))
    assert "cus_secret" not in flat and "unsafe_value" not in flat
    assert "private" not in flat.lower() and "unsafe" not in flat.lower()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "Ada Lovelace"),
        ({"last_name": None}, "Ada"),
        ({"first_name": None}, "Lovelace"),
        ({"first_name": "None", "last_name": "null"}, "ada"),
        ({"first_name": None, "last_name": None}, "ada"),
        ({"first_name": "  ", "last_name": "", "username": None}, "ada@example.com"),
        ({"first_name": None, "last_name": None, "username": "null"}, "ada@example.com"),
    ],
)
def test_display_name_is_full_name_else_username_else_email(overrides, expected):
    assert user_record(clerk.user("user_1", 10, **overrides))["displayName"] == expected


@pytest.mark.parametrize("absent", [None, "None", "null", "NULL", "undefined", "", "   "])
def test_display_name_never_reads_none_or_null(absent):
    data = clerk.user(
        "user_1",
        10,
        first_name=absent,
        last_name=absent,
        username=absent,
        email_addresses=[],
    )
    record = user_record(data)
    assert record["displayName"] == ""
    assert record["firstName"] is None and record["lastName"] is None
    assert record["username"] is None


def test_display_name_joins_only_present_parts():
    assert display_name("Ada", None, "ada", None) == "Ada"
    assert display_name(None, None, None, "ada@example.com") == "ada@example.com"
    assert display_name(None, None, None, None) == ""


# --- organizations and memberships --------------------------------------------------------------


def test_organization_record_keeps_public_fields_only():
    record = organization_record(clerk.organization("org_1", 20, private_metadata={"k": "hush"}))
    assert record == {
        "id": "org_1",
        "name": "Acme",
        "slug": "acme",
        "imageUrl": "https://img.clerk.com/acme.png",
        "publicMetadata": {"tier": "gold"},
        "createdAt": 1_690_000_000_000,
        "updatedAt": 20,
        "deleted": False,
    }


def test_membership_record_names_organization_user_and_role():
    data = clerk.membership("orgmem_1", "org_1", "user_1", 30, role="org:admin")
    data["private_metadata"] = {"k": "hush"}
    record = membership_record(data)
    assert record == {
        "id": "orgmem_1",
        "orgId": "org_1",
        "userId": "user_1",
        "role": "org:admin",
        "publicMetadata": {},
        "createdAt": 1_690_000_000_000,
        "updatedAt": 30,
    }
    assert "hush" not in json.dumps(record)


@pytest.mark.parametrize("missing", ["organization", "public_user_data"])
def test_membership_without_organization_or_user_is_malformed(missing):
    data = clerk.membership("orgmem_1", "org_1", "user_1", 30)
    del data[missing]
    with pytest.raises(MalformedEvent):
        change_from_event(clerk.event("organizationMembership.created", data))


# --- events to changes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "data", "collection"),
    [
        ("user.created", clerk.user("user_1", 10), USERS),
        ("user.updated", clerk.user("user_1", 10), USERS),
        ("organization.created", clerk.organization("org_1", 10), ORGANIZATIONS),
        ("organization.updated", clerk.organization("org_1", 10), ORGANIZATIONS),
        (
            "organizationMembership.created",
            clerk.membership("orgmem_1", "org_1", "user_1", 10),
            MEMBERSHIPS,
        ),
        (
            "organizationMembership.updated",
            clerk.membership("orgmem_1", "org_1", "user_1", 10),
            MEMBERSHIPS,
        ),
    ],
)
def test_created_and_updated_events_upsert_at_their_version(event_type, data, collection):
    change = change_from_event(clerk.event(event_type, data, timestamp=5000))
    assert (change.collection, change.doc_id, change.action) == (collection, data["id"], "upsert")
    assert change.version == Version(10, 5000)
    assert change.record["id"] == data["id"]
    assert change.owner is None


def test_user_deletion_tombstones_and_deletes_the_users_sources():
    change = deletion("user_1")
    assert (change.collection, change.doc_id, change.action) == (USERS, "user_1", "delete")
    assert change.record is None and change.version is None
    assert change.owner == "user:user_1"


def test_organization_deletion_deletes_the_organizations_sources():
    envelope = clerk.event("organization.deleted", clerk.deleted("organization", "org_1"))
    assert change_from_event(envelope).owner == "org:org_1"


def test_membership_deletion_owns_no_sources():
    data = clerk.membership("orgmem_1", "org_1", "user_1", 30)
    change = change_from_event(clerk.event("organizationMembership.deleted", data))
    assert change.action == "delete" and change.owner is None


@pytest.mark.parametrize(
    "event_type", ["session.created", "email.created", "user.signed_in", "organization.archived"]
)
def test_unknown_event_types_give_no_change(event_type):
    assert change_from_event(clerk.event(event_type, {"id": "sess_1"})) is None


def test_unknown_event_type_needs_no_data():
    assert change_from_event({"type": "sms.created"}) is None


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        [],
        "user.created",
        42,
        {},
        {"type": None, "data": {"id": "user_1"}},
        {"type": 7, "data": {"id": "user_1"}},
        {"type": "user.created"},
        {"type": "user.created", "data": None},
        {"type": "user.created", "data": ["user_1"]},
        {"type": "user.created", "data": {}},
        {"type": "user.created", "data": {"id": ""}},
        {"type": "user.created", "data": {"id": 12}},
        {"type": "user.deleted", "data": {"object": "user", "deleted": True}},
    ],
)
def test_malformed_events_raise_malformed_event(envelope):
    with pytest.raises(MalformedEvent):
        change_from_event(envelope)


@pytest.mark.parametrize("doc_id", ["user/1", "users/user_1/x", ".", "..", "__id__", "x" * 1501])
def test_ids_firestore_cannot_store_are_malformed(doc_id):
    # A Firestore document id has no "/", is not "." or "..", does not match __.*__ and is at
    # most 1,500 bytes; anything else would fail at write time as a 500 instead of a 400.
    with pytest.raises(MalformedEvent):
        change_from_event(clerk.event("user.created", clerk.user(doc_id, 10)))


@pytest.mark.parametrize("doc_id", ["user_2NNEqL2nrIRdJ194ndJqAHwEfxC", "__", "a__b__", "é" * 750])
def test_ordinary_ids_are_accepted(doc_id):
    assert change_from_event(clerk.event("user.created", clerk.user(doc_id, 10))).doc_id == doc_id


def test_malformed_event_is_a_value_error():
    # main.py answers 400 for both JSON errors and MalformedEvent; one hierarchy keeps that simple.
    assert issubclass(MalformedEvent, ValueError)


# --- version rules ------------------------------------------------------------------------------


def test_first_upsert_applies():
    assert decide(None, upsert(10, 1000)).apply


def test_newer_updated_at_applies():
    assert decide(stored_at(10, 1000), upsert(11, 1000)).apply


def test_newer_updated_at_wins_even_with_an_older_envelope_timestamp():
    assert decide(stored_at(10, 9000), upsert(11, 1000)).apply


def test_stale_update_is_not_applied():
    decision = decide(stored_at(20, 1000), upsert(10, 9000))
    assert not decision.apply and decision.reason == "stale"


def test_equal_version_is_not_applied_again():
    decision = decide(stored_at(20, 1000), upsert(20, 1000))
    assert not decision.apply and decision.reason == "stale"


def test_equal_updated_at_is_decided_by_the_later_envelope_timestamp():
    assert decide(stored_at(20, 1000), upsert(20, 2000)).apply
    earlier = decide(stored_at(20, 2000), upsert(20, 1000))
    assert not earlier.apply and earlier.reason == "stale"


def test_deletion_wins_whatever_its_time():
    assert decide(None, deletion()).apply
    assert decide(stored_at(10**15, 10**15), deletion()).apply


def test_tombstone_is_terminal_for_any_later_version():
    decision = decide(TOMBSTONE, upsert(10**15, 10**15))
    assert not decision.apply and decision.reason == "tombstoned"


def test_repeated_deletion_of_a_tombstone_is_not_applied_again():
    decision = decide(TOMBSTONE, deletion())
    assert not decision.apply and decision.reason == "tombstoned"


def test_record_without_a_version_is_replaced():
    assert decide({"id": "user_1", "deleted": False}, upsert(10, 1000)).apply


def test_versions_order_by_updated_at_then_envelope_timestamp():
    assert Version(1, 9) < Version(2, 0) < Version(2, 1)
    assert Version.from_record(Version(3, 4).to_record()) == Version(3, 4)
    assert Version.from_record(None) is None


@pytest.mark.parametrize(
    "value", [10**30, 2**63, 1e30, 1.5, 1_700_000_000_000.0, "abc", "17", -1, True, False, [], {}]
)
@pytest.mark.parametrize("field", ["updated_at", "created_at"])
def test_a_time_that_is_not_64_bit_unix_milliseconds_is_malformed(field, value):
    data = clerk.user("user_1", 10)
    data[field] = value
    with pytest.raises(MalformedEvent):
        change_from_event(clerk.event("user.updated", data))


@pytest.mark.parametrize("value", [10**30, 1e30, "abc", -5, True, None])
def test_an_upsert_without_a_valid_updated_at_is_malformed(value):
    data = clerk.organization("org_1", 10)
    data["updated_at"] = value
    with pytest.raises(MalformedEvent):
        change_from_event(clerk.event("organization.updated", data))


@pytest.mark.parametrize("value", [10**30, 1e30, "abc", -5, False])
def test_an_envelope_timestamp_that_is_not_unix_milliseconds_is_malformed(value):
    with pytest.raises(MalformedEvent):
        change_from_event(clerk.event("user.updated", clerk.user("user_1", 10), timestamp=value))


def test_the_largest_64_bit_time_is_a_version():
    change = change_from_event(clerk.event("user.updated", clerk.user("user_1", 2**63 - 1)))
    assert change.version.updated_at == 2**63 - 1


def test_a_missing_created_at_is_stored_as_none():
    data = clerk.user("user_1", 10)
    del data["created_at"]
    assert change_from_event(clerk.event("user.created", data)).record["createdAt"] is None
