"""Group commit (services/common/group_commit.py) against the emulator: creates that arrive
while a commit is in flight share the next RPC, and each gets its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

from services.common import context
from services.common.errors import StorageUnavailable
from services.common.group_commit import GroupCommit


class HeldClient:
    """The Firestore client, handed out only once ``release`` is called for the first commit:
    holds that commit in flight while others arrive."""

    def __init__(self, db, fail_second: bool = False) -> None:
        self.db = db
        self.gate = threading.Event()
        self.calls = 0
        self.fail_second = fail_second
        self.deadlines: list[float | None] = []  # the sender's storage deadline, per commit

    def __call__(self):
        self.calls += 1
        ctx = context.current()
        self.deadlines.append(None if ctx is None else ctx.storage_deadline)
        if self.calls == 1:
            assert self.gate.wait(10)
        if self.calls == 2 and self.fail_second:
            raise StorageUnavailable()
        return self.db


def run(group: GroupCommit, ref, data) -> object:
    try:
        return group.create(ref, data)
    except StorageUnavailable as err:
        return err


def in_threads(group: GroupCommit, held: HeldClient, first, later, deadlines=None) -> list:
    """``first`` (ref, data) commits alone and is held; ``later`` arrive meanwhile. Each call
    runs in a request context with its storage deadline from ``deadlines``, when given."""
    results: dict[int, tuple] = {}

    def call(n: int, ref, data) -> None:
        ctx = context.RequestContext(f"r{n}")
        ctx.storage_deadline = None if deadlines is None else deadlines[n]
        token = context.activate(ctx)
        try:
            results[n] = run(group, ref, data)
        finally:
            context.deactivate(token)

    threads = [threading.Thread(target=call, args=(0, *first))]
    threads[0].start()
    while held.calls < 1:
        time.sleep(0.01)
    for n, (ref, data) in enumerate(later, 1):
        threads.append(threading.Thread(target=call, args=(n, ref, data)))
        threads[-1].start()
    while group.queued < len(later):
        time.sleep(0.01)
    held.gate.set()
    for thread in threads:
        thread.join(15)
    return [results[n] for n in range(len(threads))]


@pytest.fixture
def docs(clean, db):
    return db.collection("group_commit")


def test_creates_arriving_during_a_commit_share_one_rpc_with_their_own_outcomes(docs, db):
    docs.document("taken").set({"old": True})
    held = HeldClient(db)
    group = GroupCommit(held)
    later = [
        (docs.document("a"), {"n": 1}),
        (docs.document("taken"), {"n": 2}),  # exists: refused alone
        (docs.document("b"), {"n": 3}),
        (docs.document("b"), {"n": 4}),  # the same document twice in one batch
        (docs.document("c"), {"n": 5}),
    ]
    outcomes = in_threads(group, held, (docs.document("first"), {"n": 0}), later)
    assert outcomes == [True, True, False, True, False, True]
    assert held.calls == 2  # two RPCs: the first alone, then the five together
    stored = {d.id: d.to_dict() for d in docs.stream()}
    assert stored == {
        "first": {"n": 0},
        "a": {"n": 1},
        "taken": {"old": True},
        "b": {"n": 3},
        "c": {"n": 5},
    }


def test_a_failed_batch_fails_each_of_its_creates_and_the_next_one_goes_through(docs, db):
    held = HeldClient(db, fail_second=True)
    group = GroupCommit(held)
    later = [(docs.document(name), {"n": 1}) for name in ("x", "y")]
    outcomes = in_threads(group, held, (docs.document("first"), {"n": 0}), later)
    assert outcomes[0] is True
    assert all(isinstance(o, StorageUnavailable) for o in outcomes[1:])
    assert outcomes[1] is not outcomes[2]  # each waiter raises its own copy
    assert run(group, docs.document("x"), {"n": 2}) is True and held.calls == 3
    assert {d.id for d in docs.stream()} == {"first", "x"}


def test_a_batch_ends_at_its_byte_bound_and_the_rest_go_in_the_next(docs, db):
    held = HeldClient(db)
    group = GroupCommit(held, max_bytes=150_000)
    body = b"x" * 60_000
    later = [(docs.document(f"big{n}"), {"body": body}) for n in range(4)]
    outcomes = in_threads(group, held, (docs.document("first"), {"n": 0}), later)
    assert outcomes == [True] * 5
    assert held.calls == 3  # the first alone, then two and two (each ~61 KB, at most 150 KB)
    assert len(list(docs.stream())) == 5


def test_a_shared_write_runs_within_the_latest_deadline_it_carries(docs, db):
    # A sender whose own budget is nearly spent must not fail the others' writes.
    held = HeldClient(db)
    group = GroupCommit(held)
    now = time.monotonic()
    first, second, third = now + 30, now + 5, now + 60
    later = [(docs.document(name), {"n": 1}) for name in ("a", "b")]
    outcomes = in_threads(
        group, held, (docs.document("first"), {"n": 0}), later, [first, second, third]
    )
    assert outcomes == [True, True, True]
    # The first commit ran within its sender's 30 s; the second, whichever of the others sent
    # it (one of them has 5 s left), within the latest of the two: 60 s.
    assert held.deadlines == [first, third]
