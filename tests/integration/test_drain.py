"""SIGTERM drains in-flight requests (docs/operations.md): Cloud Run stops instances this
way."""

from __future__ import annotations

import os
import signal
import threading
import time

from devstack.processes import free_port, start_service
from tests import partner


def test_sigterm_lets_an_in_flight_event_finish(clean, source, db):
    port = free_port()
    instance = start_service("ingest", port, clean.service_env(), clean.state_dir / "logs")
    url = f"http://127.0.0.1:{port}/webhooks/inbound/{source['id']}"
    answers = []
    firestore = clean.processes["firestore"]
    try:
        firestore.pause()  # the request will hang on its first Firestore call
        sender = threading.Thread(
            target=lambda: answers.append(partner.send(url, source["secret"], {"drain": 1}))
        )
        sender.start()
        time.sleep(1.0)
        os.killpg(instance.popen.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert instance.popen.poll() is None, "exited with a request in flight"
    finally:
        firestore.resume()
    sender.join(30)
    assert [a.status_code for a in answers] == [202]
    instance.popen.wait(30)
    events = db.collection("sources").document(source["id"]).collection("events")
    assert len(list(events.stream())) == 1
