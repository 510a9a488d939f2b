"""The Firestore interceptor is really on the channel (issue 14, item 13).

``services/common/store.py`` installs it by overriding private methods of the Firestore client;
an upgrade that stopped calling them would silently drop every deadline and the RPC counts the
refusal tests rely on (a count that is always 0 would make them pass). These tests make real
calls against the emulator and check that each one was counted and bounded.
"""

from __future__ import annotations

import threading
import time

import pytest

from devstack.stack import PROJECT
from services.common import context, store
from services.common.errors import StorageUnavailable
from tests import partner
from tests.support import request_log


@pytest.fixture
def fresh_client(clean, monkeypatch):
    """This process's store client, built the way the services build theirs."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", clean.firestore_host)
    monkeypatch.setattr(store, "_client", store._client_class()(project=PROJECT))
    return store.client()


def in_request(work, deadline_s: float | None = None):
    """Run ``work`` inside a request context; return the context and what ``work`` returned."""
    ctx = context.RequestContext(request_id="test")
    if deadline_s is not None:
        ctx.storage_deadline = time.monotonic() + deadline_s
    token = context.activate(ctx)
    try:
        return ctx, work()
    finally:
        context.deactivate(token)


def test_every_rpc_is_counted_against_its_request(fresh_client):
    doc = fresh_client.collection("probe").document("one")
    ctx, _ = in_request(lambda: doc.set({"n": 1}))
    assert ctx.firestore_ops == 1
    ctx, snap = in_request(lambda: doc.get())
    assert ctx.firestore_ops == 1 and snap.get("n") == 1
    ctx, found = in_request(lambda: list(fresh_client.collection("probe").stream()))
    assert ctx.firestore_ops == 1 and len(found) == 1  # streaming calls too


def test_every_document_read_is_counted_against_its_request(fresh_client):
    probe = fresh_client.collection("reads")
    for n in range(5):
        probe.document(f"d{n}").set({"n": n})
    ctx, found = in_request(lambda: list(probe.where("n", ">=", 2).stream()))
    assert len(found) == 3 and (ctx.firestore_ops, ctx.firestore_reads) == (1, 3)
    refs = [probe.document("d0"), probe.document("d1"), probe.document("absent")]
    ctx, snaps = in_request(lambda: list(fresh_client.get_all(refs)))
    assert [s.exists for s in snaps].count(True) == 2 and ctx.firestore_reads == 2
    ctx, counted = in_request(lambda: probe.count().get())
    assert counted[0][0].value == 5 and ctx.firestore_reads == 0  # an aggregation, no document
    ctx, none = in_request(lambda: list(probe.where("n", ">", 9).stream()))
    assert none == [] and (ctx.firestore_ops, ctx.firestore_reads) == (1, 0)


def test_a_spent_storage_budget_stops_the_call_before_it_is_sent(fresh_client):
    doc = fresh_client.collection("probe").document("two")
    with pytest.raises(StorageUnavailable):
        in_request(lambda: doc.set({"n": 2}), deadline_s=-1)
    assert not doc.get().exists


def test_a_stalled_database_is_bounded_by_the_request_budget(clean, fresh_client):
    """With the emulator paused, a call without our deadline would wait forever."""
    doc = fresh_client.collection("probe").document("three")
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            in_request(lambda: doc.get(timeout=None), deadline_s=1.0)
            outcome.append(None)
        except BaseException as err:  # reported below
            outcome.append(err)

    emulator = clean.processes["firestore"]
    emulator.pause()
    try:
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(60)  # a bound for the test only, not a timing claim
    finally:
        emulator.resume()
    assert outcome, "the call was not bounded by the request's storage budget"
    assert isinstance(outcome[0], store.storage_errors())


def test_a_service_request_log_counts_its_firestore_rpcs(clean, source):
    answer = partner.send(source["url"], source["secret"])
    assert answer.status_code == 202
    # At least the event's commit and the refresh marker: a count of 0 means no interceptor.
    line = request_log(clean, "ingest", answer.headers["X-Request-Id"])
    assert line["firestoreOps"] >= 2
    assert line["firestoreReads"] >= 1  # the source's keys, read on this instance's first event
