"""The whole deployment, wired from its parts; ``__main__.py`` exports what this returns."""

from __future__ import annotations

import pulumi

from infra import (
    apis,
    config,
    data,
    functions,
    iam,
    images,
    monitoring,
    refresh_queue,
    scheduled_jobs,
    secret_store,
    source,
    waits,
)
from infra.config import CLERK_SYNC, INGEST, QUERY


def run() -> dict[str, pulumi.Input[str]]:
    cfg = config.load()
    # Every resource waits for the APIs it might need: a fresh project has none of them on.
    after_apis = pulumi.ResourceOptions(depends_on=apis.enable(cfg))

    firestore = data.provision(cfg, after_apis)
    secrets = secret_store.provision(cfg, after_apis)
    queue = refresh_queue.provision(cfg, after_apis)
    ids = iam.accounts(cfg, after_apis)
    bucket, source_object = source.provision(cfg, after_apis)
    repository = images.provision(cfg, after_apis)
    grants = iam.grant(cfg, ids, firestore, secrets, queue, bucket, repository, after_apis)
    # Builds and deploys check the grants they need at once, and a new grant takes minutes to
    # be honoured everywhere: they wait for that, and for the database, its field policies and
    # its indexes (which build asynchronously) so the first request and sweep find them.
    granted = waits.after("grants-propagated", waits.GRANT_PROPAGATION, grants, after_apis)
    ready = pulumi.ResourceOptions.merge(
        after_apis, pulumi.ResourceOptions(depends_on=[*grants, granted, *firestore.ready])
    )
    deployed = functions.deploy(cfg, ids, secrets, queue, bucket, source_object, repository, ready)
    scheduled_jobs.sweep(cfg, deployed[INGEST.key].url, ids.tasks, ready)
    scheduled_jobs.reconcile(cfg, deployed[CLERK_SYNC.key].url, ids.tasks, ready)
    monitoring.provision(cfg, after_apis)

    ingest_url = deployed[INGEST.key].url
    return {
        "clerkWebhookUrl": pulumi.Output.concat(deployed[CLERK_SYNC.key].url, "/webhooks/clerk"),
        "inboundUrlTemplate": pulumi.Output.concat(ingest_url, "/webhooks/inbound/{sourceId}"),
        "ingestApiUrl": ingest_url,
        "queryUrl": deployed[QUERY.key].url,
        # The console, at the query service's deterministic URL: the origin its CORS and Clerk
        # settings name (functions.environments).
        "consoleUrl": pulumi.Output.concat(
            functions.deterministic_url(QUERY, cfg, bucket.project_number), "/console/"
        ),
        "queueName": queue.path,
        "tasksAudience": cfg.tasks_audience,
        "firestoreDatabase": firestore.name,
    }
