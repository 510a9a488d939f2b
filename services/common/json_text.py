"""JSON text for answers and stored documents, with numbers beyond a double's range. Pure.

Python's encoder writes every number through ``int`` or ``float``; an exact aggregate beyond the
range of a double (docs/query.md "Which values count") has no float, so it travels as a
``RawNumber``
and is written as its own text, unquoted: still a JSON number, since JSON's number syntax has no
range limit.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class RawNumber:
    """A JSON number given as its text (checked against JSON's number grammar)."""

    text: str

    def __post_init__(self) -> None:
        if not _NUMBER.fullmatch(self.text):
            raise ValueError("not a JSON number")


def dumps(value: Any, *, ensure_ascii: bool = True) -> str:
    """Compact JSON; a ``RawNumber`` is written as its text. Other unknown objects as ``str``."""
    raw: list[str] = []
    marker = ""  # made at the first RawNumber: most answers hold none, and pay no random nonce

    def default(obj: Any) -> Any:
        nonlocal marker
        if isinstance(obj, RawNumber):
            marker = marker or f"\x00{secrets.token_hex(8)}:"
            raw.append(obj.text)
            return f"{marker}{len(raw) - 1}"
        return str(obj)

    text = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii, default=default)
    if not raw:
        return text
    # The marker starts with NUL and a fresh random nonce: no string of the value can hold it
    # (json writes a NUL in a string as \u0000, and the nonce is unguessable).
    quoted = json.dumps(marker)[:-1]
    for index, number in enumerate(raw):
        text = text.replace(f'{quoted}{index}"', number, 1)
    return text


def _wide_float(text: str) -> float | RawNumber:
    value = float(text)
    mantissa = text.replace("E", "e").partition("e")[0]
    if math.isinf(value) or (value == 0 and mantissa.strip("-0.") != ""):
        return RawNumber(text)  # beyond a double: keep the number as written
    return value


def loads(text: str) -> Any:
    """JSON text back, keeping numbers beyond a double's range as ``RawNumber``."""
    return json.loads(text, parse_float=_wide_float)
