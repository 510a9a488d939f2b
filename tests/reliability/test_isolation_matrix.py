"""Tenant isolation, generated from the services' own route lists (SPEC sections 2 to 4).

Three tenants, two organizations and one personal user, each own a source. Every ``/v1`` route
of every service is called by every other tenant on another tenant's resource: each such call is
a 404 (the resource's existence is not disclosed) and changes nothing. The routes come from the
routers themselves, and a path parameter this matrix does not know fails the test, so a new
route cannot escape it.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.unit.test_openapi import IMPORT_ENV, SERVICES

TENANTS = {
    # name: (user, active organization, role)
    "org-a": ("user_ann", "org_a", "admin"),
    "org-b": ("user_bob", "org_b", "admin"),
    "personal": ("user_cy", None, "admin"),
}
# A body each route accepts from its owner, so a 404 for anyone else is about ownership only.
BODIES = {
    ("POST", "/v1/sources/{source_id}/rotate-secret"): {"graceSeconds": 0},
}


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


def test_the_matrix_knows_every_path_parameter():
    known = {"{source_id}"}
    for service, method, path in RESOURCE_ROUTES:
        params = {part for part in path.split("/") if part.startswith("{")}
        assert params <= known, f"{method} {path} ({service}) has a parameter the matrix lacks"
    assert RESOURCE_ROUTES, "no resource routes found: the route list moved"


@pytest.fixture
def tenants(clean) -> Iterator[dict[str, dict]]:
    """Each tenant's token headers and one source of its own."""
    made = {}
    for name, (user, org, role) in TENANTS.items():
        token = clean.issuer.session_token(user, org=org, role=role)
        auth = {"Authorization": f"Bearer {token}"}
        created = requests.post(
            f"{clean.url('ingest')}/v1/sources", json={"label": name}, headers=auth, timeout=15
        )
        assert created.status_code == 201, created.text
        made[name] = {"auth": auth, "source": created.json()}
    yield made


def call(stack, service: str, method: str, path: str, auth: dict, source_id: str):
    url = stack.url(service) + path.replace("{source_id}", source_id)
    body = BODIES.get((method, path), {} if method in {"POST", "PUT", "PATCH"} else None)
    return requests.request(method, url, json=body, headers=auth, timeout=15)


@pytest.mark.parametrize(("service", "method", "path"), RESOURCE_ROUTES)
def test_another_tenants_resource_is_404_on_every_route(clean, db, tenants, service, method, path):
    for caller, owner in itertools.permutations(tenants, 2):
        target = tenants[owner]["source"]
        before = db.collection("sources").document(target["id"]).get().to_dict()
        answer = call(clean, service, method, path, tenants[caller]["auth"], target["id"])
        assert answer.status_code == 404, (caller, owner, answer.status_code, answer.text)
        assert answer.json()["error"]["code"]
        assert db.collection("sources").document(target["id"]).get().to_dict() == before


@pytest.mark.parametrize(("service", "method", "path"), RESOURCE_ROUTES)
def test_the_owner_reaches_its_own_resource_on_every_route(clean, tenants, service, method, path):
    """The other half of the matrix: the 404s above are about ownership, not a broken route."""
    for tenant in tenants.values():
        answer = call(clean, service, method, path, tenant["auth"], tenant["source"]["id"])
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)


def test_a_member_of_the_owning_organization_reads_but_cannot_administer(clean, tenants):
    token = clean.issuer.session_token("user_dee", org="org_a", role="member")
    member = {"Authorization": f"Bearer {token}"}
    source = tenants["org-a"]["source"]
    base = clean.url("ingest")
    assert requests.get(f"{base}/v1/sources/{source['id']}", headers=member, timeout=15).ok
    for method, path in (("POST", "/rotate-secret"), ("DELETE", "")):
        answer = requests.request(
            method, f"{base}/v1/sources/{source['id']}{path}", json={}, headers=member, timeout=15
        )
        assert answer.status_code == 403, (method, path, answer.text)


@pytest.mark.parametrize(("service", "method", "path"), ROUTES)
def test_every_v1_route_refuses_a_missing_or_forged_token(clean, tenants, service, method, path):
    source_id = tenants["org-a"]["source"]["id"]
    for auth in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = call(clean, service, method, path, auth, source_id)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)


def test_lists_show_only_the_callers_own_sources(clean, tenants):
    for name, tenant in tenants.items():
        listed = requests.get(
            f"{clean.url('ingest')}/v1/sources", headers=tenant["auth"], timeout=15
        ).json()["items"]
        assert [item["id"] for item in listed] == [tenant["source"]["id"]], name
