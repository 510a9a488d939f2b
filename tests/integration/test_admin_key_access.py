"""Admin API keys on the query service (docs/query.md): deployment-wide reads of any source's
queries and blocks, never writes, and nothing for a key that is not valid."""

from __future__ import annotations

import pytest
import requests

from services.common import admin_keys
from tests import partner


@pytest.fixture
def admin(clean) -> dict[str, str]:
    _, token = admin_keys.create("dashboards")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def block(clean, tenant, source) -> dict:
    body = partner.count_block(source["id"])
    answer = requests.put(
        f"{clean.url('query')}/v1/blocks/orders", json=body, headers=tenant.auth, timeout=30
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_admin_key_queries_any_tenants_source(clean, admin, source):
    assert partner.send(source["url"], source["secret"], {"amount": 3}).status_code == 202
    answer = requests.post(
        f"{clean.url('query')}/v1/sources/{source['id']}/query",
        json={"type": "webhook.latest"},
        headers=admin,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"type": "webhook.latest", "result": {"amount": 3}}


def test_an_admin_key_gets_404_for_a_deleted_or_unknown_source(clean, admin, tenant, source):
    assert tenant.delete(source["id"]).status_code == 204
    for source_id in (source["id"], "src_" + "0" * 32):
        answer = requests.post(
            f"{clean.url('query')}/v1/sources/{source_id}/query",
            json={"type": "webhook.latest"},
            headers=admin,
            timeout=30,
        )
        assert answer.status_code == 404, answer.text


def test_an_admin_key_lists_a_sources_blocks_and_reads_one_by_owner(clean, admin, block, source):
    base = clean.url("query")
    listed = requests.get(
        f"{base}/v1/blocks", params={"dataSourceId": source["id"]}, headers=admin, timeout=30
    )
    assert listed.status_code == 200, listed.text
    (shown,) = listed.json()["items"]
    assert shown["id"] == "orders" and shown["owner"] == block["owner"] == "user:user_alice"
    one = requests.get(
        f"{base}/v1/blocks/orders", params={"owner": shown["owner"]}, headers=admin, timeout=30
    )
    assert one.status_code == 200 and one.json()["binding"] == block["binding"]
    # Block ids are only unique per owner: an admin key says whose, and lists one source.
    assert requests.get(f"{base}/v1/blocks/orders", headers=admin, timeout=30).status_code == 400
    assert requests.get(f"{base}/v1/blocks", headers=admin, timeout=30).status_code == 400


def test_an_admin_key_never_writes_a_block(clean, admin, block):
    body = {"binding": block["binding"], "widget": {"template": "metric"}}
    answer = requests.put(
        f"{clean.url('query')}/v1/blocks/orders", json=body, headers=admin, timeout=30
    )
    assert answer.status_code == 403, answer.text


def test_a_revoked_or_forged_key_reads_nothing(clean, source):
    revoked, token = admin_keys.create("gone")
    admin_keys.revoke(revoked.id)
    forged = "inlet_ak_" + "0" * 16 + "_" + "f" * 64
    for key in (token, forged):
        answer = requests.post(
            f"{clean.url('query')}/v1/sources/{source['id']}/query",
            json={"type": "webhook.latest"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.status_code == 401, (key[:12], answer.text)
