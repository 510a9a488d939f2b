"""Schema contracts over HTTP: PUT/GET/DELETE /v1/sources/{id}/schema and step 7b of the inbound
route (docs/ingest.md "Schema contracts")."""

from __future__ import annotations

import json

import pytest
import requests

from tests import partner
from tests.partner import SourceAPI

ORDER = {
    "type": "object",
    "required": ["id", "amount"],
    "properties": {
        "id": {"type": "string", "pattern": "^ord_[0-9a-z]{4,32}$"},
        "amount": {"type": "number", "minimum": 0},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    },
    "$defs": {"line": {"type": "object", "required": ["sku"]}},
}


def events(db, source_id: str) -> list[dict]:
    ref = db.collection("sources").document(source_id).collection("events")
    return [d.to_dict() for d in ref.stream()]


def audit(db, action: str, source_id: str) -> list[dict]:
    entries = [d.to_dict() for d in db.collection("audit").stream()]
    return [e for e in entries if e["action"] == action and e["sourceId"] == source_id]


@pytest.fixture
def contracted(tenant, source) -> dict:
    """``source`` with the ORDER schema set."""
    answer = tenant.put_schema(source["id"], ORDER)
    assert answer.status_code == 200, answer.text
    return source


# --- the routes -------------------------------------------------------------------------------


def test_put_answers_the_source_with_schema_true_and_get_returns_the_schema(tenant, source, db):
    assert tenant.get(source["id"]).json()["schema"] is False
    answer = tenant.put_schema(source["id"], ORDER)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["id"] == source["id"] and shown["schema"] is True and "secret" not in shown
    assert tenant.get(source["id"]).json()["schema"] is True
    assert tenant.get_schema(source["id"]).json() == {"schema": ORDER}
    stored = db.collection("sources").document(source["id"]).get().to_dict()
    assert isinstance(stored["schema"], str)  # JSON text, exempt from indexing
    (entry,) = audit(db, "schema.set", source["id"])
    assert entry["actor"] == "user_alice" and len(entry["schemaSha256"]) == 64


def test_get_without_a_schema_is_404_no_schema(tenant, source):
    answer = tenant.get_schema(source["id"])
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "no_schema"


def test_delete_removes_the_schema_and_is_repeatable(tenant, contracted, db):
    assert tenant.delete_schema(contracted["id"]).status_code == 204
    assert tenant.delete_schema(contracted["id"]).status_code == 204
    assert tenant.get_schema(contracted["id"]).status_code == 404
    assert tenant.get(contracted["id"]).json()["schema"] is False
    assert len(audit(db, "schema.deleted", contracted["id"])) == 1  # the repeat changed nothing


def test_a_new_schema_replaces_the_old_one(tenant, contracted):
    assert tenant.put_schema(contracted["id"], {"type": "array"}).status_code == 200
    assert tenant.get_schema(contracted["id"]).json() == {"schema": {"type": "array"}}


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"$ref": "https://example.com/order.json"}, "https://example.com/order.json"),
        ({"properties": {"n": {"type": "nope"}}}, "/properties/n/type"),
        ({"pattern": "(a)\\1"}, "RE2"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "$schema"),
        ({"enum": ["x" * 1000] * 70}, "64 KiB"),
        ("not a schema", "object or a boolean"),
    ],
)
def test_a_bad_schema_is_400_naming_the_problem(tenant, source, schema, named):
    answer = tenant.put_schema(source["id"], schema)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_schema" and named in error["message"]
    assert tenant.get(source["id"]).json()["schema"] is False


def test_a_body_without_the_schema_field_is_400(tenant, source, ingest_url):
    url = f"{ingest_url}/v1/sources/{source['id']}/schema"
    for body in ({}, {"schema": True, "extra": 1}):
        answer = requests.put(url, json=body, headers=tenant.auth, timeout=15)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_request"


def test_only_org_admins_change_an_org_sources_schema_members_read_it(clean, ingest_url):
    admin = SourceAPI(ingest_url, clean.issuer.session_token("user_a", org="org_s", role="admin"))
    member = SourceAPI(ingest_url, clean.issuer.session_token("user_m", org="org_s", role="member"))
    source = admin.create("Org orders").json()
    assert admin.put_schema(source["id"], ORDER).status_code == 200
    assert member.get_schema(source["id"]).json() == {"schema": ORDER}
    refused = member.put_schema(source["id"], {"type": "array"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert member.delete_schema(source["id"]).status_code == 403
    assert admin.get_schema(source["id"]).json() == {"schema": ORDER}


def test_another_tenants_source_is_404_before_the_body_is_judged(clean, ingest_url, contracted):
    bob = SourceAPI(ingest_url, clean.issuer.session_token("user_bob"))
    for answer in (
        bob.put_schema(contracted["id"], {"type": "array"}),
        bob.put_schema(contracted["id"], "not a schema"),
        bob.get_schema(contracted["id"]),
        bob.delete_schema(contracted["id"]),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
    owner = SourceAPI(ingest_url, clean.issuer.session_token("user_alice"))
    assert owner.get_schema(contracted["id"]).json() == {"schema": ORDER}


def test_the_schema_routes_of_a_deleted_source_are_404(tenant, contracted):
    assert tenant.delete(contracted["id"]).status_code == 204
    assert tenant.get_schema(contracted["id"]).status_code == 404
    assert tenant.put_schema(contracted["id"], ORDER).status_code == 404


# --- step 7b: events checked against the schema --------------------------------------------------


def test_a_matching_event_is_stored(contracted, db):
    answer = partner.send(contracted["url"], contracted["secret"], {"id": "ord_1234", "amount": 3})
    assert answer.status_code == 202, answer.text
    assert len(events(db, contracted["id"])) == 1


def test_a_violating_event_is_422_with_pointer_and_keyword_and_nothing_is_stored(contracted, db):
    event = {"id": "ord_1234", "amount": 3, "lines": [{"sku": "a"}, {"qty": 1}]}
    answer = partner.send(contracted["url"], contracted["secret"], event, key="order-7")
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "schema_violation"
    assert error["pointer"] == "/lines/1" and error["keyword"] == "required"
    assert "/lines/1" in error["message"]
    assert events(db, contracted["id"]) == []
    keys = db.collection("sources").document(contracted["id"]).collection("idempotency")
    assert list(keys.stream()) == []
    # The key stays free: the corrected event under the same key is accepted.
    event["lines"][1]["sku"] = "b"
    fixed = partner.send(contracted["url"], contracted["secret"], event, key="order-7")
    assert fixed.status_code == 202 and fixed.json()["duplicate"] is False
    assert len(events(db, contracted["id"])) == 1


def test_the_schema_is_checked_after_the_signature_and_strict_json(contracted):
    bad_signature = partner.send(contracted["url"], "whsec_" + "A" * 43 + "=", {"amount": -1})
    assert bad_signature.status_code == 401
    not_json = partner.send(contracted["url"], contracted["secret"], body=b'{"amount": NaN}')
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"


def test_a_schema_change_takes_effect_at_once(tenant, source, db):
    """The instance that handled the change forgets its cached entry (README: the 30 s rule
    holds for the others)."""
    event = {"id": "ord_1234", "amount": -5}
    assert partner.send(source["url"], source["secret"], event).status_code == 202  # no schema
    assert tenant.put_schema(source["id"], ORDER).status_code == 200
    refused = partner.send(source["url"], source["secret"], event)
    assert refused.status_code == 422 and refused.json()["error"]["pointer"] == "/amount"
    assert tenant.put_schema(source["id"], {"type": "object"}).status_code == 200
    assert partner.send(source["url"], source["secret"], event).status_code == 202
    assert tenant.delete_schema(source["id"]).status_code == 204
    assert partner.send(source["url"], source["secret"], [1, 2]).status_code == 202
    assert len(events(db, source["id"])) == 3


def test_a_catastrophic_pattern_is_answered_promptly(tenant, source, db):
    """``^(a+)+$`` against ``"a" * 40 + "!"``: Python's ``re`` backtracks through every way of
    splitting the a's among the nested groups, about 2**40 steps (hours), before it fails at
    the ``!``; RE2 answers in one linear pass. The request's 30 s timeout is the only clock
    here: under ``re`` this request would not be answered."""
    schema = {"properties": {"name": {"pattern": "^(a+)+$"}}}
    assert tenant.put_schema(source["id"], schema).status_code == 200
    refused = partner.send(source["url"], source["secret"], {"name": "a" * 40 + "!"})
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "schema_violation",
        "message": refused.json()["error"]["message"],
        "pointer": "/name",
        "keyword": "pattern",
    }
    accepted = partner.send(source["url"], source["secret"], {"name": "a" * 100_000})
    assert accepted.status_code == 202


def test_a_hostile_property_name_is_answered_and_the_instance_keeps_serving(tenant, source, db):
    """``additionalProperties`` beside ``patternProperties`` tests names on RE2: under Python's
    ``re`` a 35-character name against ``^(a+)+$`` held the instance (and its GIL) for minutes,
    so this request and every later one timed out. The requests' 30 s timeout is the only
    clock here."""
    schema = {"patternProperties": {"^(a+)+$": True}, "additionalProperties": False}
    assert tenant.put_schema(source["id"], schema).status_code == 200
    refused = partner.send(source["url"], source["secret"], {"a" * 34 + "!": 1})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "schema_violation"
    assert (error["pointer"], error["keyword"]) == ("", "additionalProperties")
    accepted = partner.send(source["url"], source["secret"], {"a" * 35: 1})
    assert accepted.status_code == 202, accepted.text
    assert tenant.get(source["id"]).status_code == 200
    assert len(events(db, source["id"])) == 1


def test_an_inline_flag_in_pattern_properties_is_a_verdict_not_a_500(tenant, source):
    """Joined for ``additionalProperties`` as ``"^x|(?i)^y"``, Python's ``re`` raised."""
    schema = {"patternProperties": {"^x": {}, "(?i)^y": {}}, "additionalProperties": False}
    assert tenant.put_schema(source["id"], schema).status_code == 200
    refused = partner.send(source["url"], source["secret"], {"z": 1})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["keyword"] == "additionalProperties"
    assert partner.send(source["url"], source["secret"], {"x": 1, "Y": 2}).status_code == 202


def test_a_name_re2_does_not_match_is_additional_too(tenant, source):
    """``$`` is the end of the name under RE2 (Python's ``re`` also matched before a trailing
    newline), for ``patternProperties`` and ``additionalProperties`` alike."""
    schema = {"patternProperties": {"^[a-z]+$": {"type": "integer"}}, "additionalProperties": False}
    assert tenant.put_schema(source["id"], schema).status_code == 200
    refused = partner.send(source["url"], source["secret"], {"abc\n": 1})
    assert refused.status_code == 422 and refused.json()["error"]["pointer"] == ""
    assert partner.send(source["url"], source["secret"], {"abc": 1}).status_code == 202


def test_a_stored_schema_this_version_refuses_is_422_schema_too_complex(tenant, source, db):
    """A schema stored before its patterns had to compile under RE2 (written here straight to
    Firestore) refuses each event cleanly, stores nothing, and the owner's PUT names the
    problem."""
    assert tenant.put_schema(source["id"], {"type": "object"}).status_code == 200  # forgotten
    stored = json.dumps({"properties": {"s": {"pattern": "(a)\\1"}}}, separators=(",", ":"))
    db.collection("sources").document(source["id"]).update({"schema": stored})
    for event in ({"s": "aa"}, {"t": 1}):
        answer = partner.send(source["url"], source["secret"], event)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "schema_too_complex"
    assert events(db, source["id"]) == []
    again = tenant.put_schema(source["id"], json.loads(stored))
    assert again.status_code == 400 and "RE2" in again.json()["error"]["message"]


def test_an_exponential_schema_is_refused_with_its_own_code_and_nothing_stored(tenant, source, db):
    defs = {"d0": {"type": "integer"}}
    for level in range(1, 41):
        below = {"$ref": f"#/$defs/d{level - 1}"}
        defs[f"d{level}"] = {"anyOf": [below, below]}
    assert (
        tenant.put_schema(source["id"], {"$defs": defs, "$ref": "#/$defs/d40"}).status_code == 200
    )
    answer = partner.send(source["url"], source["secret"], "not an integer")
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "schema_too_complex"
    assert events(db, source["id"]) == []


def test_a_self_referencing_schema_is_refused_not_a_500(tenant, source):
    assert tenant.put_schema(source["id"], {"$ref": "#"}).status_code == 200
    answer = partner.send(source["url"], source["secret"], {"n": 1})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "schema_too_complex"


def test_huge_numbers_against_multiple_of_are_answered(tenant, source):
    assert tenant.put_schema(source["id"], {"items": {"multipleOf": 0.1}}).status_code == 200
    body = b"[" + b"9" * 4000 + b"]"
    answer = partner.send(source["url"], source["secret"], body=body)
    assert answer.status_code in (202, 422), answer.text


# --- the compiled schema in the verification-key cache --------------------------------------------


def test_the_cache_compiles_a_schema_once_and_recompiles_only_a_changed_one(clean, tenant, source):
    """Same 30 s rule as the keys: a reload after expiry reuses the compiled contract while the
    stored text is unchanged, and compiles the new text after a change."""
    from services.common.crypto import Keyring
    from services.common.source_store import SourceIds
    from services.ingest import keys as key_cache

    keyring = Keyring.parse(clean.source_kek)
    cache = key_cache.KeyCache(keyring, SourceIds.from_keyring(keyring))
    assert cache.get(source["id"]).contract is None
    assert tenant.put_schema(source["id"], ORDER).status_code == 200
    cache.forget(source["id"])  # what the instance that answered the PUT does
    first = cache.get(source["id"])
    assert first.contract is not None and json.loads(first.contract.text) == ORDER
    first.loaded_at -= key_cache.TTL_S + 1  # expired: the next request reloads
    reloaded = cache.get(source["id"])
    assert reloaded is not first and reloaded.contract is first.contract
    assert tenant.put_schema(source["id"], {"type": "array"}).status_code == 200
    reloaded.loaded_at -= key_cache.TTL_S + 1
    changed = cache.get(source["id"])
    assert changed.contract is not first.contract and changed.contract.text == '{"type":"array"}'


def test_compiled_schemas_are_bounded_per_instance_oldest_first(clean, tenant):
    """A tenant giving many sources big schemas cannot fill an instance's memory: past the
    bound on schema text, the oldest schema-bearing entry leaves the cache (and reloads on its
    next request); entries without a schema stay."""
    from services.common.crypto import Keyring
    from services.common.source_store import SourceIds
    from services.ingest import keys as key_cache

    keyring = Keyring.parse(clean.source_kek)
    plain = tenant.create("no schema").json()
    shaped = [tenant.create(f"schema {n}").json() for n in range(3)]
    for n, created in enumerate(shaped):
        schema = {"type": "object", "description": f"source {n} " + "x" * 1000}
        assert tenant.put_schema(created["id"], schema).status_code == 200
    size = len(
        json.dumps(
            {"type": "object", "description": "source 0 " + "x" * 1000}, separators=(",", ":")
        )
    )
    cache = key_cache.KeyCache(
        keyring, SourceIds.from_keyring(keyring), max_contract_bytes=2 * size + 10
    )
    plain_entry = cache.get(plain["id"])
    first, second, third = (cache.get(created["id"]) for created in shaped)
    assert all(entry.contract is not None for entry in (first, second, third))
    assert cache.cached(shaped[0]["id"]) is None  # the oldest schema went
    assert cache.cached(shaped[1]["id"]) is second and cache.cached(shaped[2]["id"]) is third
    assert cache.cached(plain["id"]) is plain_entry  # no schema: not counted, not evicted
    reloaded = cache.get(shaped[0]["id"])  # reloads, and pushes out the next oldest schema
    assert reloaded.contract is not None and reloaded is not first
    assert cache.cached(shaped[1]["id"]) is None and cache.cached(shaped[2]["id"]) is third
    cache.forget(shaped[2]["id"])
    assert cache.get(shaped[1]["id"]).contract is not None  # room again: both fit
    assert cache.cached(shaped[0]["id"]) is reloaded
