"""The shared index/TTL list names fields the services really write (SPEC section 5)."""

from __future__ import annotations

import datetime as dt

from services.common.indexes import COMPOSITE_INDEXES, INDEX_EXEMPTIONS, TTL_POLICIES
from tests import clerk, partner


def test_every_listed_field_exists_in_the_documents_written(clean, tenant, source, db):
    partner.send(source["url"], source["secret"], {"n": 1})
    clerk.post(
        clean.url("clerk-sync"),
        clean.webhook_secret,
        clerk.event("user.created", clerk.user("u1", 1)),
    )
    tenant.rotate(source["id"])

    def documents(group: str) -> list[dict]:
        found = [d.to_dict() for d in db.collection_group(group).stream()]
        assert found, f"no {group} document was written"
        return found

    for policy in TTL_POLICIES:
        for doc in documents(policy.collection_group):
            assert isinstance(doc[policy.field], dt.datetime), policy
    for exemption in INDEX_EXEMPTIONS:
        assert all(exemption.field in doc for doc in documents(exemption.collection_group))
    for index in COMPOSITE_INDEXES:
        for doc in documents(index.collection_group):
            assert all(field in doc for field, _ in index.fields), index
