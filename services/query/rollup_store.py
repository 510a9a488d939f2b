"""Rollups in Firestore: folding events in, trimming them out, reading a window (docs/query.md
"Rollups").

Layout, per source: ``sources/{id}/rollups/{tag}-{g}-{start}`` holds one bucket
``{f, g, t, s, c}`` (the field's tag, granularity, start in Unix seconds, exact sum as text,
count) and ``sources/{id}/rollup_state/state`` holds the rules version, each rolled-up field's
path, tag, cursor (the newest event folded, by receive time then id) and when it was last
queried, how many folded events are retained, and the tags whose buckets are left to delete.

Invariant: a field's buckets hold exactly the values of the retained events at or before its
cursor. Every change (a fold, a trim, a registration, a retirement) is one commit guarded by a
precondition on the state document's update time, so two refreshes running at once, or one
retried after a failure, never count an event twice: the loser re-reads and starts again from
the winner's state. A field gets a fresh tag whenever it is (re)registered, so buckets of a
retired field, or of rollups folded under older rules, are never read again; they are deleted
in bounded rounds.

Events are folded only once they are ``SETTLE`` old. Ingest stamps an event before its commit,
and every storage call of an ingest request ends within its storage budget, so a commit becomes
visible at most ``REQUEST_STORAGE_BUDGET_S`` after its stamp by the ingest instance's clock;
``SETTLE`` adds the clock skew allowed between instances on top, so no event can appear behind
a cursor. Events after the cursor are read directly by queries.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from services.common import source_store, store
from services.query import bodies, coercion, paths, rollups

STATE = "rollup_state"
# The rules values are counted by (module coercion). A state written under other rules is
# refolded from the retained events: a deployed Inlet corrects its rollups on upgrade.
RULES = 2
MAX_CLOCK_SKEW = dt.timedelta(seconds=5)  # between any two instances' clocks
SETTLE = dt.timedelta(seconds=20)
assert dt.timedelta(seconds=store.REQUEST_STORAGE_BUDGET_S) + MAX_CLOCK_SKEW < SETTLE
FOLD_CHUNK = 1000  # events listed per fold commit (then cut by bytes and bucket writes)
CHUNK_BYTES = 8 * 1024 * 1024  # stored body bytes one fold or trim commit may read
MAX_BUCKET_WRITES = 400  # a batch holds at most 500 writes
TRIM_CHUNK = 100
MAX_FIELDS = 32  # rolled-up fields per source besides the all-events count
RETIRE_AFTER = dt.timedelta(days=7)  # a field no query asked for this long stops being folded
TOUCH_EVERY = dt.timedelta(days=1)  # how stale a field's queriedAt may get before a query renews it
ORPHAN_BATCH = 400


@dataclass(frozen=True)
class Cursor:
    at: dt.datetime
    id: str

    def position(self) -> tuple[float, str]:
        return (self.at.timestamp(), self.id)


@dataclass
class FieldState:
    path: paths.Path | None
    tag: str
    cursor: Cursor | None = None
    queried_at: dt.datetime | None = None

    def position(self) -> tuple[float, str]:
        return self.cursor.position() if self.cursor else (float("-inf"), "")


def new_tag() -> str:
    return secrets.token_hex(4)


@dataclass
class State:
    fields: dict[str, FieldState]
    retained: int
    snapshot: Any  # the document read, for the precondition (and its read_time)
    orphans: list[str] = field(default_factory=list)
    stale: bool = False  # written under older rules: its buckets count nothing

    @classmethod
    def read(cls, source_id: str) -> State:
        snap = state_ref(source_id).get(retry=store.retry())
        raw = snap.to_dict() if snap.exists else {"rules": RULES}
        if raw.get("rules") != RULES:
            return cls._older(raw, snap)
        fields = {}
        for key, entry in (raw.get("fields") or {}).items():
            cursor = entry.get("cursor")
            fields[key] = FieldState(
                None if entry.get("path") is None else tuple(entry["path"]),
                entry["tag"],
                Cursor(cursor["at"], cursor["id"]) if cursor else None,
                entry.get("queriedAt"),
            )
        if rollups.ALL_EVENTS not in fields:
            fields[rollups.ALL_EVENTS] = FieldState(None, new_tag())
        return cls(fields, int(raw.get("retained", 0)), snap, list(raw.get("orphans") or []))

    @classmethod
    def _older(cls, raw: dict[str, Any], snap) -> State:
        """A state from before the current rules, as the fresh state that replaces it: the same
        fields, nothing folded, every old bucket to delete (old buckets were keyed by field)."""
        old = raw.get("fields") or {}
        fields = {rollups.ALL_EVENTS: FieldState(None, new_tag())}
        upgraded_at = dt.datetime.now(dt.UTC)  # its 7 days until retirement start now
        for key, entry in old.items():
            if key != rollups.ALL_EVENTS and entry.get("path") is not None:
                fields[key] = FieldState(tuple(entry["path"]), new_tag(), None, upgraded_at)
        orphans = [entry.get("tag", key) for key, entry in old.items()]
        orphans += list(raw.get("orphans") or [])
        return cls(fields, 0, snap, orphans, stale=True)

    @property
    def read_time(self):
        return self.snapshot.read_time

    def record(self) -> dict[str, Any]:
        return {
            "rules": RULES,
            "fields": {
                key: {
                    "path": None if f.path is None else list(f.path),
                    "tag": f.tag,
                    "cursor": {"at": f.cursor.at, "id": f.cursor.id} if f.cursor else None,
                    "queriedAt": f.queried_at,
                }
                for key, f in self.fields.items()
            },
            "retained": self.retained,
            "orphans": self.orphans,
        }


def state_ref(source_id: str):
    return source_store.source_ref(source_id).collection(STATE).document("state")


def _rollups(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.ROLLUPS)


def _events(source_id: str):
    return source_store.source_ref(source_id).collection(source_store.EVENTS)


def bucket_id(tag: str, granularity: str, start: int) -> str:
    return f"{tag}-{granularity}-{start}"


def _write_state(source_id: str, state: State, batch) -> None:
    """Add the guarded state write to ``batch``: conditional on the document as read."""
    db = store.client()
    if state.snapshot.exists:
        # update() replaces each top-level field whole, and takes the precondition set() lacks.
        option = db.write_option(last_update_time=state.snapshot.update_time)
        batch.update(state_ref(source_id), state.record(), option=option)
    else:
        batch.create(state_ref(source_id), state.record())


def _commit_batch(batch) -> bool:
    from google.api_core import exceptions as gexc

    try:
        batch.commit(retry=store.retry())
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
        return False  # another refresh changed the state first (the caller re-reads)
    return True


def _commit(source_id: str, state: State, changes: dict, extra) -> bool:
    """Write bucket changes, the new state and ``extra`` writes in one guarded batch.
    False when another refresh changed the state first (the caller re-reads)."""
    db = store.client()
    tags = {key: f.tag for key, f in state.fields.items()}
    rollup_refs = {
        slot: _rollups(source_id).document(bucket_id(tags[slot[0]], *slot[1:])) for slot in changes
    }
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
            _, granularity, start = slot
            record = {"f": tags[slot[0]], "g": granularity, "t": start}
            batch.set(ref, {**record, "s": coercion.encode(total.sum), "c": total.count})
    extra(batch)
    _write_state(source_id, state, batch)
    return _commit_batch(batch)


def _within_bytes(docs: list) -> list:
    """The longest prefix of ``docs`` whose stored bodies fit ``CHUNK_BYTES`` (at least one)."""
    taken, total = [], 0
    for doc in docs:
        size = doc.get("size") if _has(doc, "size") else 0
        total += int(size or 0)
        if taken and total > CHUNK_BYTES:
            break
        taken.append(doc)
    return taken


def _has(doc, name: str) -> bool:
    return name in (doc.to_dict() or {})


def _bodies(refs: list) -> dict[str, Any]:
    """The bodies of some events by id, decoded for values (numbers kept as their text)."""
    if not refs:
        return {}
    snaps = store.client().get_all(refs, field_paths=["body"], retry=store.retry())
    return {s.id: bodies.for_values(s.get("body")) for s in snaps if s.exists}


def upgrade_once(source_id: str) -> bool:
    """Replace a state written under older rules with a fresh one (the refolding then runs as
    for a new source). True when it did."""
    state = State.read(source_id)
    if not state.stale:
        return False
    batch = store.client().batch()
    _write_state(source_id, state, batch)
    return _commit_batch(batch)


def fold_once(source_id: str, now: dt.datetime) -> tuple[bool, bool]:
    """Fold the next chunk of settled events for the fields furthest behind.

    Returns (progressed, more): whether anything was committed, and whether a next call may
    find more to do (False once every field is caught up to the settle horizon)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    state = State.read(source_id)
    if state.stale:
        return upgrade_once(source_id), True
    lowest = min(f.position() for f in state.fields.values())
    group = {key: f for key, f in state.fields.items() if f.position() == lowest}
    cursor = next(iter(group.values())).cursor
    events = _events(source_id)
    query = events.where(filter=FieldFilter("receivedAt", "<", now - SETTLE))
    query = query.order_by("receivedAt").order_by("__name__")
    if cursor is not None:
        query = query.start_after({"receivedAt": cursor.at, "__name__": events.document(cursor.id)})
    listed = query.select(["receivedAt", "size"]).limit(FOLD_CHUNK)
    docs = _within_bytes(list(listed.stream(retry=store.retry())))
    if not docs:
        return False, False
    fields = {key: f.path for key, f in group.items()}
    needs_bodies = any(path is not None for path in fields.values())
    found = _bodies([d.reference for d in docs]) if needs_bodies else {}
    changes: dict = {}
    taken = 0
    for doc in docs:
        at = doc.get("receivedAt")
        step = rollups.deltas([(at.timestamp(), found.get(doc.id))], fields)
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
    if state.stale or excess <= 0 or all_cursor is None:
        return False, False
    events = _events(source_id)
    query = events.order_by("receivedAt").order_by("__name__").select(source_store.TRIMMED_READS)
    listed = list(query.limit(min(excess, TRIM_CHUNK)).stream(retry=store.retry()))
    docs = [
        d
        for d in _within_bytes(listed)
        if (d.get("receivedAt").timestamp(), d.id) <= all_cursor.position()
    ]  # never delete what the counts do not hold
    need = [
        d.reference
        for d in docs
        if any(
            f.path is not None and (d.get("receivedAt").timestamp(), d.id) <= f.position()
            for f in state.fields.values()
        )
    ]
    found = _bodies(need)
    changes: dict = {}
    trimmed = []
    for doc in docs:
        position = (doc.get("receivedAt").timestamp(), doc.id)
        fields = {
            key: f.path
            for key, f in state.fields.items()
            if f.cursor is not None and position <= f.position()
        }
        step = rollups.deltas([(position[0], found.get(doc.id))], fields, sign=-1)
        if trimmed and len(changes.keys() | step.keys()) + len(trimmed) > MAX_BUCKET_WRITES:
            break
        for slot, delta in step.items():
            changes.setdefault(slot, rollups.Totals()).merge(delta)
        trimmed.append(doc)
    if not trimmed:
        return False, False
    state.retained -= len(trimmed)
    now = dt.datetime.now(dt.UTC)

    def trim_events(batch) -> None:
        for doc in trimmed:
            source_store.trim_event(batch, doc, now)  # or a tombstone while its key is open

    committed = _commit(source_id, state, changes, trim_events)
    return committed, True


class FieldsFull(Exception):
    """Every rolled-up field slot of the source is taken."""


def register(
    source_id: str, path: paths.Path, now: dt.datetime, state: State | None = None
) -> bool:
    """Ask the refresh to roll up ``path`` from now on. True when this call added it (the
    caller schedules a refresh so it is folded promptly), False when it was already there or a
    concurrent change won (the next query or block write asks again). Raises ``FieldsFull``
    when the source already rolls up ``MAX_FIELDS`` fields."""
    state = state or State.read(source_id)
    key = paths.key(path)
    if key in state.fields or state.stale:
        return False
    if len(state.fields) > MAX_FIELDS:
        raise FieldsFull
    state.fields[key] = FieldState(path, new_tag(), None, now)
    batch = store.client().batch()
    _write_state(source_id, state, batch)
    return _commit_batch(batch)


def touch(source_id: str, key: str, state: State, now: dt.datetime) -> None:
    """Note that a query asked for a field (at most once a day per field: a write to the state
    makes a concurrent fold retry). Best effort: losing it only brings retirement closer."""
    entry = state.fields.get(key)
    if entry is None or state.stale:
        return
    if entry.queried_at is not None and entry.queried_at > now - TOUCH_EVERY:
        return
    entry.queried_at = now
    batch = store.client().batch()
    _write_state(source_id, state, batch)
    try:
        _commit_batch(batch)
    except store.storage_errors():
        pass


def retire_once(source_id: str, now: dt.datetime) -> bool:
    """Stop folding fields no query asked for in ``RETIRE_AFTER``; their buckets become
    orphans. True when it retired any."""
    state = State.read(source_id)
    if state.stale:
        return False
    cutoff = now - RETIRE_AFTER
    idle = [
        key
        for key, f in state.fields.items()
        if key != rollups.ALL_EVENTS and f.queried_at is not None and f.queried_at < cutoff
    ]
    if not idle:
        return False
    for key in idle:
        state.orphans.append(state.fields.pop(key).tag)
    batch = store.client().batch()
    _write_state(source_id, state, batch)
    return _commit_batch(batch)


def delete_orphans_once(source_id: str) -> tuple[bool, bool]:
    """Delete one batch of buckets no field reads any more. Returns (progressed, more)."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    state = State.read(source_id)
    if state.stale or not state.orphans:
        return False, False
    tag = state.orphans[0]
    query = _rollups(source_id).where(filter=FieldFilter("f", "==", tag)).select([])
    docs = list(query.limit(ORPHAN_BATCH).stream(retry=store.retry()))
    db = store.client()
    if docs:
        batch = db.batch()
        for doc in docs:
            batch.delete(doc.reference)
        batch.commit(retry=store.retry())  # nothing reads an orphan's buckets: no guard needed
        return True, True
    state.orphans.remove(tag)
    batch = db.batch()
    _write_state(source_id, state, batch)
    return _commit_batch(batch), bool(state.orphans)


def read_window(
    source_id: str, tag: str, start_s: int, cursor: Cursor, read_time
) -> rollups.Totals:
    """The folded totals of a field from ``start_s`` on, as of ``read_time``: at most ~90
    buckets, fetched by id in one batch (no range query, whose cost could grow with the number
    of buckets stored)."""
    slots = rollups.buckets_from(start_s, cursor.at.timestamp())
    totals = rollups.Totals()
    if not slots:
        return totals
    refs = [_rollups(source_id).document(bucket_id(tag, g, t)) for g, t in slots]
    snaps = store.client().get_all(
        refs, field_paths=["s", "c"], retry=store.retry(), read_time=read_time
    )
    for snap in snaps:
        if snap.exists:
            totals.merge(rollups.Totals(coercion.decode(snap.get("s")), int(snap.get("c"))))
    return totals


def rebuild(source_id: str) -> State:
    """Replace the source's rollup state by a fresh one: the same fields, each under a new tag
    with no cursor, every old tag an orphan whose buckets are deleted in bounded rounds. One
    guarded commit; the refresh then refolds the retained events as for a new source, and
    queries read the events directly until each field's cursor passes them (docs/query.md
    "Rollups")."""
    from services.common.contention import Contended, retry_contended

    def attempt() -> State:
        state = State.read(source_id)
        if state.stale:  # already a fresh state over an older one: _older did the replacing
            fresh = state
        else:
            fields = {rollups.ALL_EVENTS: FieldState(None, new_tag())}
            for key, entry in state.fields.items():
                if key != rollups.ALL_EVENTS:
                    fields[key] = FieldState(entry.path, new_tag(), None, entry.queried_at)
            orphans = [entry.tag for entry in state.fields.values()] + state.orphans
            fresh = State(fields, 0, state.snapshot, orphans)
        batch = store.client().batch()
        _write_state(source_id, fresh, batch)
        # Invariant: a field's buckets hold exactly its events up to its cursor; the new tags
        # have no buckets and no cursor, and a fold that read the old state cannot commit.
        if not _commit_batch(batch):
            raise Contended
        return fresh

    return retry_contended(attempt, message="the rollups are being changed, retry")


def progress(source_id: str) -> dict[str, Any]:
    """How far folding has come: events folded into the all-events count of the retained ones,
    each field's cursor (the receive time it has folded up to), and old tags left to delete."""
    state = State.read(source_id)
    (count,) = source_store.stored_events(source_id).count().get(retry=store.retry())[0]
    return {
        "folded": 0 if state.stale else state.retained,
        "retained": int(count.value),
        "fields": [
            {
                "field": None if entry.path is None else paths.render(entry.path),
                "foldedUpTo": None
                if entry.cursor is None or state.stale
                else entry.cursor.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            }
            for entry in state.fields.values()
        ],
        "orphansLeft": len(state.orphans),
    }


def read_series(
    source_id: str, tag: str, start_s: int, bucket_s: int, cursor: Cursor, read_time
) -> dict[int, rollups.Totals]:
    """The folded totals of a field from ``start_s`` on, per point of ``bucket_s`` seconds, as
    of ``read_time``.

    One range query per granularity of ``rollups.series_spans`` over bucket ids
    (``{tag}-{g}-{start}``): a bucket's start has ten digits from 2001 to 2286, so the ids'
    order is time order, and a range costs one read per stored bucket in it (empty minutes cost
    nothing): at most 1,441 for the largest series a query may ask (``catalog.MAX_POINTS``)."""
    totals: dict[int, rollups.Totals] = {}
    until = cursor.at.timestamp()
    for span in rollups.series_spans(start_s, bucket_s):
        size = rollups.SECONDS[span.granularity]
        high = rollups.bucket(until, span.granularity) + size
        if span.high is not None:
            high = min(high, span.high)
        if span.low >= high:
            continue
        buckets = _rollups(source_id)
        query = (
            buckets.order_by("__name__")
            .start_at({"__name__": buckets.document(bucket_id(tag, span.granularity, span.low))})
            .end_before({"__name__": buckets.document(bucket_id(tag, span.granularity, high))})
            .select(["t", "s", "c"])
        )
        for snap in query.stream(retry=store.retry(), read_time=read_time):
            at = int(snap.get("t"))
            found = rollups.Totals(coercion.decode(snap.get("s")), int(snap.get("c")))
            totals.setdefault(at // bucket_s * bucket_s, rollups.Totals()).merge(found)
    return totals
