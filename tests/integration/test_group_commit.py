"""Group commit (services/common/group_commit.py) against the emulator: creates that arrive
while a commit is in flight share the next RPC, and each gets its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

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

    def __call__(self):
        self.calls += 1
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


def in_threads(group: GroupCommit, held: HeldClient, first, later) -> list:
    """``first`` (ref, data) commits alone and is held; ``later`` arrive meanwhile."""
    results: dict[int, tuple] = {}

    def call(n: int, ref, data) -> None:
        results[n] = run(group, ref, data)

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
