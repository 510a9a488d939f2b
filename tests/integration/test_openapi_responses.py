"""Real answers match openapi.yaml: each status is documented for its route, each body its schema.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the whole document is registered as one resource
and each response schema is checked by JSON pointer into it; ``#/components/...`` references then
resolve as they do for any client generated from the file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from standardwebhooks.webhooks import Webhook as StandardWebhook

from devstack.stack import new_webhook_secret
from tests import clerk, partner
from tests.partner import QueryAPI, SourceAPI

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
SPEC_URI = "urn:inlet:openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, DRAFT202012))
UNKNOWN_SOURCE = "src_" + "0" * 20


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def conforms(answer: requests.Response, method: str, path: str) -> requests.Response:
    """Assert ``answer`` is documented for ``method path``; returns it for further checks."""
    operation = SPEC["paths"][path][method.lower()]
    status = str(answer.status_code)
    where = f"{method} {path} -> {status}"
    assert status in operation["responses"], f"undocumented: {where}: {answer.text[:300]}"
    pointer = _pointer("paths", path, method.lower(), "responses", status)
    documented = operation["responses"][status]
    if "$ref" in documented:  # a shared response in components/responses
        pointer = documented["$ref"].removeprefix("#")
        documented = SPEC["components"]["responses"][pointer.rsplit("/", 1)[1]]
    for header, spec in documented.get("headers", {}).items():
        if "$ref" in spec:
            spec = SPEC["components"]["headers"][spec["$ref"].rsplit("/", 1)[1]]
        if spec.get("required"):
            assert header in answer.headers, f"{where}: no {header} header"
    if "content" not in documented:
        assert answer.content == b"", f"{where}: documented without a body"
        return answer
    assert answer.headers["Content-Type"].startswith("application/json"), where
    schema = {"$ref": SPEC_URI + "#" + pointer + _pointer("content", "application/json", "schema")}
    validator = Draft202012Validator(
        schema, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = [e.message for e in validator.iter_errors(answer.json())]
    assert not errors, f"{where}: {answer.text[:300]}: {errors}"
    return answer


def test_health_answers_conform(clean):
    for service in ("clerk-sync", "ingest", "query"):
        answer = conforms(
            requests.get(f"{clean.url(service)}/health", timeout=10), "GET", "/health"
        )
        assert answer.json()["service"] == service


def test_clerk_webhook_answers_conform(clean):
    base, secret = clean.url("clerk-sync"), clean.webhook_secret
    url = f"{base}/webhooks/clerk"

    def post(body: str, headers: dict) -> requests.Response:
        return conforms(
            requests.post(url, data=body, headers=headers, timeout=20), "POST", "/webhooks/clerk"
        )

    event = clerk.event("user.created", clerk.user("user_openapi", 10))
    applied = conforms(clerk.post(base, secret, event), "POST", "/webhooks/clerk")
    assert applied.json() == {"status": "processed", "reason": None, "duplicate": False}
    assert post("{}", {}).status_code == 400
    body = json.dumps(event)
    forged = clerk.signed_headers(new_webhook_secret(), body)  # another endpoint's secret
    assert post(body, forged).status_code == 401
    assert post("[]", clerk.signed_headers(secret, "[]")).status_code == 400
    big = "x" * (1024 * 1024 + 1)
    assert post(big, clerk.signed_headers(secret, "{}")).status_code == 413


def test_inbound_answers_conform(ingest_url, source):
    path = "/webhooks/inbound/{sourceId}"

    def post(url: str, body: bytes, headers: dict) -> requests.Response:
        return conforms(requests.post(url, data=body, headers=headers, timeout=20), "POST", path)

    url, secret = source["url"], source["secret"]
    body = b'{"amount": 1}'
    signed = partner.headers(secret, body, key="openapi-1")
    stored = post(url, body, signed)
    assert stored.status_code == 202
    assert post(url, body, signed).json() == {"id": stored.json()["id"], "duplicate": True}
    now = dt.datetime.now(dt.UTC)
    standard = {
        "Content-Type": "application/json",
        "webhook-id": "openapi-std-1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign("openapi-std-1", now, body.decode()),
    }
    assert post(url, body, standard).status_code == 202
    assert post(url, body, {"Content-Type": "application/json"}).status_code == 400
    as_text = {**partner.headers(secret, body), "Content-Type": "text/plain"}
    assert post(url, body, as_text).status_code == 415
    assert post(url, body, partner.headers("whsec_wrong", body)).status_code == 401
    unknown = f"{ingest_url}/webhooks/inbound/{UNKNOWN_SOURCE}"
    assert post(unknown, body, partner.headers(secret, body)).status_code == 404
    big = b"[" + b"0," * (128 * 1024) + b"0]"
    assert post(url, big, partner.headers(secret, big)).status_code == 413


def test_sources_api_answers_conform(clean, ingest_url, tenant):
    def check(answer: requests.Response, method: str, path: str = "/v1/sources/{sourceId}"):
        return conforms(answer, method, path)

    created = check(tenant.create("Orders", retention=10), "POST", "/v1/sources")
    assert created.status_code == 201
    source_id = created.json()["id"]
    assert check(tenant.create(""), "POST", "/v1/sources").status_code == 400
    anonymous = SourceAPI(ingest_url, "not-a-token")
    assert check(anonymous.create("x"), "POST", "/v1/sources").status_code == 401
    member = SourceAPI(ingest_url, clean.issuer.session_token("user_m", org="org_1", role="member"))
    assert check(member.create("x"), "POST", "/v1/sources").status_code == 403
    listed = check(tenant.list(limit=1), "GET", "/v1/sources")
    assert [s["id"] for s in listed.json()["items"]] == [source_id]
    assert check(tenant.list(limit=0), "GET", "/v1/sources").status_code == 400
    assert check(tenant.get(source_id), "GET").status_code == 200
    assert check(tenant.get(UNKNOWN_SOURCE), "GET").status_code == 404
    rotate = "/v1/sources/{sourceId}/rotate-secret"
    assert check(tenant.rotate(source_id, graceSeconds=60), "POST", rotate).status_code == 200
    assert check(tenant.delete(source_id), "DELETE").status_code == 204


@pytest.mark.parametrize("authorized", [True, False])
def test_sweep_answers_conform(clean, ingest_url, authorized):
    token = clean.issuer.task_token() if authorized else clean.issuer.session_token("user_x")
    answer = requests.post(
        f"{ingest_url}/tasks/sweep", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    conforms(answer, "POST", "/tasks/sweep")
    assert answer.status_code == (200 if authorized else 401)


def test_query_answers_conform(clean, dashboard, source):
    path = "/v1/sources/{sourceId}/query"
    partner.send(source["url"], source["secret"], {"errors": 1})
    for body in (
        {"type": "webhook.latest"},
        {"type": "webhook.aggregate", "params": {"window": "1h", "op": "count"}},
        {"type": "webhook.list", "params": {"limit": 5, "sortBy": "errors"}},
        {"type": "webhook.series", "params": {"window": "1h", "bucket": "5m", "op": "count"}},
        {
            "type": "webhook.series",
            "params": {"window": "7d", "bucket": "1d", "field": "n", "op": "avg"},
        },
    ):
        assert conforms(dashboard.query(source["id"], body), "POST", path).status_code == 200
    assert conforms(dashboard.query(source["id"], {"type": "x"}), "POST", path).status_code == 400
    assert conforms(dashboard.query(UNKNOWN_SOURCE, {}), "POST", path).status_code == 404
    anonymous = QueryAPI(clean.url("query"), "nope")
    assert conforms(anonymous.query(source["id"], {}), "POST", path).status_code == 401


def test_block_answers_conform(dashboard, source):
    body = {
        "binding": {
            "dataSourceId": source["id"],
            "queryConfig": {"type": "webhook.list", "params": {"limit": 2}},
            "projection": {"fields": {"first": {"source": "$[0].body", "format": "text"}}},
        },
        "widget": {"template": "table"},
    }
    path = "/v1/blocks/{blockId}"
    assert conforms(dashboard.put_block("t1", body), "PUT", path).status_code == 201
    assert conforms(dashboard.put_block("t1", body), "PUT", path).status_code == 200
    assert conforms(dashboard.put_block("t1", {"binding": 1}), "PUT", path).status_code == 400
    assert conforms(dashboard.get_block("t1"), "GET", path).status_code == 200
    assert conforms(dashboard.get_block("t2"), "GET", path).status_code == 404
    listed = dashboard.list_blocks(dataSourceId=source["id"])
    assert conforms(listed, "GET", "/v1/blocks").status_code == 200
    assert conforms(dashboard.list_blocks(limit=0), "GET", "/v1/blocks").status_code == 400


def test_refresh_answers_conform(clean, source):
    url = f"{clean.url('query')}/tasks/refresh"
    task = {"Authorization": f"Bearer {clean.issuer.task_token()}"}
    for body, status in (
        ({"sourceId": source["id"], "reason": "event"}, 200),
        ({"sourceId": UNKNOWN_SOURCE, "reason": "delete"}, 200),
        ({"sourceId": 5}, 400),
    ):
        answer = requests.post(url, json=body, headers=task, timeout=60)
        assert conforms(answer, "POST", "/tasks/refresh").status_code == status
    session = {"Authorization": f"Bearer {clean.issuer.session_token('user_x')}"}
    answer = requests.post(url, json={"sourceId": source["id"]}, headers=session, timeout=30)
    assert conforms(answer, "POST", "/tasks/refresh").status_code == 401


@pytest.mark.parametrize("service", ["clerk-sync", "ingest", "query"])
def test_a_path_the_framework_cannot_route_is_a_json_404(stack, service):
    # functions-framework's `<path:path>` rule does not match a newline: its own 404 answers.
    answer = requests.get(f"{stack.url(service)}/v1/sources/x%0Ay", timeout=10)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "not_found"


def test_ed25519_and_provider_source_answers_conform(clean, tenant):
    """Sources without a secret to show (ed25519, GitHub, Stripe) and their refusals."""
    github_secret = "s3cret"  # noqa: S105 (a test value)
    rotate = "/v1/sources/{sourceId}/rotate-secret"
    _, public = partner.ed25519_keys()
    ed25519 = conforms(
        tenant.create("Ed", signing="ed25519", publicKey=public), "POST", "/v1/sources"
    )
    assert ed25519.status_code == 201 and "secret" not in ed25519.json()
    _, newer = partner.ed25519_keys()
    answer = conforms(tenant.rotate(ed25519.json()["id"], publicKey=newer), "POST", rotate)
    assert answer.status_code == 200
    assert (
        conforms(tenant.create("Bad", signing="ed25519"), "POST", "/v1/sources").status_code == 400
    )
    github = conforms(tenant.create("GitHub", provider="github"), "POST", "/v1/sources").json()
    body = b"{}"
    refused = requests.post(
        github["url"], data=body, timeout=30, headers=partner.github_headers(github_secret, body)
    )
    assert conforms(refused, "POST", "/webhooks/inbound/{sourceId}").status_code == 401
    answer = conforms(tenant.rotate(github["id"], secret=github_secret), "POST", rotate)
    assert answer.status_code == 200 and "secret" not in answer.json()
    accepted = requests.post(
        github["url"], data=body, timeout=30, headers=partner.github_headers(github_secret, body)
    )
    assert conforms(accepted, "POST", "/webhooks/inbound/{sourceId}").status_code == 202
    other = requests.post(
        github["url"], data=body, timeout=30, headers=partner.headers(github_secret, body)
    )
    assert conforms(other, "POST", "/webhooks/inbound/{sourceId}").status_code == 401
    assert conforms(tenant.get(github["id"]), "GET", "/v1/sources/{sourceId}").json()[
        "provider"
    ] == ("github")


def pages_of_two(get, unknown_url: str) -> None:
    """A listing holding two items: paged one at a time, its bad parameters and callers refused,
    an unknown source a 404 (every answer checked against openapi.yaml by ``get``)."""
    first = get(limit=1)
    assert first.status_code == 200 and first.json()["nextCursor"]
    assert get(cursor=first.json()["nextCursor"]).json()["nextCursor"] is None
    assert get(limit=0).status_code == 400
    assert get(cursor="nope").status_code == 400
    assert get(headers={}).status_code == 401
    assert get(unknown_url).status_code == 404


def test_deliveries_answers_conform(clean, ingest_url, tenant, source):
    path = "/v1/sources/{sourceId}/deliveries"
    url = f"{ingest_url}/v1/sources/{source['id']}/deliveries"
    assert partner.send(source["url"], source["secret"], key="a").status_code == 202
    assert partner.send(source["url"], "whsec_wrong", key="b").status_code == 401

    def get(target: str = url, headers=tenant.auth, **params) -> requests.Response:
        answer = requests.get(target, params=params, headers=headers, timeout=15)
        return conforms(answer, "GET", path)

    pages_of_two(get, f"{ingest_url}/v1/sources/{UNKNOWN_SOURCE}/deliveries")


def test_quarantine_answers_conform(clean, ingest_url, tenant, source):
    path = "/v1/sources/{sourceId}/quarantine"
    base = f"{ingest_url}/v1/sources/{source['id']}/quarantine"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert tenant.put_schema(source["id"], schema).status_code == 200
    for key, n in (("a", "one"), ("b", "two")):
        assert partner.send(source["url"], source["secret"], {"n": n}, key=key).status_code == 422

    def get(target: str = base, headers=tenant.auth, **params) -> requests.Response:
        answer = requests.get(target, params=params, headers=headers, timeout=15)
        return conforms(answer, "GET", path)

    pages_of_two(get, f"{ingest_url}/v1/sources/{UNKNOWN_SOURCE}/quarantine")

    def replay(body, target: str = base, headers=tenant.auth) -> requests.Response:
        answer = requests.post(f"{target}/replay", json=body, headers=headers, timeout=30)
        return conforms(answer, "POST", path + "/replay")

    newest = get(limit=1).json()["items"][0]["id"]
    failing = replay({"ids": [newest]})
    assert failing.status_code == 200 and len(failing.json()["failed"]) == 1
    assert tenant.delete_schema(source["id"]).status_code == 204
    assert len(replay({}).json()["stored"]) == 2
    assert replay({"ids": "all"}).status_code == 400
    assert replay({}, headers={}).status_code == 401
    member = clean.issuer.session_token("user_m", org="org_m", role="member")
    org_source = SourceAPI(ingest_url, clean.issuer.session_token("user_o", org="org_m"))
    org_id = org_source.create("Team").json()["id"]
    org_base = f"{ingest_url}/v1/sources/{org_id}/quarantine"
    forbidden = replay({}, org_base, {"Authorization": f"Bearer {member}"})
    assert forbidden.status_code == 403
    unknown = replay({}, f"{ingest_url}/v1/sources/{UNKNOWN_SOURCE}/quarantine")
    assert unknown.status_code == 404
