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

SCHEMA = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "openapi.yaml")
TENANT = "user_schemathesis"
RETRIES_OF_503 = 3


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


@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_agrees_with_its_description(case, warm_stack, admin_key):
    stack = warm_stack
    services = [tag for tag in case.operation.definition.raw.get("tags", []) if tag]
    running = [service for service in services if service in stack.processes]
    if not running:
        pytest.skip(f"no running service serves {case.operation.label}")
    for service in running:
        authenticate(stack, case, admin_key)
        response = case.call(base_url=stack.url(service), timeout=30)
        for _ in range(RETRIES_OF_503):
            if response.status_code != 503 or "Retry-After" not in response.headers:
                break
            # The contract for a storage hiccup (a cold emulator on a busy machine): retry after
            # Retry-After, as Svix, partners and Cloud Tasks do. A lasting 503 still fails.
            time.sleep(min(int(response.headers["Retry-After"]), 5))
            response = case.call(base_url=stack.url(service), timeout=30)
        case.validate_response(response, transport_kwargs={"base_url": stack.url(service)})
