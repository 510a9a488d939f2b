"""Which validator serves step 7b (docs/ingest.md "Schema contracts"): Inlet's contract (jsonschema
with
RE2 and the work budget) against plain jsonschema and jsonschema-rs, in process.

A realistic order schema (required fields, patterns, an enum, an array of line items through a
``$ref``) and a ~1 KiB order event; median over repeated runs of one first-error check, the
same question step 7b asks. Then the two hostile cases the budget exists for: an exponential
``anyOf`` tree, where jsonschema-rs has no bound, and a catastrophic pattern.
``python -m bench.schema_contracts`` prints the figures; ``make bench`` records them.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "type", "amount", "currency", "lines"],
    "properties": {
        "id": {"type": "string", "pattern": "^ord_[0-9a-z]{8,32}$"},
        "type": {"enum": ["order.created", "order.paid", "order.refunded"]},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "customer": {
            "type": "object",
            "required": ["email"],
            "properties": {
                "email": {"type": "string", "maxLength": 320},
                "name": {"type": "string"},
            },
        },
        "lines": {"type": "array", "maxItems": 500, "items": {"$ref": "#/$defs/line"}},
    },
    "$defs": {
        "line": {
            "type": "object",
            "required": ["sku", "quantity", "price"],
            "additionalProperties": False,
            "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z0-9-]{3,20}$"},
                "quantity": {"type": "integer", "minimum": 1},
                "price": {"type": "number", "minimum": 0},
            },
        }
    },
}


def order_event(lines: int) -> dict[str, Any]:
    return {
        "id": "ord_9f8e7d6c5b4a",
        "type": "order.paid",
        "amount": 42.5 * lines,
        "currency": "EUR",
        "customer": {"email": "buyer@example.com", "name": "A. Buyer"},
        "lines": [
            {"sku": f"SKU-{i:04d}", "quantity": 1 + i % 3, "price": 42.5} for i in range(lines)
        ],
    }


def exponential_any_of(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {"d0": {"type": "integer"}}
    for level in range(1, levels + 1):
        below = {"$ref": f"#/$defs/d{level - 1}"}
        defs[f"d{level}"] = {"anyOf": [below, below]}
    return {"$defs": defs, "$ref": f"#/$defs/d{levels}"}


def _median_us(check: Callable[[], object], repeats: int) -> float:
    for _ in range(max(3, repeats // 20)):  # warm up
        check()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        check()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1e6, 1)


def _once_ms(check: Callable[[], object], runs: int = 3) -> float:
    """The median of a few single runs (the hostile cases are too slow to repeat much)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        check()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 2)


def _checkers(schema: dict[str, Any]) -> dict[str, Callable[[Any], object]]:
    import jsonschema_rs
    from jsonschema import Draft202012Validator
    from referencing import Registry

    from services.common.errors import InletError
    from services.ingest import contracts

    contract = contracts.parse(schema)
    plain = Draft202012Validator(schema, registry=Registry())
    rust = jsonschema_rs.validator_for(schema)

    def inlet(document: Any) -> object:
        try:
            contract.check(document)
        except InletError as refused:
            return refused.code
        return None

    return {
        "inlet": inlet,
        "jsonschema": lambda document: next(plain.iter_errors(document), None),
        "jsonschema_rs": lambda document: next(iter(rust.iter_errors(document)), None),
    }


def measure(repeats: int = 400) -> dict[str, Any]:
    """The ``schema`` section of bench/results (bench/README.md)."""
    from services.ingest import contracts

    results: dict[str, Any] = {"fuel": contracts.FUEL}
    checkers = _checkers(ORDER_SCHEMA)
    for lines in (3, 50):
        event = order_event(lines)
        size = len(json.dumps(event).encode())
        row: dict[str, Any] = {"event_bytes": size}
        for name, check in checkers.items():
            row[f"{name}_us"] = _median_us(lambda c=check, e=event: c(e), repeats)
        row["inlet_vs_rs"] = round(row["inlet_us"] / row["jsonschema_rs_us"], 1)
        results[f"order_{lines}_lines"] = row
    results["order_200_lines_inlet"] = checkers["inlet"](order_event(200))
    results["compile_ms"] = {
        "inlet": _once_ms(lambda: contracts.parse(ORDER_SCHEMA)),
        "jsonschema_rs": _once_ms(lambda: _checkers(ORDER_SCHEMA)["jsonschema_rs"]),
    }
    hostile: dict[str, Any] = {}
    for levels in (12, 14):  # each level doubles jsonschema-rs's time; 16 took it 14 s
        checks = _checkers(exponential_any_of(levels))
        hostile[f"any_of_{levels}_levels_inlet_ms"] = _once_ms(lambda c=checks: c["inlet"]("x"))
        hostile[f"any_of_{levels}_levels_rs_ms"] = _once_ms(
            lambda c=checks: c["jsonschema_rs"]("x")
        )
    catastrophic = {"properties": {"s": {"pattern": "^(a+)+$"}}}
    checks = _checkers(catastrophic)
    document = {"s": "a" * 40 + "!"}
    hostile["pattern_inlet_ms"] = _once_ms(lambda: checks["inlet"](document))
    hostile["pattern_rs_ms"] = _once_ms(lambda: checks["jsonschema_rs"](document))
    # additionalProperties beside patternProperties tests every name against every pattern:
    # in Python's re, a 35-character name took the instance for minutes.
    names = {"patternProperties": {"^(a+)+$": True}, "additionalProperties": False}
    name_checks = _checkers(names)
    named = {"a" * 35 + "!": 1}
    hostile["additional_names_inlet_ms"] = _once_ms(lambda: name_checks["inlet"](named))
    hostile["additional_names_rs_ms"] = _once_ms(lambda: name_checks["jsonschema_rs"](named))
    results["hostile"] = hostile
    results["worst_inlet_ms"] = max(v for k, v in hostile.items() if "inlet" in k)
    return results


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
