"""Group commit: must-not-exist creates from concurrent requests share one Firestore RPC
(docs/performance.md "Group commit").

A request that finds no commit in flight becomes the sender. Requests arriving while a commit is
in flight queue up, and when it returns the first of them sends the whole queue (up to
``MAX_WRITES``) in one ``BatchWrite``. A sender waits for no timer unless other requests have
announced they are on their way (``arriving``: their signature verified, their body being
parsed): then it waits for them, at most ``WINDOW_S``, so they share its RPC. A lone request is
never delayed. On the emulator here one BatchWrite of 8 creates costs about a third of 8 single
ones, so the shared RPC is what lets an instance outrun one commit per event.

``BatchWrite`` applies each write on its own and reports a status per write: one event's
conflict (its document already exists) never fails another's create, unlike an atomic commit.
Each caller gets its own outcome, and returns only once its own write is durable.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime as dt
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from services.common import context

# Firestore's limits on one BatchWrite request: 500 writes, 10 MiB. A batch ends at either
# (bodies of up to 256 KiB: about 36 of the largest events fit).
MAX_WRITES = 500
MAX_BYTES = 9 * 1024 * 1024
# How long a sender waits for requests that announced they are coming (then it sends anyway).
WINDOW_S = 0.003
_ALREADY_EXISTS = 6  # google.rpc.Code


@dataclass(eq=False)
class _Arrival:
    """One request on its way to a create (``GroupCommit.arriving``)."""

    group: GroupCommit
    pending: bool = True


_arrival: contextvars.ContextVar[_Arrival | None] = contextvars.ContextVar(
    "group_commit_arrival", default=None
)


@dataclass(eq=False)
class _Create:
    ref: Any  # DocumentReference
    data: dict[str, Any]
    size: int  # an estimate of the encoded write, in bytes
    deadline: float | None  # the caller's storage deadline (monotonic), if it has one
    turn: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # woken to send the queue, not with an outcome
    created: bool | None = None  # None until the outcome is known
    error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            # Each waiter raises its own copy: one instance raised on many threads would share
            # (and grow) one traceback.
            raise copy.copy(self.error).with_traceback(None)
        assert self.created is not None
        return self.created


class GroupCommit:
    def __init__(
        self, client_factory, max_writes: int = MAX_WRITES, max_bytes: int = MAX_BYTES
    ) -> None:
        self._client = client_factory
        self._max = max_writes
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified when a coming create queues
        self._queue: list[_Create] = []
        self._coming = 0  # requests announced (``arriving``) and not queued or gone yet
        self._busy = False  # a commit is in flight, or its sender is handing over

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce that this request will most likely call ``create`` soon, so a sender may
        wait (at most ``WINDOW_S``) to take it along. Leaving without creating withdraws it."""
        arrival = _Arrival(self)
        with self._lock:
            self._coming += 1
        token = _arrival.set(arrival)
        try:
            yield
        finally:
            _arrival.reset(token)
            with self._lock:
                self._landed(arrival)

    def _landed(self, arrival: _Arrival | None) -> None:
        """(Under the lock.) An announced request queued its create or left."""
        if arrival is not None and arrival.group is self and arrival.pending:
            arrival.pending = False
            self._coming -= 1
            self._arrived.notify()

    @property
    def queued(self) -> int:
        """Creates waiting for the commit in flight to return."""
        with self._lock:
            return len(self._queue)

    def create(self, ref, data: dict[str, Any], retry=None) -> bool:
        """Create ``ref`` with ``data`` if it does not exist: True when this call created it,
        False when the document already existed. Storage errors raise, as a lone commit would."""
        ctx = context.current()
        mine = _Create(ref, data, _size(data), None if ctx is None else ctx.storage_deadline)
        with self._lock:
            self._queue.append(mine)
            self._landed(_arrival.get())
            leads = not self._busy
            self._busy = True
        if not leads:
            mine.turn.wait()
            if not mine.leads:
                return mine.outcome()
        self._send(retry)
        return mine.outcome()

    def _send(self, retry) -> None:
        with self._lock:
            deadline = time.monotonic() + WINDOW_S
            while self._coming and len(self._queue) < self._max:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            batch = self._take()
        ctx = context.current()
        own_deadline = None if ctx is None else ctx.storage_deadline
        if ctx is not None:
            # The sender's log line says how many writes its RPC carried. The RPC runs within
            # the latest deadline of those it carries: a sender whose own budget is nearly
            # spent must not turn the others' writes into 503s.
            ctx.log_fields["groupCommit"] = ctx.log_fields.get("groupCommit", 0) + len(batch)
            deadlines = [w.deadline for w in batch]
            ctx.storage_deadline = None if None in deadlines else max(deadlines)
        try:
            for waiting, code in zip(batch, self._commit(batch, retry), strict=True):
                if code == 0:
                    waiting.created = True
                elif code == _ALREADY_EXISTS:
                    waiting.created = False
                else:
                    waiting.error = _status_error(code)
        except BaseException as err:  # every waiter must wake, whatever went wrong
            for waiting in batch:
                if waiting.created is None:
                    waiting.error = err
        finally:
            if ctx is not None:
                ctx.storage_deadline = own_deadline
            with self._lock:
                if self._queue:  # those that arrived meanwhile: the first one sends them
                    self._queue[0].leads = True
                    self._queue[0].turn.set()
                else:
                    self._busy = False
            for waiting in batch:
                if not waiting.leads:
                    waiting.turn.set()

    def _take(self) -> list[_Create]:
        """(Under the lock.) The oldest queued creates that fit one request: at least one, at
        most ``max_writes``, and no more than ``max_bytes`` in all."""
        taken, size = 0, 0
        for waiting in self._queue[: self._max]:
            if taken and size + waiting.size > self._max_bytes:
                break
            taken, size = taken + 1, size + waiting.size
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    def _commit(self, batch: list[_Create], retry) -> list[int]:
        """Each create's status code. A BatchWrite may not write one document twice: concurrent
        repeats of one idempotency key send the first create, and the others already exist
        once it has (or share its error)."""
        client = self._client()
        senders: dict[str, _Create] = {}  # document path -> the create sent for it
        writes = []
        for waiting in batch:
            path = waiting.ref._document_path
            if path not in senders:
                senders[path] = waiting
                writes.append(create_write(path, waiting.data))
        # What BulkWriteBatch.commit sends, built from the raw messages above, through the same
        # client attributes it uses (tests/integration/test_group_commit.py runs them).
        request = _messages().BatchWriteRequest(database=client._database_string, writes=writes)
        kwargs = {} if retry is None else {"retry": retry}
        response = client._firestore_api.batch_write(
            request=request, metadata=client._rpc_metadata, **kwargs
        )
        sent = {path: s.code for path, s in zip(senders, response.status, strict=True)}
        codes = []
        for waiting in batch:
            path = waiting.ref._document_path
            code = sent[path]
            if code == 0 and senders[path] is not waiting:
                code = _ALREADY_EXISTS  # a repeat of the create that succeeded
            codes.append(code)
        return codes


def create_write(path: str, data: dict[str, Any]):
    """The raw protobuf ``Write`` that creates document ``path`` (a full resource name) with
    ``data``: the message the client's ``create`` builds, the same bytes. The client builds it
    through proto-plus wrappers, some 10 µs per value (168 µs for an event here); set in place,
    it takes 9 µs. Strings, bytes, numbers, booleans and plain datetimes are set directly; any other
    value (maps, arrays, references, subclasses) is encoded by the client itself. A transform
    (``SERVER_TIMESTAMP`` and the like) has no place in a group commit: TypeError."""
    pb = _messages()
    made = pb.Write()
    made.update.name = path
    fields = made.update.fields
    for name, value in data.items():
        kind = _SCALARS.get(type(value))
        if kind is not None:
            setattr(fields[name], kind, value)  # the map makes the Value in place
        elif type(value) is dt.datetime:
            # Naive reads as UTC, as the client's encoder reads it; a timedelta's seconds and
            # microseconds are never negative, so times before 1970 come out right too.
            since = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)) - _EPOCH
            stamp = fields[name].timestamp_value
            stamp.seconds = since.days * 86_400 + since.seconds
            stamp.nanos = since.microseconds * 1000
        else:
            fields[name].CopyFrom(pb.raw_value(pb.encode_value(value)))
    made.current_document.exists = False
    return made


@functools.cache
def _messages() -> SimpleNamespace:
    """The raw message classes behind the client's proto-plus types (imported on first use)."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import document, firestore, write

    return SimpleNamespace(
        raw_value=document.Value.pb,  # a proto-plus Value's own raw message
        Write=write.Write.pb(),
        BatchWriteRequest=firestore.BatchWriteRequest.pb(),
        encode_value=_helpers.encode_value,
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Exact types only: bool is an int, and a bytes subclass may carry a BSON subtype.
_SCALARS = {
    str: "string_value",
    bytes: "bytes_value",
    bool: "boolean_value",
    int: "integer_value",
    float: "double_value",
}


def _size(data: dict[str, Any]) -> int:
    """An upper estimate of a create's encoded size: its bytes and strings, plus overhead."""
    return 1024 + sum(len(v) for v in data.values() if isinstance(v, bytes | str))


def _status_error(code: int) -> BaseException:
    from google.api_core import exceptions as gexc

    return gexc.from_grpc_status(_grpc_code(code), "the batched write failed")


def _grpc_code(code: int):
    import grpc

    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
