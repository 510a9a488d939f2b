"""Paths into JSON values (docs/operations.md "Configuration"): dotted ``a.b.0`` or JSONPath
``$.a.b``,
``$.a[0]``,
``$['x.y']``. Pure.

A path is a tuple of string segments. A digit segment indexes an array, and is a key of an
object, so ``a.0`` reads ``{"a": [5]}`` and ``{"a": {"0": 5}}`` alike: the same canonical path,
which is what rollups are keyed by. Wildcards, filters, slices, unions and recursive descent
select many values where a field names one, so they are refused with a message naming what is
allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from services.common.errors import BadRequest

MAX_PATH_CHARS = 512
MAX_SEGMENTS = 32
ALLOWED = (
    "a dotted path like a.b.0 or a JSONPath like $.a.b, $.a[0] or $['x.y']; "
    "wildcards, filters, slices, unions and '..' are not supported"
)

Path = tuple[str, ...]
# Explicit classes, no \s or ".", so openapi.yaml's pattern means the same in every dialect.
_NAME = re.compile(r"[^.\[\]*?@()'\"$,:\x00-\x20\x7f]+")
_INDEX = re.compile(r"\[(0|[1-9][0-9]{0,8})\]")
_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\['\\])*)'|"((?:[^"\\]|\\["\\])*)")\]""")
_DIGITS = re.compile(r"0|[1-9][0-9]{0,8}")


class BadPath(BadRequest):
    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}; use {ALLOWED}", code="bad_path")


def parse(raw: object, name: str = "path") -> Path:
    """The segments of ``raw``, or a 400 that names what a path may be."""
    if not isinstance(raw, str) or not raw:
        raise BadPath(name, "must be a non-empty string")
    if len(raw) > MAX_PATH_CHARS:
        raise BadPath(name, f"is longer than {MAX_PATH_CHARS} characters")
    path = _jsonpath(raw, name) if raw.startswith("$") else _dotted(raw, name)
    if len(path) > MAX_SEGMENTS:
        raise BadPath(name, f"has more than {MAX_SEGMENTS} segments")
    return path


def _dotted(raw: str, name: str) -> Path:
    segments = tuple(raw.split("."))
    for segment in segments:
        if not segment:
            raise BadPath(name, "has an empty segment")
        if not _NAME.fullmatch(segment):
            raise BadPath(name, f"segment {segment[:40]!r} has a character paths do not allow")
    return segments


def _jsonpath(raw: str, name: str) -> Path:
    segments: list[str] = []
    at = 1  # after "$"
    while at < len(raw):
        if raw.startswith("..", at):
            raise BadPath(name, "recursive descent '..' is not supported")
        if raw[at] == ".":
            found = _NAME.match(raw, at + 1)
            if not found:
                raise BadPath(name, f"expected a name after '.' at character {at + 1}")
            segments.append(found.group())
            at = found.end()
        elif raw[at] == "[":
            index = _INDEX.match(raw, at)
            quoted = index or _QUOTED.match(raw, at)
            if index:
                segments.append(index.group(1))
            elif quoted:
                text = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
                segments.append(re.sub(r"\\(.)", r"\1", text))
            else:
                raise BadPath(name, f"unsupported selector at character {at + 1}")
            at = quoted.end()
        else:
            raise BadPath(name, f"unexpected {raw[at]!r} at character {at + 1}")
        if len(segments) > MAX_SEGMENTS:
            break
    return tuple(segments)


_MISSING = object()


def resolve(value: Any, path: Path) -> Any:
    """The value at ``path``, or ``MISSING`` when any segment is absent."""
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list) and _DIGITS.fullmatch(segment):
            index = int(segment)
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def is_missing(value: Any) -> bool:
    return value is _MISSING


MISSING = _MISSING


def key(path: Path) -> str:
    """A short stable key for a canonical path (rollup document ids and map keys)."""
    canonical = json.dumps(list(path), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def render(path: Path) -> str:
    """The canonical JSONPath spelling of a path (for messages and stored field lists)."""
    return "$" + "".join(f"[{json.dumps(segment, ensure_ascii=False)}]" for segment in path)
