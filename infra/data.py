"""Firestore: the database, its protection and backups, TTL policies, exemptions and indexes.

The field and index lists come from ``services/common/indexes.py``, the one place the services
declare what their queries need (the emulator enforces none of it, so production learns it only
here). The database is one of three (docs/deploy.md, "Which database"):

- created by the stack (the default: ``inlet-<stack>``, a named database of Inlet's own), with
  point-in-time recovery, delete protection and backup schedules from config;
- an existing one adopted (``firestoreExisting`` and ``firestoreManageExisting``): imported
  into the stack, never created, its protection and backups then set from config;
- an existing one looked up (``firestoreExisting`` alone): never created and never changed, so
  a project's ``(default)`` keeps whatever protection and backups its owners gave it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig
from services.common import indexes

SECONDS_PER_DAY = 86_400
WEEKLY_BACKUP_DAY = "SUNDAY"
# What an import must not compare: fixed when the database was made, unknown to the config, and
# each forces a replacement (a new, empty database) if it differed.
_FIXED_AT_CREATION = [
    "locationId",
    "type",
    "appEngineIntegrationMode",
    "concurrencyMode",
    "databaseEdition",
    "cmekConfig",
]


@dataclass(frozen=True)
class Firestore:
    database: gcp.firestore.Database
    name: str  # the database id the services read as FIRESTORE_DATABASE
    resource_name: str  # projects/P/databases/D, what IAM conditions name
    ready: list[pulumi.Resource]  # wait for these before serving: database, fields, indexes


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> Firestore:
    database = _database(cfg, opts)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[database]))
    name = cfg.database.name
    ready: list[pulumi.Resource] = [database]
    if cfg.database.owned:
        _backup_schedules(cfg, name, child)
    fields: dict[tuple[str, str], dict] = {}
    for policy in indexes.TTL_POLICIES:
        fields.setdefault((policy.collection_group, policy.field), {})["ttl_config"] = {}
    for exemption in indexes.INDEX_EXEMPTIONS:
        # An empty index config turns off the automatic single-field indexes for the field.
        fields.setdefault((exemption.collection_group, exemption.field), {})["index_config"] = {}
    for (collection, field_name), settings in sorted(fields.items()):
        ready.append(
            gcp.firestore.Field(
                f"field-{collection}-{field_name}",
                project=cfg.project,
                database=name,
                collection=collection,
                field=field_name,
                opts=child,
                **settings,
            )
        )
    for index in indexes.COMPOSITE_INDEXES:
        # Indexes build asynchronously; the provider waits for each build to finish, so what
        # depends on ``ready`` never queries before its index serves.
        ready.append(
            gcp.firestore.Index(
                _index_name(index),
                project=cfg.project,
                database=name,
                collection=index.collection_group,
                query_scope="COLLECTION",
                fields=[{"field_path": path, "order": order} for path, order in index.fields],
                opts=child,
            )
        )
    return Firestore(
        database=database,
        name=name,
        resource_name=f"projects/{cfg.project}/databases/{name}",
        ready=ready,
    )


def _database(cfg: StackConfig, opts: pulumi.ResourceOptions) -> gcp.firestore.Database:
    chosen = cfg.database
    database_id = f"projects/{cfg.project}/databases/{chosen.name}"
    if chosen.existing and not chosen.manage_existing:
        pulumi.log.info(
            f"Firestore database {chosen.name} exists and is only looked up: its point-in-time "
            "recovery, delete protection and backups are left as they are "
            "(inlet:firestoreManageExisting true sets them from config)."
        )
        return gcp.firestore.Database.get("firestore", database_id, opts=opts)
    protection = cfg.protection
    if chosen.existing:
        pulumi.log.info(
            f"Firestore database {chosen.name} exists and is adopted: this update sets "
            f"point-in-time recovery {'on' if protection.point_in_time_recovery else 'off'}, "
            f"delete protection {'on' if protection.delete_protection else 'off'}, and its "
            "backup schedules from config."
        )
        opts = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(import_=database_id, ignore_changes=_FIXED_AT_CREATION),
        )
    return gcp.firestore.Database(
        "firestore",
        project=cfg.project,
        name=chosen.name,
        location_id=chosen.location,
        type="FIRESTORE_NATIVE",
        point_in_time_recovery_enablement=(
            "POINT_IN_TIME_RECOVERY_ENABLED"
            if protection.point_in_time_recovery
            else "POINT_IN_TIME_RECOVERY_DISABLED"
        ),
        delete_protection_state=(
            "DELETE_PROTECTION_ENABLED"
            if protection.delete_protection
            else "DELETE_PROTECTION_DISABLED"
        ),
        # `pulumi destroy` leaves the data in place: deleting a database is the operator's call.
        deletion_policy="ABANDON",
        opts=opts,
    )


def _backup_schedules(
    cfg: StackConfig, database: str, opts: pulumi.ResourceOptions
) -> list[gcp.firestore.BackupSchedule]:
    """A daily backup, and a weekly one kept longer when configured (Firestore allows one of
    each per database; a backup outlives its schedule until its retention ends)."""
    protection = cfg.protection
    schedules = [
        gcp.firestore.BackupSchedule(
            "backup-daily",
            project=cfg.project,
            database=database,
            retention=f"{protection.daily_backup_retention_days * SECONDS_PER_DAY}s",
            daily_recurrence={},
            opts=opts,
        )
    ]
    if protection.weekly_backup_retention_days is not None:
        schedules.append(
            gcp.firestore.BackupSchedule(
                "backup-weekly",
                project=cfg.project,
                database=database,
                retention=f"{protection.weekly_backup_retention_days * SECONDS_PER_DAY}s",
                weekly_recurrence={"day": WEEKLY_BACKUP_DAY},
                opts=opts,
            )
        )
    return schedules


def _index_name(index: indexes.CompositeIndex) -> str:
    parts = "-".join(f"{path}-{order[:3].lower()}" for path, order in index.fields)
    return f"index-{index.collection_group}-{parts}"
