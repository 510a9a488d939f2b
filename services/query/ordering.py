"""``webhook.list`` ordering (README "query"). Pure.

Without ``sortBy``: newest first (``desc``) or oldest first (``asc``). With it, values order
numbers before strings, then other values (booleans, objects, arrays), then null and missing;
numbers and strings by value in the requested direction; ties newest first.
"""

from __future__ import annotations

import datetime as dt
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


def order(
    events: list[StoredEvent], sort_by: paths.Path | None, direction: str, limit: int
) -> list[StoredEvent]:
    """The first ``limit`` events in list order."""
    newest_first = sorted(events, key=lambda e: (e.received_at, e.id), reverse=True)
    if sort_by is None:
        ranked = newest_first if direction == "desc" else newest_first[::-1]
        return ranked[:limit]
    keyed = [(e, paths.resolve(e.body, sort_by)) for e in newest_first]
    by_class: dict[int, list[tuple[StoredEvent, Any]]] = {}
    for event, value in keyed:
        by_class.setdefault(_class(value), []).append((event, value))
    ranked = []
    for cls in (NUMBERS, STRINGS, OTHER, ABSENT):
        group = by_class.get(cls, [])
        if cls in (NUMBERS, STRINGS):
            # Python's sort is stable, also reversed: equal values stay newest first.
            group = sorted(group, key=lambda pair: pair[1], reverse=direction == "desc")
        ranked.extend(event for event, _ in group)
        if len(ranked) >= limit:
            break
    return ranked[:limit]
