"""Stored event bodies read back: for answers, and for counting values. Pure.

Ingest stores each body's raw bytes, already checked as strict JSON. Read for an answer
(``webhook.latest``, ``webhook.list``) a body is plain JSON; read for an aggregate its numbers
stay the text the partner wrote, so a value is parsed exactly (module ``coercion``) and no
number, however long, is ever converted through ``int`` or ``float``.
"""

from __future__ import annotations

import json
from typing import Any


def for_answer(raw: Any) -> Any:
    """A stored body as JSON values; None when it cannot be read (nothing else can be shown)."""
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None


def for_values(raw: Any) -> Any:
    """A stored body with every JSON number kept as its text, for counting values."""
    try:
        return json.loads(raw, parse_int=str, parse_float=str)
    except (TypeError, ValueError, RecursionError):
        return None
