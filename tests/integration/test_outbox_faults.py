"""The outbox under storage faults, through its public functions (issue 14, item 9).

These run ``outbox.schedule_refresh`` in the test process with its own Firestore and Cloud Tasks
clients, pointed at the session's emulators through a proxy that can lose answers, or at a
port where nothing listens.
"""

from __future__ import annotations

import socket
import threading

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from devstack.stack import PROJECT
from services.common import outbox, store, tasks
from services.common.config import Env, TaskSettings
from services.common.errors import StorageUnavailable
from tests.support import CuttableProxy, refreshes, wait_for

BOTH_DOWN = "src_" + "b" * 20


def dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens


@pytest.fixture
def clients(clean, monkeypatch):
    """Point this process's Firestore and Tasks clients where a test says, and restore them."""

    def use(firestore_host: str, tasks_host: str) -> TaskSettings:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)
        monkeypatch.setattr(store, "_client", store._client_class()(project=PROJECT))
        settings = TaskSettings.from_env(
            Env({**clean.service_env(), "TASKS_EMULATOR_HOST": tasks_host})
        )
        monkeypatch.setattr(tasks, "_client", tasks._new_client(settings))
        return settings

    monkeypatch.setattr(outbox, "_recent", {})
    return use


def test_a_marker_create_retried_after_it_committed_still_enqueues(clean, clients, db):
    proxy = CuttableProxy(clean.firestore_host)
    try:
        settings = clients(proxy.address, clean.tasks_host)
        store.client().collection("warm").document("up").get()  # the connection is up
        source_id = "src_" + "a" * 20  # well-formed: the refresh serves it (as a deleted source)
        proxy.swallow_answers()
        done = threading.Event()
        errors: list[BaseException] = []

        def schedule() -> None:
            try:
                outbox.schedule_refresh(settings, source_id, "event")
            except BaseException as err:  # reported below
                errors.append(err)
            finally:
                done.set()

        threading.Thread(target=schedule, daemon=True).start()
        markers = db.collection("refresh_pending")
        assert wait_for(
            lambda: list(markers.where(filter=FieldFilter("sourceId", "==", source_id)).stream())
        )
        proxy.cut()  # the create committed; its answer is lost; the client retries
        assert done.wait(30) and not errors, errors
    finally:
        proxy.close()
    # The retry met its own marker: it enqueued, rather than leaving the bucket to nobody.
    assert wait_for(lambda: refreshes(clean, source_id), 30)
    # and the refresh it enqueued, once served, completed the marker.
    owned = markers.where(filter=FieldFilter("sourceId", "==", source_id))
    assert wait_for(lambda: not list(owned.stream()))


def test_when_neither_marker_nor_task_is_recorded_the_caller_is_told_to_retry(clean, clients, db):
    settings = clients(dead_address(), dead_address())
    with pytest.raises(StorageUnavailable):
        outbox.schedule_refresh(settings, BOTH_DOWN, "event")
    # The caller answers 503; its retry, once storage is back, schedules the refresh.
    settings = clients(clean.firestore_host, clean.tasks_host)
    outbox.schedule_refresh(settings, BOTH_DOWN, "event")
    assert wait_for(lambda: refreshes(clean, BOTH_DOWN), 30)
