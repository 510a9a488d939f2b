"""Schema contracts, the pure part: checking a schema when set, and checking events against it
with bounded work (docs/ingest.md "Schema contracts")."""

from __future__ import annotations

import contextlib
import json
import re
from unittest import mock

import jsonschema._keywords
import jsonschema._utils
import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry

from services.ingest import contracts
from services.ingest.contracts import InvalidSchema, SchemaTooComplex, SchemaViolation

ORDER = {
    "type": "object",
    "required": ["id", "amount"],
    "properties": {
        "id": {"type": "string", "pattern": "^ord_[0-9a-z]{4,32}$"},
        "amount": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    },
}


def refused_schema(schema) -> str:
    with pytest.raises(InvalidSchema) as raised:
        contracts.parse(schema)
    assert raised.value.status == 400 and raised.value.code == "invalid_schema"
    return raised.value.message


def violation(schema, document) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as raised:
        contracts.parse(schema).check(document)
    assert raised.value.status == 422
    return raised.value


def exponential_any_of(levels: int) -> dict:
    """Each level's two branches both refer to the level below: 2**levels paths to a failure."""
    defs = {"d0": {"type": "integer"}}
    for level in range(1, levels + 1):
        below = {"$ref": f"#/$defs/d{level - 1}"}
        defs[f"d{level}"] = {"anyOf": [below, below]}
    return {"$defs": defs, "$ref": f"#/$defs/d{levels}"}


# --- checked when set -------------------------------------------------------------------------


def test_a_valid_schema_compiles_and_keeps_its_compact_text():
    contract = contracts.parse(ORDER)
    assert json.loads(contract.text) == ORDER
    assert " " not in contract.text.replace('"order id"', "")
    assert contracts.parse(True).text == "true"


def test_a_schema_that_is_not_json_schema_2020_12_is_refused_naming_the_place():
    assert "/properties/n/type" in refused_schema({"properties": {"n": {"type": "nope"}}})
    assert "an object or a boolean" in refused_schema([{"type": "string"}])


@pytest.mark.parametrize(
    "dialect", ["http://json-schema.org/draft-07/schema#", "https://example.com/dialect"]
)
def test_another_dialect_is_refused_at_the_root_and_in_subschemas(dialect):
    assert "$schema at the root" in refused_schema({"$schema": dialect})
    nested = {"properties": {"x": {"$schema": dialect}}}
    assert "$schema at /properties/x" in refused_schema(nested)


def test_the_2020_12_dialect_may_be_named():
    contracts.parse({"$schema": contracts.DIALECT, "type": "object"})


def test_a_schema_over_64_kib_is_refused():
    big = {"enum": ["x" * 1000] * 70}
    assert "64 KiB" in refused_schema(big)


@pytest.mark.parametrize(
    "ref",
    [
        "https://example.com/schemas/order.json",
        "other.json#/$defs/a",
        "https://json-schema.org/draft/2020-12/schema",  # bundled with jsonschema: still outside
        "#/$defs/missing",
    ],
)
def test_a_reference_outside_the_document_is_refused_naming_it(ref):
    message = refused_schema({"properties": {"a": {"$ref": ref}}, "$defs": {"b": True}})
    assert repr(ref) in message and "/properties/a" in message


def test_references_inside_the_document_resolve_with_ids_and_anchors():
    schema = {
        "$id": "https://example.com/root",
        "$defs": {
            "amount": {"$id": "amount", "$anchor": "money", "type": "number"},
            "node": {"$dynamicAnchor": "node", "type": "object"},
        },
        "properties": {
            "a": {"$ref": "amount"},
            "b": {"$ref": "https://example.com/amount#money"},
            "c": {"$ref": "#/$defs/amount"},
            "d": {"$dynamicRef": "#node"},
        },
    }
    contract = contracts.parse(schema)
    contract.check({"a": 1, "b": 2.5, "c": 3, "d": {}})
    assert violation(schema, {"b": "x"}).details == {"pointer": "/b", "keyword": "type"}


def test_a_reference_into_data_that_is_not_a_subschema_is_refused():
    """A ``const`` value is data: a validator reaching it could meet keywords (``$schema``,
    patterns) no check ever saw."""
    schema = {"const": {"pattern": "^(a+)+$"}, "properties": {"x": {"$ref": "#/const"}}}
    assert "not a subschema" in refused_schema(schema)


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"pattern": "(a)\\1"}, "/pattern"),  # backreference
        ({"properties": {"x": {"pattern": "a(?=b)"}}}, "/properties/x/pattern"),  # lookahead
        ({"patternProperties": {"(?<!x)y": True}}, "/patternProperties"),  # lookbehind
        ({"pattern": "a{1001}"}, "/pattern"),  # over RE2's repetition limit
    ],
)
def test_a_pattern_re2_cannot_compile_is_refused_naming_where(schema, where):
    message = refused_schema(schema)
    assert where in message and "RE2" in message


# --- checking events --------------------------------------------------------------------------


def test_a_matching_event_passes():
    contracts.parse(ORDER).check({"id": "ord_1234", "amount": 5, "tags": ["a", "b"]})


@pytest.mark.parametrize(
    ("document", "pointer", "keyword"),
    [
        ({"amount": 5}, "", "required"),
        ({"id": "ord_1234", "amount": -1}, "/amount", "minimum"),
        ({"id": "nope", "amount": 1}, "/id", "pattern"),
        ({"id": "ord_1234", "amount": 1, "tags": ["a", 3]}, "/tags/1", "type"),
        ({"id": "ord_1234", "amount": 1, "tags": ["a", "a"]}, "/tags", "uniqueItems"),
        ([], "", "type"),
    ],
)
def test_a_violation_names_the_json_pointer_and_keyword_of_the_first_failure(
    document, pointer, keyword
):
    refused = violation(ORDER, document)
    assert refused.code == "schema_violation"
    assert refused.details == {"pointer": pointer, "keyword": keyword}


def test_the_pointer_escapes_tilde_and_slash_as_rfc_6901_says():
    schema = {"properties": {"a/b~c": {"properties": {"~": {"type": "string"}}}}}
    refused = violation(schema, {"a/b~c": {"~": 1}})
    assert refused.details["pointer"] == "/a~1b~0c/~0"


def test_the_first_failure_follows_the_schemas_own_keyword_order():
    """Two failures: the one whose keyword comes first in the stored schema is reported."""
    schema = {"properties": {"b": {"type": "string"}, "a": {"type": "string"}}}
    assert violation(schema, {"a": 1, "b": 2}).details["pointer"] == "/b"
    reordered = {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    assert violation(reordered, {"a": 1, "b": 2}).details["pointer"] == "/a"


def test_a_false_schema_refuses_with_keyword_false():
    assert violation({"properties": {"x": False}}, {"x": 1}).details == {
        "pointer": "/x",
        "keyword": "false",
    }


def test_the_message_does_not_echo_the_failing_value():
    secretish = "card-4242424242424242"
    refused = violation({"properties": {"n": {"type": "integer"}}}, {"n": secretish})
    assert secretish not in refused.message and "/n" in refused.message


def test_a_catastrophic_pattern_is_answered_without_backtracking():
    """``^(a+)+$`` against ``"a" * 40 + "!"``: a backtracking engine such as Python's ``re``
    tries every way of splitting the 40 a's among the nested ``+`` groups before failing at
    the ``!``, about 2**40 (10**12) steps, hours of CPU. RE2 simulates the automaton in one
    pass over the 41 characters. (Shown on a small case with ``re`` below: each extra ``a``
    doubles its work.)"""
    schema = {"properties": {"s": {"pattern": "^(a+)+$"}}}
    refused = violation(schema, {"s": "a" * 40 + "!"})
    assert refused.details == {"pointer": "/s", "keyword": "pattern"}
    contracts.parse(schema).check({"s": "a" * 100_000})
    assert re.search("^(a+)+$", "a" * 12 + "!") is None  # fine at 12; 2**28 times that at 40


def test_pattern_properties_and_unevaluated_properties_use_re2_too():
    schema = {"patternProperties": {"^(a+)+$": {"type": "integer"}}, "unevaluatedProperties": False}
    refused = violation(schema, {"a" * 40 + "!": 1})
    assert refused.details["keyword"] == "unevaluatedProperties"
    assert violation(schema, {"aaa": "x"}).details == {"pointer": "/aaa", "keyword": "type"}


HOSTILE_NAMES = {"patternProperties": {"^(a+)+$": True}, "additionalProperties": False}


def test_additional_properties_tests_names_on_re2_so_a_hostile_name_is_answered_at_once():
    """jsonschema's ``additionalProperties`` joins the ``patternProperties`` patterns and runs
    Python's ``re``: on a 24-character name ``^(a+)+$`` cost it about half a second, doubling
    with every character, so a 35-character name held an instance (the GIL) for minutes."""
    contract = contracts.parse(HOSTILE_NAMES)
    with pytest.raises(SchemaViolation) as raised:
        contract.check({"a" * 34 + "!": 1})
    assert raised.value.details == {"pointer": "", "keyword": "additionalProperties"}
    contract.check({"a" * 1000: 1})
    assert re.search("^(a+)+$", "a" * 12 + "!") is None  # fine at 12; 2**22 times that at 34


@pytest.mark.parametrize(
    "patterns",
    [{"^x": {}, "(?i)^y": {}}, {"(?i)^y": {}, "^x": {}}],
    ids=["flag-last", "flag-first"],
)
def test_inline_flags_apply_to_their_own_pattern_and_never_raise(patterns):
    """Joined as ``"^x|(?i)^y"`` Python's ``re`` raised (global flags not at the start): a 500.
    Joined the other way RE2 would let ``(?i)`` reach ``^x``. Each pattern is tested alone."""
    contract = contracts.parse({"patternProperties": patterns, "additionalProperties": False})
    for name in ("z", "X"):
        with pytest.raises(SchemaViolation) as raised:
            contract.check({name: 1})
        assert raised.value.details == {"pointer": "", "keyword": "additionalProperties"}
    contract.check({"x": 1, "y": 2, "Y": 3})


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("^[a-z]+$", "abc", True),
        ("^[a-z]+$", "abc\n", False),  # RE2: ``$`` is the end of the text, never before a \n
        ("^\\d+$", "42", True),
        ("^\\d+$", "\u09ea\u09e8", False),  # Bengali 42: RE2's ``\d`` is ASCII only
    ],
)
@pytest.mark.parametrize("leftover", ["additionalProperties", "unevaluatedProperties"])
def test_every_keyword_that_tests_a_name_agrees_with_patternproperties(
    pattern, name, matches, leftover
):
    """One engine for every keyword: a name ``patternProperties`` does not match is refused as
    left over, and one it matches is checked by its subschema, never both nor neither."""
    schema = {"patternProperties": {pattern: {"type": "integer"}}, leftover: False}
    contract = contracts.parse(schema)
    contract.check({name: 1} if matches else {})
    with pytest.raises(SchemaViolation) as raised:
        contract.check({name: "x"})
    expected = {"pointer": f"/{name}", "keyword": "type"} if matches else None
    assert raised.value.details == (expected or {"pointer": "", "keyword": leftover})
    if not matches:
        with pytest.raises(SchemaViolation):
            contract.check({name: 1})
    named = contracts.parse({"propertyNames": {"pattern": pattern}})
    if matches:
        named.check({name: 1})
    else:
        with pytest.raises(SchemaViolation) as raised:
            named.check({name: 1})
        assert raised.value.details["keyword"] == "pattern"


def test_additional_properties_spends_fuel_per_name_and_pattern_tested():
    """Without its own charge, ``additionalProperties`` would test names against patterns for
    free: here ``patternProperties`` alone spends two thirds of the budget, and the same work
    again under ``additionalProperties`` is past it."""
    many = {f"^p{n:04}$": True for n in range(contracts.FUEL * 2 // 3)}
    contracts.parse({"patternProperties": many}).check({"q": 1})
    with pytest.raises(SchemaTooComplex):
        contracts.parse({"patternProperties": many, "additionalProperties": False}).check({"q": 1})
    long_name = "a" * (contracts._CHARS_PER_UNIT * contracts.FUEL * 2 // 3)
    contracts.parse({"patternProperties": {"^a": True}}).check({long_name: 1})
    with pytest.raises(SchemaTooComplex):
        contracts.parse(HOSTILE_NAMES | {"patternProperties": {"^a": True}}).check({long_name: 1})


class _Forbidden:
    def __getattr__(self, name):
        raise AssertionError(f"jsonschema called Python's re.{name} on a tenant's pattern")


@pytest.mark.parametrize(
    "schema",
    [
        {"pattern": "^a"},
        {"patternProperties": {"^a": True, "(?i)^b": True}},
        HOSTILE_NAMES,
        {"patternProperties": {"^a": True}, "additionalProperties": {"type": "integer"}},
        {"patternProperties": {"^a": True}, "unevaluatedProperties": False},
        {"allOf": [{"patternProperties": {"^a": True}}], "unevaluatedProperties": False},
        {"propertyNames": {"pattern": "^[a-z]+$"}},
        {"dependentSchemas": {"a": {"patternProperties": {"^b": False}}}},
        {"properties": {"s": {"format": "regex"}}},  # an annotation: no format checker runs
    ],
)
def test_no_keyword_reaches_pythons_re(schema):
    """Every place jsonschema calls ``re`` (``pattern``, ``patternProperties``, and the
    patterns ``additionalProperties`` and ``unevaluatedProperties`` consult) is replaced."""
    contract = contracts.parse(schema)
    with (
        mock.patch.object(jsonschema._keywords, "re", _Forbidden()),
        mock.patch.object(jsonschema._utils, "re", _Forbidden()),
    ):
        for document in ({"a": 1, "b": 2, "c": "(", "s": "("}, {"aaa!": 1}, "abc", 1):
            with contextlib.suppress(SchemaViolation):
                contract.check(document)


@pytest.mark.parametrize(
    "stored", ['{"pattern":"(a)\\\\1"}', '{"patternProperties":{"(?<!x)y":true}}', "{"]
)
def test_a_stored_schema_this_version_refuses_refuses_every_event_cleanly(stored):
    """A schema stored before its patterns had to compile under RE2 (or otherwise refused now)
    still loads: each event is a 422 ``schema_too_complex``, never accepted unchecked nor a
    500; the owner's PUT names the problem."""
    contract = contracts.load(stored)
    assert contract.text == stored
    for document in ("aa", {"y": 1}, {}):
        with pytest.raises(SchemaTooComplex) as raised:
            contract.check(document)
        assert raised.value.status == 422 and "set it again" in raised.value.message


def test_patterns_only_python_accepts_are_refused_and_ones_only_re2_accepts_are_not():
    """RE2 alone judges a pattern when the schema is set (the meta-schema's ``format: regex``,
    Python's ``re``, is not asserted)."""
    assert "RE2" in refused_schema({"pattern": "a(?=b)"})
    contract = contracts.parse({"properties": {"s": {"pattern": "^a(?i)b\\z"}}})
    contract.check({"s": "aB"})
    with pytest.raises(SchemaViolation):
        contract.check({"s": "Ab"})


def test_an_exponential_any_of_tree_exhausts_the_budget():
    with pytest.raises(SchemaTooComplex) as raised:
        contracts.parse(exponential_any_of(40)).check("not an integer")
    assert raised.value.status == 422 and raised.value.code == "schema_too_complex"


def test_a_self_referencing_ref_loop_is_too_complex_not_a_crash():
    for schema in ({"$ref": "#"}, {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}):
        with pytest.raises(SchemaTooComplex):
            contracts.parse(schema).check(1)


def test_a_recursive_schema_over_a_deep_event_is_fine():
    schema = {"$defs": {"n": {"properties": {"c": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}
    document: dict = {}
    for _ in range(63):
        document = {"c": document}
    contracts.parse(schema).check(document)


def test_multiple_of_over_huge_numbers_answers_instead_of_overflowing():
    """A 400-digit integer over a float divisor overflows float division (jsonschema's own
    keyword raises OverflowError there); the exact fraction decides instead."""
    contracts.parse({"multipleOf": 0.5}).check(10**400)
    with pytest.raises(SchemaViolation):
        contracts.parse({"multipleOf": 0.3}).check(10**400)  # 0.3 is not exact in binary
    contracts.parse({"multipleOf": 2.0**-1000}).check(2.0**1000)  # the quotient overflows to inf
    contracts.parse({"multipleOf": 7}).check(7 * 10**4000)


def test_unique_items_is_linear_and_follows_json_equality():
    contract = contracts.parse({"uniqueItems": True})
    contract.check([{"a": i} for i in range(1000)])
    contract.check([1, True, "1", [1], {"1": 1}])  # true is not 1 in JSON Schema
    for duplicated in ([1, 1.0], [{"a": [1]}, {"a": [1.0]}], [{"a": 1, "b": 2}, {"b": 2, "a": 1}]):
        with pytest.raises(SchemaViolation):
            contract.check(duplicated)


def test_a_large_unique_array_costs_fuel_in_proportion():
    with pytest.raises(SchemaTooComplex):
        contracts.parse({"uniqueItems": True}).check(list(range(contracts.FUEL)))


def test_the_budget_is_per_event():
    contract = contracts.parse(ORDER)
    for _ in range(200):  # far more work in total than one budget
        contract.check({"id": "ord_1234", "amount": 5, "tags": ["a"]})


# --- the same verdicts as jsonschema would give with RE2 as its regex engine ----------------------

# Newlines and non-ASCII digits and letters: where RE2 and Python's ``re`` disagree (``$`` before
# a trailing newline, ``\d`` and ``\w`` beyond ASCII, case folding).
ALPHABET = "abcxyzAY019_-\n\u09ea\u0663\u00e9\u00df\u03a9\u212a"
names = st.sampled_from(["a", "b", "id", "n", "x1", "a\n", "42", "\u09ea\u09e8"]) | st.text(
    alphabet=ALPHABET, max_size=4
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(alphabet=ALPHABET, max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)
SCHEMAS = [
    ORDER,
    {"type": ["object", "array"], "minProperties": 1, "items": {"type": "integer"}},
    {"anyOf": [{"type": "string", "pattern": "^[a-c]+$"}, {"type": "number", "multipleOf": 0.5}]},
    {"oneOf": [{"type": "integer"}, {"minimum": 0}], "not": {"const": 3}},
    {"patternProperties": {"^[a-z]$": {"type": "string"}}, "additionalProperties": False},
    {"uniqueItems": True, "items": {"enum": [1, "a", None, True]}, "maxItems": 3},
    {
        "allOf": [{"properties": {"a": True}}],
        "properties": {"b": {"type": "integer"}},
        "unevaluatedProperties": {"type": "string"},
    },
    {"prefixItems": [{"type": "integer"}], "unevaluatedItems": {"type": "string"}},
    {"if": {"required": ["id"]}, "then": {"required": ["n"]}, "else": {"maxProperties": 2}},
    {"patternProperties": {"^\\d+$": {"type": "integer"}}, "additionalProperties": False},
    {
        "properties": {"id": {"pattern": "^\\w+$"}},
        "patternProperties": {"^[a-z]+$": {"type": "string"}, "(?i)^x": True},
        "additionalProperties": False,
    },
    {"patternProperties": {"[A-Z]$": {"type": "null"}}, "unevaluatedProperties": False},
    {"propertyNames": {"pattern": "^[a-z0-9]*$"}, "items": {"pattern": "\\d$"}},
    {"dependentSchemas": {"a": {"patternProperties": {"^[^a]": {"type": "integer"}}}}},
]


class _RE2AsRe:
    """Python's ``re`` as jsonschema calls it, answered by RE2 (the ``re2`` module's own search,
    not ``contracts.LinearPattern``). It joins ``patternProperties`` for
    ``additionalProperties``, so the schemas above put an inline flag only in the last one."""

    @staticmethod
    def search(pattern: str, string: str):
        return re2.search(pattern, string)


@settings(max_examples=400, deadline=None)
@given(schema=st.sampled_from(SCHEMAS), document=json_values)
def test_verdicts_match_jsonschema_with_re2_as_its_regex_engine(schema, document):
    """The budget is never reached here."""
    plain = Draft202012Validator(schema, registry=Registry())
    with (
        mock.patch.object(jsonschema._keywords, "re", _RE2AsRe),
        mock.patch.object(jsonschema._utils, "re", _RE2AsRe),
    ):
        expected = next(plain.iter_errors(document), None)
    try:
        contracts.parse(schema).check(document)
        got = None
    except SchemaViolation as refused:
        got = refused
    assert (got is None) == (expected is None), (schema, document)
    if expected is not None:
        assert got.details["keyword"] == (expected.validator or "false")
        assert got.details["pointer"] == contracts.json_pointer(expected.absolute_path)


# --- nothing a tenant sends turns into an unexpected exception (a 500) --------------------------

schema_keywords = st.sampled_from(
    [
        *("$ref", "$dynamicRef", "$id", "$anchor", "$dynamicAnchor", "$defs", "$schema"),
        *("properties", "patternProperties", "additionalProperties", "propertyNames"),
        *("items", "prefixItems", "contains", "minContains", "uniqueItems", "required"),
        *("anyOf", "allOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"),
        *("unevaluatedProperties", "unevaluatedItems", "type", "enum", "const", "multipleOf"),
        *("pattern", "minimum", "x-unknown", "(?i)^y"),  # the last: an inline flag, as a name
    ]
)
schema_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [
            *("#", "#/", "#/$defs/a", "#a", "a", "https://x.test/y", "urn:x", "object"),
            *("^a+$", "(a)\\1", "(?i)^y", "^\\d+$"),
        ]
    )
)
schema_values = st.recursive(
    schema_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(schema_keywords, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(schema=st.dictionaries(schema_keywords, schema_values, max_size=5), document=json_values)
def test_any_schema_and_event_end_in_an_answer(schema, document):
    try:
        contract = contracts.parse(schema)
    except InvalidSchema:
        return
    with contextlib.suppress(SchemaViolation, SchemaTooComplex):
        contract.check(document)


def test_a_reference_that_is_not_a_string_is_refused_by_the_meta_schema():
    assert "/$ref" in refused_schema({"$ref": None})


def test_a_required_violation_names_the_missing_property_at_the_objects_pointer():
    schema = {"properties": {"line": {"required": ["sku", "qty"]}}}
    refused = violation(schema, {"line": {"sku": "a"}})
    assert refused.details == {"pointer": "/line", "keyword": "required"}
    assert 'lacks the required property "qty"' in refused.message
    assert "the object at /line" in refused.message

    at_the_root = violation(ORDER, {"amount": 5})
    assert at_the_root.details == {"pointer": "", "keyword": "required"}
    assert 'the root lacks the required property "id"' in at_the_root.message


def test_a_long_missing_property_name_is_cut_in_the_message():
    name = "p" * 500
    refused = violation({"required": [name]}, {})
    assert "p" * 100 + '…"' in refused.message and "p" * 101 not in refused.message
