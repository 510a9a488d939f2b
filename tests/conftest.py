"""Fixtures shared by the whole suite.

Integration tests run against one local stack per test session: the real Firestore emulator,
the Cloud Tasks emulator, the development JWT issuer and every service under functions-framework,
on free loopback ports. Firestore is emptied before each integration test.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from devstack.stack import PROJECT, LocalStack, Ports


def pytest_configure(config) -> None:
    """A SIGTERM (a CI timeout, a Ctrl-C through make) stops the suite like Ctrl-C does, so the
    session fixtures still stop the emulators and services they started."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """Refresh tasks go through the tasks emulator to the stack's real query service."""
    local = LocalStack(
        ports=Ports.free(),
        state_dir=tmp_path_factory.mktemp("inlet"),
        tasks_max_retries=50,
        retry_ports=True,
    )
    local.start()
    os.environ["FIRESTORE_EMULATOR_HOST"] = local.firestore_host
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def db(stack):
    from google.cloud import firestore

    return firestore.Client(project=PROJECT)


@pytest.fixture
def clean(stack):
    """An empty database for one test."""
    stack.reset_firestore()
    return stack


@pytest.fixture
def ingest_url(clean) -> str:
    return clean.url("ingest")


@pytest.fixture
def query_url(clean) -> str:
    return clean.url("query")


@pytest.fixture
def tenant(clean, ingest_url):
    """A user tenant's view of the sources API."""
    from tests.partner import SourceAPI

    return SourceAPI(ingest_url, clean.issuer.session_token("user_alice"))


@pytest.fixture
def source(tenant) -> dict:
    """A fresh source of ``tenant``, with its secret."""
    created = tenant.create("Orders")
    assert created.status_code == 201, created.text
    return created.json()


@pytest.fixture
def dashboard(clean, tenant, query_url):
    """``tenant``'s view of the query API (same token)."""
    from tests.partner import QueryAPI

    return QueryAPI(query_url, tenant.auth["Authorization"].removeprefix("Bearer "))


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory):
    """`make dev`'s own program in a checkout of its own (tests/dev_stack.py), for the tests that
    use the stack through `.inlet/dev.env` and the Makefile as the README tells a newcomer."""
    from tests.dev_stack import DevStack

    running = DevStack(tmp_path_factory.mktemp("make-dev")).start()
    try:
        yield running
    finally:
        running.stop()
