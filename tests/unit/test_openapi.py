"""openapi.yaml is valid OpenAPI 3.1 and names exactly the routes the services serve (README
"Across services")."""

from __future__ import annotations

import base64
import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from services.common.http import App

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SERVICES = {
    "clerk-sync": "services.clerk_sync.main",
    "ingest": "services.ingest.main",
    "query": "services.query.main",
}

# Harmless values: the main modules build their settings at import and connect to nothing.
IMPORT_ENV = {
    "GOOGLE_CLOUD_PROJECT": "inlet-openapi-test",
    "CLERK_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"w" * 32).decode(),
    "CLERK_ISSUER": "https://issuer.invalid",
    "CLERK_AUTHORIZED_PARTIES": "https://app.invalid",
    "SOURCE_KEK": "k1:" + base64.b64encode(b"k" * 32).decode(),
    "TASKS_QUEUE": "projects/p/locations/l/queues/q",
    "REFRESH_URL": "https://query.invalid/tasks/refresh",
    "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
    "TASKS_AUDIENCE": "inlet-tasks",
}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, App]]:
    """Each service's ``App``, imported under a harmless environment and then forgotten."""
    previous = {name: sys.modules.get(name) for name in SERVICES.values()}
    with pytest.MonkeyPatch.context() as env:
        for name, value in IMPORT_ENV.items():
            env.setenv(name, value)
        for name in ("TASKS_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "INLET_DEV_SIGNING_KEY"):
            env.delenv(name, raising=False)
        for name in SERVICES.values():
            sys.modules.pop(name, None)
        loaded = {svc: importlib.import_module(name).app for svc, name in SERVICES.items()}
    yield loaded
    for name, module in previous.items():  # leave sys.modules as other tests found it
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def template(path: str) -> str:
    """``/v1/sources/{source_id}`` as the spec spells it: ``/v1/sources/{sourceId}``."""
    return re.sub(r"\{(\w+)\}", lambda m: "{" + _camel(m[1]) + "}", path)


def served(apps: dict[str, App]) -> dict[tuple[str, str], set[str]]:
    """(METHOD, path template) → the services that serve it."""
    routes: dict[tuple[str, str], set[str]] = {}
    for service, app in apps.items():
        for route in app.routes:
            routes.setdefault((route.method, template(route.path)), set()).add(service)
    return routes


def documented(spec: dict) -> dict[tuple[str, str], dict]:
    """Operations of the services in the tree (``tags`` name the services serving each)."""
    return {
        (method.upper(), path): item[method]
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item and set(item[method]["tags"]) & set(SERVICES)
    }


def test_every_operation_is_tagged_with_known_services(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                tags = set(item[method]["tags"])
                assert tags and tags <= set(SERVICES), (method, path)


def test_route_templates_are_recovered_from_the_router():
    from services.common.http import route

    def handler(request):
        return None

    found = route("POST", "/v1/sources/{source_id}/rotate-secret", handler)
    assert template(found.path) == "/v1/sources/{sourceId}/rotate-secret"
    assert found.pattern.match("/v1/sources/src_1/rotate-secret")["source_id"] == "src_1"


def test_spec_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1.")
    validate(spec)


# Served only by a local stack (the development signing key and the emulator): documented,
# never served by a deployed service, so never by the apps imported here.
DEV_ONLY = {("POST", "/dev/console-session")}
# The console's static files and configuration touch no storage.
NO_STORAGE = {
    ("GET", "/health"),
    ("GET", "/console"),
    ("GET", "/console/config.json"),
    ("GET", "/console/{asset}"),
    *DEV_ONLY,
}


def test_every_route_is_documented_and_nothing_else(spec, apps):
    routes = set(served(apps))
    assert ("GET", "/health") in routes and ("POST", "/webhooks/clerk") in routes
    assert set(documented(spec)) == routes | DEV_ONLY


def test_the_development_sign_in_is_not_served_without_the_development_key(apps):
    assert not DEV_ONLY & set(served(apps))


def test_each_operation_is_tagged_with_the_services_that_serve_it(spec, apps):
    routes = served(apps)
    for key, operation in documented(spec).items():
        assert set(operation["tags"]) == routes.get(key, {"query"}), key


def test_each_path_lists_servers_of_the_services_that_serve_it(spec, apps):
    routes = served(apps)
    for (method, path), services in routes.items():
        described = " ".join(s["description"] for s in spec["paths"][path]["servers"])
        for service in SERVICES:
            assert (service in described) == (service in services), (method, path)


def test_every_error_answer_is_the_error_body(spec):
    responses = spec["components"]["responses"]
    for key, operation in documented(spec).items():
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            if "$ref" in answer:
                answer = responses[answer["$ref"].rsplit("/", 1)[1]]
            schema = answer["content"]["application/json"]["schema"]
            assert {"$ref": "#/components/schemas/Error"} in schema.get("allOf", [schema]), (
                key,
                status,
            )


def test_storage_unavailable_is_documented_with_retry_after_wherever_storage_is_used(spec):
    responses = spec["components"]["responses"]
    for key, operation in documented(spec).items():
        if key in NO_STORAGE:
            continue
        answer = operation["responses"]["503"]
        answer = responses[answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
        assert "Retry-After" in answer["headers"], key


def test_the_block_schemas_the_service_validates_with_are_the_documented_ones(spec):
    from services.query import schemas

    for name, schema in schemas.COMPONENTS.items():
        assert spec["components"]["schemas"][name] == schema, name
