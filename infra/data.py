"""Firestore: the database, its TTL policies, single-field exemptions and composite indexes.

All three lists come from ``services/common/indexes.py``, the one place the services declare
what their queries need (the emulator enforces none of it, so production learns it only here).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig
from services.common import indexes


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> gcp.firestore.Database:
    database = gcp.firestore.Database(
        "firestore",
        project=cfg.project,
        name=cfg.firestore_database,
        location_id=cfg.firestore_location,
        type="FIRESTORE_NATIVE",
        # `pulumi destroy` leaves the data in place: deleting a database is the operator's call.
        deletion_policy="ABANDON",
        opts=opts,
    )
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[database]))
    fields: dict[tuple[str, str], dict] = {}
    for policy in indexes.TTL_POLICIES:
        fields.setdefault((policy.collection_group, policy.field), {})["ttl_config"] = {}
    for exemption in indexes.INDEX_EXEMPTIONS:
        # An empty index config turns off the automatic single-field indexes for the field.
        fields.setdefault((exemption.collection_group, exemption.field), {})["index_config"] = {}
    for (collection, name), settings in sorted(fields.items()):
        gcp.firestore.Field(
            f"field-{collection}-{name}",
            project=cfg.project,
            database=database.name,
            collection=collection,
            field=name,
            opts=child,
            **settings,
        )
    for index in indexes.COMPOSITE_INDEXES:
        gcp.firestore.Index(
            _index_name(index),
            project=cfg.project,
            database=database.name,
            collection=index.collection_group,
            query_scope="COLLECTION",
            fields=[{"field_path": path, "order": order} for path, order in index.fields],
            opts=child,
        )
    return database


def _index_name(index: indexes.CompositeIndex) -> str:
    parts = "-".join(f"{path}-{order[:3].lower()}" for path, order in index.fields)
    return f"index-{index.collection_group}-{parts}"
