"""Strict JSON for every body the services parse (docs/ingest.md, step 7). Pure."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from services.common.errors import BadRequest

MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would read as Infinity
        raise ValueError("number out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity (nor numbers that overflow to it), no unpaired
    surrogate escapes (I-JSON, RFC 7493: they cannot be stored or re-encoded), nesting depth at
    most 64."""
    try:
        text = body.decode("utf-8")
        value, end = _DECODER.raw_decode(text, _skip_space(text, 0))
        if _skip_space(text, end) != len(text):
            raise ValueError("trailing data")
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    except (ValueError, RecursionError):
        raise BadRequest("body is not strict JSON", code="invalid_json") from None
    # Nesting never exceeds the number of opening brackets: most bodies are settled by two
    # counts in C without walking the value.
    if text.count("{") + text.count("[") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise BadRequest(f"JSON nesting is deeper than {MAX_DEPTH}", code="invalid_json")
    return value


def depth(value: Any) -> int:
    """Nesting depth, iteratively (a hostile body must not exhaust the stack)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index
