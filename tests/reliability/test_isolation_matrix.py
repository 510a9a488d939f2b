"""Tenant isolation, generated from the services' own route lists (docs/ingest.md to 4).

Three tenants, two organizations and one personal user, each own a source and a block bound to
it. Every ``/v1`` route of every service is called by every other tenant on another tenant's
resources: each such call is a 404 (the resource's existence is not disclosed) and changes
nothing; the admin-only user routes are a 403 for every session. The routes come from the
routers themselves, and a path parameter this matrix does not know fails the test, so a new
route cannot escape it.
"""

from __future__ import annotations

import importlib
import itertools
import sys

import pytest
import requests

from tests.unit.test_openapi import IMPORT_ENV, SERVICES

TENANTS = {
    # name: (user, active organization, role)
    "org-a": ("user_ann", "org_a", "admin"),
    "org-b": ("user_bob", "org_b", "admin"),
    "personal": ("user_cy", None, "admin"),
}
# Deployment-wide reads for admin API keys only (docs/query.md): a session is refused outright.
ADMIN_ONLY = ("/v1/users",)


def v1_routes() -> list[tuple[str, str, str]]:
    """(service, method, path template) of every ``/v1`` route, read from the routers."""
    previous = {name: sys.modules.get(name) for name in SERVICES.values()}
    found = []
    with pytest.MonkeyPatch.context() as env:
        for name, value in IMPORT_ENV.items():
            env.setenv(name, value)
        for name in ("TASKS_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "INLET_DEV_SIGNING_KEY"):
            env.delenv(name, raising=False)
        for service, module in SERVICES.items():
            sys.modules.pop(module, None)
            app = importlib.import_module(module).app
            found += [(service, r.method, r.path) for r in app.routes if r.path.startswith("/v1/")]
    for name, module in previous.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    return found


ROUTES = v1_routes()
RESOURCE_ROUTES = [r for r in ROUTES if "{" in r[2]]
KNOWN_PARAMETERS = {"{source_id}", "{block_id}", "{user_id}"}


def is_admin_only(path: str) -> bool:
    return path.startswith(ADMIN_ONLY)


def block_body(source_id: str) -> dict:
    return {
        "binding": {
            "dataSourceId": source_id,
            "queryConfig": {"type": "webhook.aggregate", "params": {"window": "1h", "op": "count"}},
            "projection": {"fields": {"value": {"source": "value", "format": "integer"}}},
        },
        "widget": {"template": "metric", "data": {"value": 0}},
    }


def body_for(method: str, path: str, owner: dict) -> dict | None:
    """A body each route accepts from its owner, so a refusal of anyone else is about
    ownership only."""
    if path.endswith("/rotate-secret"):
        return {"graceSeconds": 0}
    if path.endswith("/schema") and method == "PUT":
        return {"schema": {"type": "object"}}
    if path.endswith("/query"):
        return {"type": "webhook.latest", "params": {}}
    if path.endswith("/quarantine/replay"):
        return {}  # every kept event (there are none): a 200 for the owner
    if method == "PUT" and path.startswith("/v1/blocks/"):
        return block_body(owner["source"]["id"])
    return {} if method in {"POST", "PUT", "PATCH"} else None


def call(stack, service: str, method: str, path: str, auth: dict, owner: dict):
    url = stack.url(service) + (
        path.replace("{source_id}", owner["source"]["id"])
        .replace("{block_id}", owner["block"])
        .replace("{user_id}", owner["user"])
    )
    body = body_for(method, path, owner)
    return requests.request(method, url, json=body, headers=auth, timeout=30)


def test_the_matrix_knows_every_path_parameter():
    assert RESOURCE_ROUTES, "no resource routes found: the route list moved"
    assert {service for service, _, _ in ROUTES} == {"ingest", "query"}
    for service, method, path in RESOURCE_ROUTES:
        params = {part for part in path.split("/") if part.startswith("{")}
        assert params <= KNOWN_PARAMETERS, f"{method} {path} ({service}): unknown parameter"


@pytest.fixture
def tenants(clean) -> dict[str, dict]:
    """Each tenant's token headers, one source (with a schema) and one block of its own."""
    made = {}
    for name, (user, org, role) in TENANTS.items():
        auth = {"Authorization": f"Bearer {clean.issuer.session_token(user, org=org, role=role)}"}
        created = requests.post(
            f"{clean.url('ingest')}/v1/sources", json={"label": name}, headers=auth, timeout=30
        )
        assert created.status_code == 201, created.text
        schema = requests.put(  # so that reading it is a 200 for its owner
            f"{clean.url('ingest')}/v1/sources/{created.json()['id']}/schema",
            json={"schema": {"type": "object"}},
            headers=auth,
            timeout=30,
        )
        assert schema.status_code == 200, schema.text
        block = f"block-{name}"
        put = requests.put(
            f"{clean.url('query')}/v1/blocks/{block}",
            json=block_body(created.json()["id"]),
            headers=auth,
            timeout=30,
        )
        assert put.status_code == 201, put.text
        made[name] = {"auth": auth, "source": created.json(), "block": block, "user": user}
    return made


def stored_state(db, tenant: dict) -> tuple:
    source = db.collection("sources").document(tenant["source"]["id"]).get().to_dict()
    blocks = sorted(
        (b.id, b.get("binding"), b.get("widget")) for b in db.collection("blocks").stream()
    )
    return source, blocks


@pytest.mark.parametrize(("service", "method", "path"), RESOURCE_ROUTES)
def test_another_tenants_resource_is_404_on_every_route(clean, db, tenants, service, method, path):
    for caller, owner in itertools.permutations(tenants, 2):
        before = stored_state(db, tenants[owner])
        answer = call(clean, service, method, path, tenants[caller]["auth"], tenants[owner])
        expected = 403 if is_admin_only(path) else 404
        assert answer.status_code == expected, (caller, owner, answer.status_code, answer.text)
        assert answer.json()["error"]["code"]
        assert stored_state(db, tenants[owner]) == before, (caller, owner, method, path)


@pytest.mark.parametrize(
    ("service", "method", "path"), [r for r in RESOURCE_ROUTES if not is_admin_only(r[2])]
)
def test_the_owner_reaches_its_own_resource_on_every_route(clean, tenants, service, method, path):
    """The other half of the matrix: the 404s above are about ownership, not a broken route."""
    for tenant in tenants.values():
        answer = call(clean, service, method, path, tenant["auth"], tenant)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)


def test_a_member_of_the_owning_organization_reads_but_cannot_administer(clean, tenants):
    token = clean.issuer.session_token("user_dee", org="org_a", role="member")
    member = {"Authorization": f"Bearer {token}"}
    source = tenants["org-a"]["source"]
    base = clean.url("ingest")
    assert requests.get(f"{base}/v1/sources/{source['id']}", headers=member, timeout=30).ok
    quarantine = f"{base}/v1/sources/{source['id']}/quarantine"
    assert requests.get(quarantine, headers=member, timeout=30).ok
    for method, path in (
        ("POST", "/rotate-secret"),
        ("DELETE", ""),
        ("PATCH", ""),
        ("PUT", "/schema"),
        ("DELETE", "/schema"),
        ("POST", "/quarantine/replay"),
    ):
        answer = requests.request(
            method, f"{base}/v1/sources/{source['id']}{path}", json={}, headers=member, timeout=30
        )
        assert answer.status_code == 403, (method, path, answer.text)


@pytest.mark.parametrize(("service", "method", "path"), ROUTES)
def test_every_v1_route_refuses_a_missing_or_forged_token(clean, tenants, service, method, path):
    for auth in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = call(clean, service, method, path, auth, tenants["org-a"])
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)


def test_lists_show_only_the_callers_own_sources_and_blocks(clean, tenants):
    for name, tenant in tenants.items():
        sources = requests.get(
            f"{clean.url('ingest')}/v1/sources", headers=tenant["auth"], timeout=30
        ).json()["items"]
        assert [item["id"] for item in sources] == [tenant["source"]["id"]], name
        blocks = requests.get(
            f"{clean.url('query')}/v1/blocks", headers=tenant["auth"], timeout=30
        ).json()["items"]
        assert [item["id"] for item in blocks] == [tenant["block"]], name
        for other in tenants.values():  # another tenant's source id filters to nothing
            if other is tenant:
                continue
            filtered = requests.get(
                f"{clean.url('query')}/v1/blocks",
                params={"dataSourceId": other["source"]["id"]},
                headers=tenant["auth"],
                timeout=30,
            )
            assert filtered.status_code in {200, 404}, filtered.text
            if filtered.status_code == 200:
                assert filtered.json()["items"] == [], name
