"""Identities and the least privilege each one needs, on the narrowest resource that grants it.

No editor or owner anywhere. One grant is project-wide because Google offers nothing
narrower: ``roles/logging.logWriter`` for the build account (a build writes its log to the
project). Two more are project-level only in form, each narrowed by an IAM condition:
Firestore's ``roles/datastore.user`` to the stack's one database (Firestore grants roles only
on the project, and honours a condition on the database's resource name), and the build's
read of the one bucket Cloud Run functions create for its source (docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import CLERK_SYNC, INGEST, QUERY, SERVICES, StackConfig
from infra.data import Firestore
from infra.refresh_queue import RefreshQueue
from infra.secret_store import Secrets, StoredSecret


@dataclass(frozen=True)
class Identities:
    services: dict[str, gcp.serviceaccount.Account]  # by Service.key
    tasks: gcp.serviceaccount.Account  # the OIDC identity of refresh tasks and both jobs
    build: gcp.serviceaccount.Account  # Cloud Build runs the functions' builds as this


def accounts(cfg: StackConfig, opts: pulumi.ResourceOptions) -> Identities:
    def account(stem: str, display: str) -> gcp.serviceaccount.Account:
        return gcp.serviceaccount.Account(
            stem,
            project=cfg.project,
            account_id=cfg.named(stem),  # 6-30 characters: config.SUFFIX_MAX keeps it so
            display_name=display,
            opts=opts,
        )

    return Identities(
        services={
            s.key: account(f"inlet-{s.name}", f"Inlet {s.name} service ({cfg.stack})")
            for s in SERVICES
        },
        tasks=account("inlet-tasks", f"Inlet tasks and scheduled jobs, OIDC ({cfg.stack})"),
        build=account("inlet-build", f"Inlet function builds ({cfg.stack})"),
    )


def grant(
    cfg: StackConfig,
    ids: Identities,
    firestore: Firestore,
    secrets: Secrets,
    queue: RefreshQueue,
    source_bucket: gcp.storage.Bucket,
    image_repository: gcp.artifactregistry.Repository,
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """Every grant; the functions depend on them all, since a deploy checks secret access and
    a build needs its bucket and repository grants before it starts."""
    grants: list[pulumi.Resource] = []
    for service in SERVICES:
        grants.append(
            gcp.projects.IAMMember(
                f"{service.key}-datastore-user",
                project=cfg.project,
                role="roles/datastore.user",
                member=ids.services[service.key].member,
                condition={
                    "title": "inlet-database",
                    "description": "Only the stack's Firestore database",
                    "expression": f'resource.name == "{firestore.resource_name}"',
                },
                opts=opts,
            )
        )

    def read_secret(stored: StoredSecret | None, service_key: str) -> None:
        if stored is None:
            return
        grants.append(
            gcp.secretmanager.SecretIamMember(
                f"{service_key}-reads-{stored.name}",
                project=cfg.project,
                secret_id=stored.secret.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=ids.services[service_key].member,
                opts=opts,
            )
        )

    read_secret(secrets.clerk_webhook_secret, CLERK_SYNC.key)
    read_secret(secrets.clerk_secret_key, CLERK_SYNC.key)  # the reconciliation reads Clerk
    read_secret(secrets.source_kek, INGEST.key)
    read_secret(secrets.clerk_secret_key, QUERY.key)

    # Every service enqueues refresh tasks carrying the tasks identity's OIDC token: ingest after
    # events, query for follow-ups, clerk-sync when a deleted owner's sources go.
    for service in (CLERK_SYNC, INGEST, QUERY):
        member = ids.services[service.key].member
        grants.append(
            gcp.cloudtasks.QueueIamMember(
                f"{service.key}-enqueues",
                project=cfg.project,
                location=cfg.region,
                name=queue.name,
                role="roles/cloudtasks.enqueuer",
                member=member,
                opts=opts,
            )
        )
        grants.append(
            gcp.serviceaccount.IAMMember(
                f"{service.key}-acts-as-tasks",
                service_account_id=ids.tasks.name,
                role="roles/iam.serviceAccountUser",
                member=member,
                opts=opts,
            )
        )

    build = ids.build.member
    grants.append(
        gcp.projects.IAMMember(
            "build-log-writer",
            project=cfg.project,
            role="roles/logging.logWriter",
            member=build,
            opts=opts,
        )
    )
    # Cloud Run functions copy the uploaded zip into a bucket of their own,
    # gcf-v2-sources-NUMBER-REGION, which the build then reads. It does not exist before the
    # first deploy, so the grant is project-level with a condition naming that bucket alone.
    gcf_sources = source_bucket.project_number.apply(
        lambda number: f"projects/_/buckets/gcf-v2-sources-{number}-{cfg.region}"
    )
    grants.append(
        gcp.projects.IAMMember(
            "build-reads-function-sources",
            project=cfg.project,
            role="roles/storage.objectViewer",
            member=build,
            condition={
                "title": "inlet-function-sources",
                "description": "Only the bucket Cloud Run functions build from",
                "expression": gcf_sources.apply(
                    lambda bucket: (
                        f'resource.name.startsWith("{bucket}/") || resource.name == "{bucket}"'
                    )
                ),
            },
            opts=opts,
        )
    )
    grants.append(
        gcp.storage.BucketIAMMember(
            "build-reads-source",
            bucket=source_bucket.name,
            role="roles/storage.objectViewer",
            member=build,
            opts=opts,
        )
    )
    grants.append(
        gcp.artifactregistry.RepositoryIamMember(
            "build-pushes-images",
            project=cfg.project,
            location=cfg.region,
            repository=image_repository.name,
            role="roles/artifactregistry.writer",
            member=build,
            opts=opts,
        )
    )
    return grants
