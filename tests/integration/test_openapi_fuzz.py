"""openapi.yaml and the services agree, checked by Schemathesis against the live stack (README
"Across services").

Every operation openapi.yaml lists is generated from its description — positive and negative
examples, its coverage and fuzzing phases — and sent to the service its tag names, with every
check Schemathesis has (the CLI's ``--checks all``): no 5xx, status codes, content types,
response schemas and headers the description allows, schema-valid requests accepted, invalid ones
refused, auth enforced, 405s that carry ``Allow``. A route added to openapi.yaml is covered
without touching this file. Examples per operation are bounded so the suite stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from devstack.processes import free_port, start_service
from tests.support import FakeClerkAPI

SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "openapi.yaml")
TENANT = "user_schemathesis"
RETRIES_OF_503 = 3
CLERK_KEY = "sk_test_schemathesis_0123456789"


def authenticate(stack, case, admin_key: str) -> None:
    """Give a generated bearer header a valid token for the operation's security scheme, as a
    real caller would send. A case generated without one (testing that auth is enforced) or
    with another scheme keeps what it has."""
    given = (case.headers or {}).get("Authorization")
    if not isinstance(given, str) or not given.startswith("Bearer "):
        return
    schemes = {
        name for entry in case.operation.definition.raw.get("security") or [] for name in entry
    }
    if "taskOidc" in schemes:
        case.headers["Authorization"] = f"Bearer {stack.issuer.task_token()}"
    elif "clerkSession" in schemes:
        case.headers["Authorization"] = f"Bearer {stack.issuer.session_token(TENANT)}"
    elif "adminKey" in schemes:
        case.headers["Authorization"] = f"Bearer {admin_key}"


@pytest.fixture(scope="module")
def admin_key(warm_stack) -> str:
    """A real admin API key, for the operations only admin keys may call."""
    from services.common import admin_keys

    _, token = admin_keys.create("schemathesis")
    return token


@pytest.fixture(scope="module")
def warm_stack(stack):
    """A freshly started emulator can miss the 5 s storage deadline on its first writes."""
    token = stack.issuer.session_token(TENANT)
    for _ in range(10):
        answer = requests.post(
            f"{stack.url('ingest')}/v1/sources",
            json={"label": "warm-up"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if answer.status_code == 201:
            break
    return stack


@pytest.fixture(scope="module")
def base_urls(warm_stack, tmp_path_factory):
    """Where each service is called: the session's, except a clerk-sync run here with a
    loopback Clerk (empty), so ``/tasks/reconcile`` runs for real instead of answering 501
    as the session's keyless clerk-sync does (tests/integration/test_reconcile_task.py)."""
    clerk = FakeClerkAPI(CLERK_KEY).start()
    env = {**warm_stack.service_env(), "CLERK_SECRET_KEY": CLERK_KEY, "CLERK_API_URL": clerk.url}
    port = free_port()
    process = start_service("clerk-sync", port, env, tmp_path_factory.mktemp("fuzz-clerk-sync"))
    urls = {name: warm_stack.url(name) for name in ("ingest", "query")}
    yield {**urls, "clerk-sync": f"http://127.0.0.1:{port}"}
    process.stop()
    clerk.stop()


@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_agrees_with_its_description(case, warm_stack, admin_key, base_urls):
    stack = warm_stack
    services = [tag for tag in case.operation.definition.raw.get("tags", []) if tag]
    running = [service for service in services if service in stack.processes]
    if not running:
        pytest.skip(f"no running service serves {case.operation.label}")
    for service in running:
        authenticate(stack, case, admin_key)
        response = case.call(base_url=base_urls[service], timeout=30)
        for _ in range(RETRIES_OF_503):
            if response.status_code != 503 or "Retry-After" not in response.headers:
                break
            # The contract for a storage hiccup (a cold emulator on a busy machine): retry after
            # Retry-After, as Svix, partners and Cloud Tasks do. A lasting 503 still fails.
            time.sleep(min(int(response.headers["Retry-After"]), 5))
            response = case.call(base_url=base_urls[service], timeout=30)
        case.validate_response(response, transport_kwargs={"base_url": base_urls[service]})
