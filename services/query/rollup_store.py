"""Rollups in Firestore: folding events in, trimming them out, reading a window (README "query").

Layout, per source: ``sources/{id}/rollups/{field}-{g}-{start}`` holds one bucket
``{f, g, t, s, c}`` (field key, granularity, start in Unix seconds, exact sum as text, count) and
``sources/{id}/rollup_state/state`` holds, for each rolled-up field, its path and its cursor (the
newest event folded, by receive time then id), plus how many folded events are retained.

Invariant: a bucket holds exactly the values of the retained events at or before its field's
cursor. Every change (a fold, a trim) is one batch that writes the buckets, moves the cursor or
deletes the trimmed events, and is guarded by a precondition on the state document's update
time, so two refreshes running at once, or one retried after a failure, never count an event
twice: the loser re-reads and starts again from the winner's state.

Events are folded only once they are ``SETTLE`` old: ingest stamps an event before committing
it, and a commit lands within one storage deadline of the stamp, so no event can later appear
behind a cursor. Events after the cursor are read directly by queries.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from services.common import source_store, store
from services.query import coercion, paths, rollups

STATE = "rollup_state"
SETTLE = dt.timedelta(seconds=10)
FOLD_CHUNK = 1000  # events read per fold commit (then cut at MAX_BUCKET_WRITES)
MAX_BUCKET_WRITES = 400  # a batch holds at most 500 writes
TRIM_CHUNK = 100
MAX_FIELDS = 16  # rolled-up fields per source besides the all-events count


@dataclass(frozen=True)
class Cursor:
    at: dt.datetime
    id: str

    def position(self) -> tuple[float, str]:
        return (self.at.timestamp(), self.id)


@dataclass
class FieldState:
    path: paths.Path | None
    cursor: Cursor | None


@dataclass
class State:
    fields: dict[str, FieldState]
    retained: int
    snapshot: Any  # the document read, for the precondition

    @classmethod
    def read(cls, source_id: str) -> State:
        snap = state_ref(source_id).get(retry=store.retry())
        raw = snap.to_dict() if snap.exists else {}
        fields = {}
        for key, entry in (raw.get("fields") or {}).items():
            cursor = entry.get("cursor")
            fields[key] = FieldState(
                None if entry.get("path") is None else tuple(entry["path"]),
                Cursor(cursor["at"], cursor["id"]) if cursor else None,
            )
        fields.setdefault(rollups.ALL_EVENTS, FieldState(None, None))
        return cls(fields, int(raw.get("retained", 0)), snap)

    def record(self) -> dict[str, Any]:
        return {
            "fields": {
                key: {
                    "path": None if f.path is None else list(f.path),
                    "cursor": {"at": f.cursor.at, "id": f.cursor.id} if f.cursor else None,
                }
                for key, f in self.fields.items()
            },
            "retained": self.retained,
        }


def state_ref(source_id: str):
    return source_store.source_ref(source_id).collection(STATE).document("state")


def _rollups(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.ROLLUPS)


def _events(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.EVENTS)


def bucket_id(key: str, granularity: str, start: int) -> str:
    return f"{key}-{granularity}-{start}"


def decode_body(raw: Any) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None  # ingest stores strict JSON only; anything else counts nothing


def _commit(source_id: str, state: State, changes: dict, extra) -> bool:
    """Write bucket changes, the new state and ``extra`` writes in one guarded batch.
    False when another refresh changed the state first (the caller re-reads)."""
    from google.api_core import exceptions as gexc

    db = store.client()
    rollup_refs = {k: _rollups(source_id).document(bucket_id(*k)) for k in changes}
    current = {}
    if rollup_refs:
        for snap in db.get_all(list(rollup_refs.values()), retry=store.retry()):
            if snap.exists:
                current[snap.id] = snap.to_dict()
    batch = db.batch()
    for slot, delta in changes.items():
        ref = rollup_refs[slot]
        found = current.get(ref.id)
        total = rollups.Totals(
            coercion.decode(found["s"]) if found else coercion.decode("0"),
            int(found["c"]) if found else 0,
        )
        total.merge(delta)
        if total.count == 0:
            batch.delete(ref)
        else:
            key, granularity, start = slot
            record = {"f": key, "g": granularity, "t": start}
            batch.set(ref, {**record, "s": coercion.encode(total.sum), "c": total.count})
    extra(batch)
    if state.snapshot.exists:
        # update() replaces each top-level field whole, and takes the precondition set() lacks.
        option = db.write_option(last_update_time=state.snapshot.update_time)
        batch.update(state_ref(source_id), state.record(), option=option)
    else:
        batch.create(state_ref(source_id), state.record())
    try:
        batch.commit(retry=store.retry())
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
        return False
    return True


def fold_once(source_id: str, now: dt.datetime) -> tuple[bool, bool]:
    """Fold the next chunk of settled events for the fields furthest behind.

    Returns (progressed, more): whether anything was committed, and whether a next call may
    find more to do (False once every field is caught up to the settle horizon)."""
    state = State.read(source_id)
    lowest = min(
        f.cursor.position() if f.cursor else (float("-inf"), "") for f in state.fields.values()
    )
    group = {
        key: f
        for key, f in state.fields.items()
        if (f.cursor.position() if f.cursor else (float("-inf"), "")) == lowest
    }
    cursor = next(iter(group.values())).cursor
    from google.cloud.firestore_v1.base_query import FieldFilter

    events = _events(source_id)
    query = events.where(filter=FieldFilter("receivedAt", "<", now - SETTLE))
    query = query.order_by("receivedAt").order_by("__name__")
    if cursor is not None:
        query = query.start_after({"receivedAt": cursor.at, "__name__": events.document(cursor.id)})
    docs = list(query.select(["receivedAt", "body"]).limit(FOLD_CHUNK).stream(retry=store.retry()))
    if not docs:
        return False, False
    fields = {key: f.path for key, f in group.items()}
    changes: dict = {}
    taken = 0
    for doc in docs:
        at = doc.get("receivedAt")
        step = rollups.deltas([(at.timestamp(), decode_body(doc.get("body")))], fields)
        if taken and len(changes.keys() | step.keys()) > MAX_BUCKET_WRITES:
            break
        for slot, delta in step.items():
            changes.setdefault(slot, rollups.Totals()).merge(delta)
        taken += 1
    last = docs[taken - 1]
    for key in group:
        state.fields[key].cursor = Cursor(last.get("receivedAt"), last.id)
    if rollups.ALL_EVENTS in group:
        state.retained += taken
    committed = _commit(source_id, state, changes, lambda batch: None)
    return committed, True


def trim_once(source_id: str, retention: int) -> tuple[bool, bool]:
    """Delete the oldest folded events beyond ``retention`` and take them out of the rollups.

    Returns (progressed, more) like ``fold_once``."""
    state = State.read(source_id)
    excess = state.retained - retention
    all_cursor = state.fields[rollups.ALL_EVENTS].cursor
    if excess <= 0 or all_cursor is None:
        return False, False
    events = _events(source_id)
    query = events.order_by("receivedAt").order_by("__name__").select(["receivedAt", "body"])
    docs = list(query.limit(min(excess, TRIM_CHUNK)).stream(retry=store.retry()))
    changes: dict = {}
    trimmed = []
    for doc in docs:
        position = (doc.get("receivedAt").timestamp(), doc.id)
        if position > all_cursor.position():
            break  # not folded yet: never delete what the counts do not hold
        fields = {
            key: f.path
            for key, f in state.fields.items()
            if f.cursor is not None and position <= f.cursor.position()
        }
        body = decode_body(doc.get("body"))
        step = rollups.deltas([(position[0], body)], fields, sign=-1)
        if trimmed and len(changes.keys() | step.keys()) + len(trimmed) > MAX_BUCKET_WRITES:
            break
        for slot, delta in step.items():
            changes.setdefault(slot, rollups.Totals()).merge(delta)
        trimmed.append(doc.reference)
    if not trimmed:
        return False, False
    state.retained -= len(trimmed)

    def delete_events(batch) -> None:
        for ref in trimmed:
            batch.delete(ref)

    committed = _commit(source_id, state, changes, delete_events)
    return committed, True


def register(source_id: str, path: paths.Path, state: State | None = None) -> bool:
    """Ask the refresh to roll up ``path`` from now on; True when it is (or already was)."""
    from google.api_core import exceptions as gexc

    state = state or State.read(source_id)
    key = paths.key(path)
    if key in state.fields:
        return True
    if len(state.fields) > MAX_FIELDS:
        return False
    state.fields[key] = FieldState(path, None)
    db = store.client()
    try:
        if state.snapshot.exists:
            option = db.write_option(last_update_time=state.snapshot.update_time)
            state_ref(source_id).update(state.record(), option=option, retry=store.retry())
        else:
            state_ref(source_id).create(state.record(), retry=store.retry())
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
        return False  # a refresh moved on meanwhile; the next query or block write asks again
    return True


def read_window(source_id: str, key: str, start_s: int, cursor: Cursor) -> rollups.Totals:
    """The folded totals of ``key`` from ``start_s`` on: at most ~90 buckets, fetched by id in
    one batch (no range query, whose cost could grow with the number of buckets stored)."""
    slots = rollups.buckets_from(start_s, cursor.at.timestamp())
    totals = rollups.Totals()
    if not slots:
        return totals
    refs = [_rollups(source_id).document(bucket_id(key, g, t)) for g, t in slots]
    for snap in store.client().get_all(refs, field_paths=["s", "c"], retry=store.retry()):
        if snap.exists:
            totals.merge(rollups.Totals(coercion.decode(snap.get("s")), int(snap.get("c"))))
    return totals
