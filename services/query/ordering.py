"""``webhook.list`` ordering (docs/query.md). Pure.

Without ``sortBy``: newest first (``desc``) or oldest first (``asc``). With it, values order
numbers before strings, then other values (booleans, objects, arrays), then null and missing;
numbers and strings by value in the requested direction; ties newest first.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.query import paths

NUMBERS, STRINGS, OTHER, ABSENT = range(4)


@dataclass(frozen=True)
class StoredEvent:
    id: str
    received_at: dt.datetime
    body: Any

    def as_item(self) -> dict[str, Any]:
        at = self.received_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return {"id": self.id, "receivedAt": at, "body": self.body}


def _class(value: Any) -> int:
    if paths.is_missing(value) or value is None:
        return ABSENT
    if isinstance(value, bool):
        return OTHER
    if isinstance(value, int | float):
        return NUMBERS
    if isinstance(value, str):
        return STRINGS
    return OTHER


class _Rank:
    """Where an event stands in a ``sortBy`` list: class, then value, then newest first."""

    __slots__ = ("cls", "descending", "position", "value")

    def __init__(self, event: StoredEvent, sort_by: paths.Path, descending: bool) -> None:
        self.value = paths.resolve(event.body, sort_by)
        self.cls = _class(self.value)
        self.position = (event.received_at, event.id)
        self.descending = descending

    def __lt__(self, other: _Rank) -> bool:
        if self.cls != other.cls:
            return self.cls < other.cls
        if self.cls in (NUMBERS, STRINGS) and self.value != other.value:
            return self.value > other.value if self.descending else self.value < other.value
        return self.position > other.position  # ties: newest first


def order(
    events: Iterable[StoredEvent], sort_by: paths.Path | None, direction: str, limit: int
) -> list[StoredEvent]:
    """The first ``limit`` events in list order. The events stream through a heap that never
    holds more than ``limit`` of them, so a long scan costs no more memory than one page."""
    if sort_by is None:
        pick = heapq.nlargest if direction == "desc" else heapq.nsmallest
        return pick(limit, events, key=lambda e: (e.received_at, e.id))
    descending = direction == "desc"
    return heapq.nsmallest(limit, events, key=lambda e: _Rank(e, sort_by, descending))
