"""Blocks over HTTP: the ChatBlocks example as written, validation, tenancy, paging, refreshes
through Cloud Tasks, and deleted sources."""

from __future__ import annotations

import time

import pytest

from tests import clerk, partner
from tests.partner import QueryAPI
from tests.support import refreshes, wait_for


def chatblocks_example(source_id: str) -> dict:
    """docs/query.md's example, from the ChatBlocks connector's documentation, verbatim."""
    return {
        "binding": {
            "dataSourceId": source_id,
            "queryConfig": {
                "type": "webhook.aggregate",
                "params": {"window": "1h", "field": "errors", "op": "sum"},
            },
            "projection": {
                "fields": {
                    "value": {"source": "value", "format": "number"},
                    "label": {"literal": "Errors (1h)"},
                }
            },
        },
        "widget": {"template": "metric", "data": {"value": "0", "label": "Errors (1h)"}},
    }


def test_the_chatblocks_example_works_as_written_end_to_end(clean, dashboard, source):
    created = dashboard.put_block("errors-1h", chatblocks_example(source["id"]))
    assert created.status_code == 201, created.text
    block = created.json()
    assert block["status"] == "ok" and block["refreshedAt"]
    assert block["widget"] == {"template": "metric", "data": {"value": 0, "label": "Errors (1h)"}}
    sent = time.monotonic()
    partner.send(source["url"], source["secret"], {"errors": 2})
    partner.send(source["url"], source["secret"], {"errors": "3"})
    # No manual step: ingest schedules the refresh through the tasks emulator to query.
    fresh = wait_for(
        lambda: dashboard.get_block("errors-1h").json()["widget"]["data"]["value"] == 5, 20
    )
    print(f"event to widget.data: {time.monotonic() - sent:.2f} s")
    assert fresh
    assert dashboard.get_block("errors-1h").json()["widget"]["data"]["label"] == "Errors (1h)"


def test_replacing_a_block_is_200_and_keeps_its_creation_time(dashboard, source):
    first = dashboard.put_block("b1", chatblocks_example(source["id"])).json()
    body = chatblocks_example(source["id"])
    body["binding"]["queryConfig"] = {"type": "webhook.latest"}
    body["binding"]["projection"] = {"fields": {"latest": {"source": "$", "format": "text"}}}
    replaced = dashboard.put_block("b1", body)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["createdAt"] == first["createdAt"]
    assert replaced.json()["widget"]["data"]["latest"] is None


def test_blocks_are_scoped_to_their_owner(clean, dashboard, source):
    assert dashboard.put_block("mine", chatblocks_example(source["id"])).status_code == 201
    bob = QueryAPI(clean.url("query"), clean.issuer.session_token("user_bob"))
    assert bob.get_block("mine").status_code == 404
    assert bob.list_blocks().json() == {"items": [], "nextCursor": None}
    # Bob cannot bind Alice's source, and his block of the same id is his own.
    assert bob.put_block("mine", chatblocks_example(source["id"])).status_code == 404
    assert dashboard.get_block("mine").json()["binding"]["dataSourceId"] == source["id"]


def test_blocks_of_a_source_are_listed_in_pages(dashboard, tenant, source):
    other = tenant.create("Other").json()
    for n in range(5):
        dashboard.put_block(f"blk-{n}", chatblocks_example(source["id"]))
    dashboard.put_block("elsewhere", chatblocks_example(other["id"]))
    seen, cursor = [], None
    while True:
        params = {
            "dataSourceId": source["id"],
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = dashboard.list_blocks(**params).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"blk-{n}" for n in range(5)]
    assert len(dashboard.list_blocks().json()["items"]) == 6


def _invalid(source_id: str):
    def edit(change):
        body = chatblocks_example(source_id)
        change(body)
        return body

    yield edit(lambda b: b.pop("widget")), "widget"
    yield edit(lambda b: b.update(extra=1)), "extra"
    yield edit(lambda b: b["binding"].update(dataSourceId=5)), "dataSourceId"
    yield edit(lambda b: b["binding"]["queryConfig"].update(type="webhook.sql")), "queryConfig"
    yield edit(lambda b: b["binding"]["queryConfig"]["params"].update(window="2d")), "window"
    yield edit(lambda b: b["binding"]["queryConfig"]["params"].update(field="$..x")), "field"
    yield edit(lambda b: b["binding"]["queryConfig"]["params"].update(field="$[*]")), "field"
    yield edit(lambda b: b["binding"]["queryConfig"]["params"].update(field="a..b")), "field"
    yield (
        edit(lambda b: b["binding"]["queryConfig"]["params"].update(field="a." * 5000 + "a")),
        "field",
    )
    yield edit(lambda b: b["binding"]["projection"]["fields"]["value"].update(format="x")), "format"
    yield edit(lambda b: b["binding"]["projection"].update(fields=[1] * 10_000)), "fields"
    yield edit(lambda b: b["binding"]["projection"]["fields"].update(v={"source": "$..a"})), "v"
    yield edit(lambda b: b["widget"].update(data=[[[[[[[[[[1]]]]]]]]]])), "data"
    yield edit(lambda b: b["widget"].update(template=None)), "template"
    yield [1, 2, 3], "body"


@pytest.mark.parametrize("case", range(15))
def test_invalid_blocks_are_a_400_naming_the_problem(dashboard, source, case):
    body, named = list(_invalid(source["id"]))[case]
    answer = dashboard.put_block("bad", body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]["message"]
    assert dashboard.get_block("bad").status_code == 404


@pytest.mark.parametrize("block_id", ["a/b", "x" * 200, "..", "é"])
def test_bad_block_ids_are_refused(dashboard, source, block_id):
    answer = dashboard.put_block(block_id, chatblocks_example(source["id"]))
    assert answer.status_code in (400, 404), answer.text


def test_a_deleted_sources_blocks_report_source_deleted(dashboard, tenant, source):
    dashboard.put_block("gone", chatblocks_example(source["id"]))
    assert tenant.delete(source["id"]).status_code == 204
    assert wait_for(lambda: dashboard.get_block("gone").json()["status"] == "source-deleted", 20)


def test_an_owner_deleted_in_clerk_leaves_blocks_reporting_source_deleted(clean, dashboard, source):
    dashboard.put_block("orphan", chatblocks_example(source["id"]))
    envelope = clerk.event("user.deleted", clerk.deleted("user", "user_alice"))
    assert clerk.post(clean.url("clerk-sync"), clean.webhook_secret, envelope).ok
    assert wait_for(lambda: dashboard.get_block("orphan").json()["status"] == "source-deleted", 20)
    # The refresh writes the block before its request's log line is written: wait for the line.
    assert wait_for(lambda: refreshes(clean, source["id"], "delete"), 10)


@pytest.mark.parametrize(
    "params",
    [{"dataSourceId": "x" * 3000}, {"limit": "0"}, {"limit": "abc"}, {"cursor": "a/b"}],
)
def test_bad_listing_parameters_are_a_400(dashboard, params):
    assert dashboard.list_blocks(**params).status_code == 400
