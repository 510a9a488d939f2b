"""Schema contracts: a source's JSON Schema, checked when set and applied to each event with
bounded work (docs/ingest.md "Schema contracts"). Pure: no I/O.

A contract is a tenant's code running on a shared instance, so it is held to three rules:
- **Closed.** Every ``$ref``/``$dynamicRef`` resolves inside the schema itself (checked when
  set; the validator's registry can retrieve nothing, so nothing is ever fetched), and lands on
  a subschema, never on data such as a ``const`` value.
- **Linear regular expressions, one engine.** Every keyword that tests a string or a property
  name against a pattern runs RE2, whose matching time is linear in the text: ``pattern``
  (also under ``propertyNames``), ``patternProperties``, and the names ``patternProperties``
  claims for ``additionalProperties`` and ``unevaluatedProperties``, so a name matched by one is
  never "additional" to the other. A pattern RE2 cannot compile (backreferences, lookaround) is
  refused when the schema is set; RE2 alone judges patterns then, too (the meta-schema's
  ``format: regex`` is not asserted). ``format`` is an annotation when events are checked, so no
  format runs a regex on them. Python's ``re`` backtracks: ``^(a+)+$`` against ``"a" * 40 + "!"``
  takes it about 2**40 steps, holding the GIL throughout.
- **A work budget.** Each keyword application spends fuel (weighted by the length of the string
  or array it looks at); an event that exhausts ``FUEL`` is refused with
  ``schema_too_complex``, so exponential ``anyOf``/``oneOf``/``$ref`` trees, ``$ref`` loops
  and quadratic keywords cost at most a bounded, deterministic amount of work.

Validation is jsonschema's Draft 2020-12 validator with those keywords replaced; the first
failure reported is the first error ``iter_errors`` yields (the schema's own keyword order,
depth first), which also stops the work there.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match
from re2 import _re2
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from services.ingest.contract_errors import InvalidSchema, SchemaTooComplex, SchemaViolation

MAX_SCHEMA_BYTES = 64 * 1024
# Work one event may cost, in units of about one plain keyword application (weighted, see
# ``_WEIGHTS``): 1.5-2 µs each on the measured machine (docs/performance.md), so at most a few
# milliseconds there whatever the schema. A typical event spends a few hundred units; an order
# with 36 line items, each checked against a 3-property object schema, spends nearly all of it.
FUEL = 3_000
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DIALECTS = {DIALECT, DIALECT + "#"}
# Per-pattern memory ceiling for RE2 (its default is 8 MiB): past it RE2 falls back from its
# DFA to its NFA, still linear, so a schema full of large patterns cannot hoard memory.
_RE2_MAX_MEM = 1 << 20
_CHARS_PER_UNIT = 64  # a regular expression scans this many characters per unit of fuel
_NAME_SHOWN = 100  # a missing property's name, as a violation's message quotes it


class _OutOfFuel(Exception):
    """Raised inside the validator; ``Contract.check`` turns it into ``SchemaTooComplex``."""


@dataclass
class _Fuel:
    left: int


_FUEL: contextvars.ContextVar[_Fuel] = contextvars.ContextVar("schema_fuel")


def _spend(units: int) -> None:
    fuel = _FUEL.get()
    fuel.left -= units
    if fuel.left < 0:
        raise _OutOfFuel


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False  # refusals are answered, not written to stderr
    options.never_capture = True  # only whether it matches: no submatch bookkeeping
    return options


_RE2_OPTIONS = _options()
_UNANCHORED = re2._Anchor.UNANCHORED
_NO_MATCH = re2._NULL_SPAN


class LinearPattern:
    """A ``pattern`` compiled by RE2, asked only whether it matches somewhere in a string
    (JSON Schema patterns are unanchored). Calls RE2's matcher directly: ``re2``'s
    ``search`` builds a match object and maps byte offsets back to characters, several times
    the cost of the match itself on short strings (docs/performance.md)."""

    __slots__ = ("_regexp",)

    def __init__(self, pattern: str) -> None:
        regexp = _re2.RE2(pattern.encode(), _RE2_OPTIONS)
        if not regexp.ok():
            raise re2.error(regexp.error())
        self._regexp = regexp

    def found_in(self, text: str) -> bool:
        data = text.encode()
        return self._regexp.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH


def compile_pattern(pattern: str) -> LinearPattern:
    """RE2's compiled form, or ``re2.error`` when RE2 cannot run it in linear time."""
    return LinearPattern(pattern)


# --- keywords replaced for bounded work ----------------------------------------------------------
# Each contract compiles its patterns once, when set or loaded; ``Contract.check`` hands them to
# the keyword functions below through this context variable (jsonschema passes no state along).
_PATTERNS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("schema_patterns")


def _regex(pattern: str):
    patterns = _PATTERNS.get()
    compiled = patterns.get(pattern)
    if compiled is None:  # a pattern reached only at run time: compiled (linear) on the spot
        compiled = patterns[pattern] = compile_pattern(pattern)
    return compiled


def _pattern(validator, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if isinstance(instance, str):
        _spend(len(instance) // _CHARS_PER_UNIT)
        if not _regex(pattern).found_in(instance):
            yield ValidationError(f"does not match the pattern {pattern!r}")


def _additional_properties(
    validator, additional: Any, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    """jsonschema's rule, with the names ``patternProperties`` claims found by RE2, one pattern
    at a time: jsonschema joins the patterns with ``|`` and runs Python's ``re``, which
    backtracks, raises on inline flags past the start (``"^x|(?i)^y"``) and disagrees with RE2
    on ``$`` and ``\\d``. Extras are visited in the event's order (jsonschema: a set's)."""
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    patterns = [_regex(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [name for name in instance if name not in properties and not _claimed(name, patterns)]
    if isinstance(additional, dict):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(extra) for extra in extras)
        yield ValidationError(f"has additional properties that are not allowed: {listed}")


def _claimed(name: str, patterns: list[LinearPattern]) -> bool:
    """Whether a ``patternProperties`` pattern matches ``name``; fuel per pattern tested, as
    ``patternProperties`` spends."""
    for regex in patterns:
        _spend(1 + len(name) // _CHARS_PER_UNIT)
        if regex.found_in(name):
            return True
    return False


def _pattern_properties(
    validator, patterns: dict, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        regex = _regex(pattern)
        for name, value in instance.items():
            _spend(1 + len(name) // _CHARS_PER_UNIT)
            if regex.found_in(name):
                _spend(DESCENT)
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _unique_items(validator, unique: bool, instance: Any, schema: dict):
    """O(n) with a canonical hashable form; jsonschema's falls back to O(n²) comparisons."""
    if not unique or not isinstance(instance, list):
        return
    _spend(2 * len(instance))  # hashing each item's canonical form
    seen = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError("has non-unique elements")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """A hashable form under which JSON-equal values are equal (1 == 1.0, true != 1)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # Python hashes equal numbers alike, 1 and 1.0 included
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("a", tuple(_canonical(v) for v in value))
    return ("s", value)  # a string, or None


def _multiple_of(validator, divisor: Any, instance: Any, schema: dict):
    """jsonschema's rule, exact where floats overflow: a huge integer over a fractional divisor
    raises OverflowError in its float division."""
    if not validator.is_type(instance, "number"):
        return
    try:
        if isinstance(divisor, float):
            quotient = instance / divisor
            failed = int(quotient) != quotient
        else:
            failed = bool(instance % divisor)
    except (OverflowError, ZeroDivisionError):
        failed = (Fraction(instance) / Fraction(divisor)).denominator != 1
    if failed:
        yield ValidationError(f"is not a multiple of {divisor}")


def _unevaluated_items(validator, unevaluated: Any, instance: Any, schema: dict):
    """jsonschema's rule with a set of evaluated indexes (its list makes the check O(n²))."""
    if not isinstance(instance, list):
        return
    _spend(len(instance))
    from jsonschema._utils import find_evaluated_item_indexes_by_schema

    evaluated = set(find_evaluated_item_indexes_by_schema(validator, instance, schema))
    for index, item in enumerate(instance):
        if index not in evaluated and not _is_valid(validator.descend(item, unevaluated)):
            yield ValidationError("has unevaluated items that are not allowed")
            return


def _unevaluated_properties(validator, unevaluated: Any, instance: Any, schema: dict):
    if not isinstance(instance, dict):
        return
    _spend(len(instance))
    evaluated = _evaluated_properties(validator, instance, schema)
    for name, value in instance.items():
        if name in evaluated:
            continue
        for _ in validator.descend(value, unevaluated, path=name, schema_path=name):
            yield ValidationError(f"has an unevaluated property {name!r} that is not allowed")
            return


def _evaluated_properties(validator, instance: dict, schema: Any) -> set[str]:
    """The instance's properties some applicator evaluated successfully (JSON Schema 2020-12
    section 11.3): jsonschema's walk, with RE2 for ``patternProperties`` and fuel per step."""
    if not isinstance(schema, dict):
        return set()
    _spend(1)
    found: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            found |= _evaluated_properties(inner, instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        found |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            found |= {
                name
                for name, value in instance.items()
                if _is_valid(validator.descend(value, subschema))
            }
    for pattern in schema.get("patternProperties") or {}:
        regex = _regex(pattern)
        for name in instance:
            _spend(1 + len(name) // _CHARS_PER_UNIT)
            if regex.found_in(name):
                found.add(name)
    for name, subschema in (schema.get("dependentSchemas") or {}).items():
        if name in instance:
            found |= _evaluated_properties(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword) or ():
            if _is_valid(validator.descend(instance, subschema)):
                found |= _evaluated_properties(validator, instance, subschema)
    if "if" in schema:
        if _is_valid(validator.descend(instance, schema["if"])):
            found |= _evaluated_properties(validator, instance, schema["if"])
            if "then" in schema:
                found |= _evaluated_properties(validator, instance, schema["then"])
        elif "else" in schema:
            found |= _evaluated_properties(validator, instance, schema["else"])
    return found


def _is_valid(errors: Iterator[ValidationError]) -> bool:
    return next(errors, None) is None


def _metered(keyword: Callable, weight: Callable[[Any, Any], int] | None = None) -> Callable:
    """``keyword`` charging one unit (or ``weight``) of fuel per application, before it runs."""

    def metered(validator, value, instance, schema):
        _spend(1 if weight is None else weight(value, instance))
        return keyword(validator, value, instance, schema)

    return metered


# One descent into a subschema (jsonschema builds a validator for it) costs about as much as
# this many plain keyword applications; applicators pay it per subschema they may descend into.
DESCENT = 8


def _branches(value: Any, instance: Any) -> int:
    # Each failing branch also builds and keeps its errors: twice a plain descent.
    return 1 + 2 * DESCENT * len(value)


def _one_branch(value: Any, instance: Any) -> int:
    return 1 + DESCENT


def _per_item(value: Any, instance: Any) -> int:
    return 1 + DESCENT * len(instance) if isinstance(instance, list) else 1


def _per_property(value: Any, instance: Any) -> int:
    return 1 + DESCENT * len(instance) if isinstance(instance, dict) else 1


def _per_named_property(value: Any, instance: Any) -> int:
    if not isinstance(instance, dict) or not isinstance(value, dict):
        return 1
    return 1 + DESCENT * min(len(value), len(instance))


def _size(value: Any, instance: Any) -> int:
    return 1 + (len(value) if isinstance(value, list | dict) else 0)


_REPLACED = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "multipleOf": _multiple_of,
    "unevaluatedItems": _unevaluated_items,
    "unevaluatedProperties": _unevaluated_properties,
}
# Fuel per application beyond the default one unit: what the keyword's own work grows with.
_WEIGHTS = {
    **dict.fromkeys(("$ref", "$dynamicRef", "not", "if"), _one_branch),
    **dict.fromkeys(("allOf", "anyOf", "oneOf"), _branches),
    **dict.fromkeys(("items", "prefixItems", "contains", "unevaluatedItems"), _per_item),
    **dict.fromkeys(
        ("additionalProperties", "propertyNames", "dependentSchemas", "unevaluatedProperties"),
        _per_property,
    ),
    "properties": _per_named_property,
    **dict.fromkeys(("enum", "required", "dependentRequired"), _size),
}

BoundedValidator = validators.extend(
    Draft202012Validator,
    {
        name: _metered(_REPLACED.get(name, function), _WEIGHTS.get(name))
        for name, function in Draft202012Validator.VALIDATORS.items()
    },
)


# --- the contract ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """A source's schema, compiled once; ``check`` refuses an event that does not match."""

    text: str  # the schema's JSON, as stored
    validator: Any = field(repr=False)  # None: a stored schema this version refuses (``load``)
    patterns: dict[str, Any] = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def check(self, document: Any) -> None:
        """Raise ``SchemaViolation`` (422) naming the first failure, or ``SchemaTooComplex``
        (422) when the event would cost more than ``FUEL`` or the schema cannot be applied;
        nothing else escapes."""
        if self.validator is None:  # stored, then refused by this version (see ``load``)
            raise SchemaTooComplex(
                "the source's schema can no longer be applied: its owner must set it again "
                "(PUT /v1/sources/{id}/schema names the problem)"
            )
        fuel_token = _FUEL.set(_Fuel(FUEL))
        patterns_token = _PATTERNS.set(self.patterns)
        try:
            error = next(self.validator.iter_errors(document), None)
        except (_OutOfFuel, RecursionError):
            raise SchemaTooComplex(
                "checking this event against the source's schema needs more work than one "
                "event may cost",
            ) from None
        except (Unresolvable, re2.error, re.error, ArithmeticError, ValueError, TypeError):
            # Only reachable through parts of a schema checked when it was set (``re.error``:
            # only if a jsonschema upgrade added a keyword calling ``re``), yet a tenant's
            # schema must never turn an event into a 500.
            raise SchemaTooComplex("the source's schema cannot be applied to this event") from None
        finally:
            _PATTERNS.reset(patterns_token)
            _FUEL.reset(fuel_token)
        if error is not None:
            raise violation(error)


def violation(error: ValidationError) -> SchemaViolation:
    """The 422 for ``error``: where in the event (RFC 6901), which keyword, and where in the
    schema; never the failing value itself (it may be large, and is the partner's own)."""
    pointer = json_pointer(error.absolute_path)
    keyword = error.validator if isinstance(error.validator, str) else "false"
    if keyword == "not" and error.validator_value is True:
        keyword = "false"  # a ``false`` subschema, spelled out (see _spell_out_false)
    at = json_pointer(error.absolute_schema_path)
    place = pointer or "the root"
    missing = _first_missing(error) if keyword == "required" else None
    if missing is not None:
        # The pointer stays the object's (a missing property has no value to point at); its
        # name comes from the schema, so naming it echoes nothing the partner sent.
        what = f"the object at {place} lacks the required property {missing}"
    else:
        what = f"the value at {place} fails {keyword!r}"
    return SchemaViolation(
        f"the event does not match the source's schema: {what} (schema location #{at})",
        details={"pointer": pointer, "keyword": keyword},
    )


def _first_missing(error: ValidationError) -> str | None:
    """The first property ``required`` lists that the object lacks (the one jsonschema reports
    first), quoted and cut to ``_NAME_SHOWN`` characters; None if it cannot be told."""
    if not isinstance(error.validator_value, list) or not isinstance(error.instance, dict):
        return None
    for name in error.validator_value:
        if isinstance(name, str) and name not in error.instance:
            shown = json.dumps(name[:_NAME_SHOWN], ensure_ascii=False)
            return shown if len(name) <= _NAME_SHOWN else shown[:-1] + '…"'
    return None


def json_pointer(path) -> str:
    """RFC 6901: ``~`` as ``~0`` and ``/`` as ``~1``; the whole document is ``""``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def parse(schema: Any) -> Contract:
    """Check a schema being set (400 ``invalid_schema`` naming the problem) and compile it."""
    if not isinstance(schema, dict | bool):
        raise InvalidSchema("schema must be a JSON Schema: an object or a boolean")
    text = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise InvalidSchema(
            f"schema is larger than {MAX_SCHEMA_BYTES // 1024} KiB (as compact JSON)"
        )
    return compile_contract(text)


def _meta_formats() -> FormatChecker:
    """The formats ``check_schema`` asserts, but ``regex``: that one compiles with Python's
    ``re``, and RE2 alone judges patterns (``_close``), so a pattern is never refused, or
    accepted, by an engine that will not run it."""
    formats = FormatChecker(formats=())
    formats.checkers = {
        name: check
        for name, check in Draft202012Validator.FORMAT_CHECKER.checkers.items()
        if name != "regex"
    }
    return formats


_META = Draft202012Validator(Draft202012Validator.META_SCHEMA, format_checker=_meta_formats())


def load(text: str) -> Contract:
    """The contract of a stored schema. A schema this version refuses (say one stored before its
    patterns had to compile under RE2) still loads, as a contract that refuses every event with
    ``schema_too_complex``: never an event accepted unchecked, never a 500, and the owner's
    ``PUT`` of the schema names the problem."""
    try:
        return compile_contract(text)
    except (InvalidSchema, ValueError, RecursionError):
        return Contract(text=text, validator=None, patterns={})


def compile_contract(text: str) -> Contract:
    schema = json.loads(text)  # a fresh copy: compiling edits it (see _close)
    try:
        # The meta-schema's most relevant error (check_schema stops at its first one).
        problem = best_match(_META.iter_errors(schema))
    except (RecursionError, ValueError) as err:
        raise InvalidSchema(f"schema cannot be checked: {type(err).__name__}") from None
    if problem is not None:
        where = json_pointer(problem.absolute_path) or "the root"
        raise InvalidSchema(
            f"schema is not valid JSON Schema 2020-12 at {where}: {_short(problem.message)}"
        )
    resource = DRAFT202012.create_resource(schema)
    try:
        registry = Registry().with_resource(resource.id() or "", resource).crawl()
    except Exception as err:  # referencing refuses conflicting or malformed ids
        raise InvalidSchema(f"schema's identifiers cannot be read: {_short(str(err))}") from None
    patterns = _close(resource, registry)
    validator = BoundedValidator(schema, registry=registry)
    return Contract(text=text, validator=validator, patterns=patterns)


def _close(root: Resource, registry: Registry) -> dict[str, Any]:
    """Check every subschema (``$schema``, references, patterns); drop ``$schema`` keys so the
    validator never switches to jsonschema's own (unbounded) validator class; return the
    compiled patterns."""
    subschemas: list[tuple[Resource, Any, str]] = []  # (subschema, its resolver, location)

    def walk(resource: Resource, resolver, location: str) -> None:
        resolver = resolver.in_subresource(resource)
        subschemas.append((resource, resolver, location))
        contents = resource.contents
        if isinstance(contents, dict):
            for name, value in contents.items():
                if name in _SUBSCHEMA_VALUES:
                    for key, child in _children(name, value):
                        walk(DRAFT202012.create_resource(child), resolver, f"{location}/{key}")

    walk(root, registry.resolver(base_uri=root.id() or ""), "")
    walked = {id(resource.contents) for resource, _, _ in subschemas}
    patterns: dict[str, Any] = {}
    for resource, resolver, location in subschemas:
        contents = resource.contents
        if not isinstance(contents, dict):
            continue
        dialect = contents.get("$schema")
        if dialect is not None and dialect not in _DIALECTS:
            raise InvalidSchema(
                f"$schema at {location or 'the root'} must be absent or {DIALECT!r}"
            )
        for keyword in ("$ref", "$dynamicRef"):
            ref = contents.get(keyword)
            if ref is None:
                continue
            try:
                target = resolver.lookup(ref).contents
            except Unresolvable:
                raise InvalidSchema(
                    f"{keyword} {ref!r} at {location or 'the root'} does not resolve inside the "
                    f"schema (references are never fetched)"
                ) from None
            if not isinstance(target, bool) and id(target) not in walked:
                raise InvalidSchema(
                    f"{keyword} {ref!r} at {location or 'the root'} points at a value that is not "
                    f"a subschema"
                )
        found = []
        if isinstance(contents.get("pattern"), str):
            found.append((contents["pattern"], f"{location}/pattern"))
        if isinstance(contents.get("patternProperties"), dict):
            found += [(p, f"{location}/patternProperties") for p in contents["patternProperties"]]
        for pattern, where in found:
            try:
                patterns[pattern] = compile_pattern(pattern)
            except re2.error as err:
                reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else ""
                raise InvalidSchema(
                    f"pattern {_short(pattern)!r} at {where} does not compile under RE2, the "
                    f"engine Inlet runs patterns on (no backreferences or lookaround): "
                    f"{_short(reason)}"
                ) from None
    for resource, _, _ in subschemas:
        if isinstance(resource.contents, dict):
            resource.contents.pop("$schema", None)
            _spell_out_false(resource.contents)
    return patterns


_FALSE = {"not": True}  # refuses everything, as ``false`` does; reported as keyword "false"


def _spell_out_false(schema: dict) -> None:
    """``false`` as a property's or tuple item's schema becomes ``{"not": true}``: jsonschema
    reports a bare ``false`` reached this way without the instance's path, which the pointer
    needs."""
    for keyword in ("properties", "patternProperties"):
        children = schema.get(keyword)
        if isinstance(children, dict):
            for name, child in children.items():
                if child is False:
                    children[name] = dict(_FALSE)
    items = schema.get("prefixItems")
    if isinstance(items, list):
        schema["prefixItems"] = [dict(_FALSE) if item is False else item for item in items]


# Keywords whose values hold subschemas (JSON Schema 2020-12 core and validation vocabularies),
# by shape: one subschema, an array of them, or an object of them.
_ONE = (
    "additionalProperties", "contains", "else", "if", "items", "not", "propertyNames",
    "then", "unevaluatedItems", "unevaluatedProperties", "contentSchema",
)  # fmt: skip
_ARRAY = ("allOf", "anyOf", "oneOf", "prefixItems")
_OBJECT = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
_SUBSCHEMA_VALUES = frozenset((*_ONE, *_ARRAY, *_OBJECT))


def _children(keyword: str, value: Any) -> Iterator[tuple[str, Any]]:
    escape = json_pointer
    if keyword in _ONE and isinstance(value, dict | bool):
        yield keyword, value
    elif keyword in _ARRAY and isinstance(value, list):
        yield from ((f"{keyword}/{i}", child) for i, child in enumerate(value))
    elif keyword in _OBJECT and isinstance(value, dict):
        yield from ((f"{keyword}{escape([name])}", child) for name, child in value.items())


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
