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
    secret_store,
    source,
)
from infra.config import CLERK_SYNC, INGEST, QUERY


def run() -> dict[str, pulumi.Input[str]]:
    cfg = config.load()
    # Every resource waits for the APIs it might need: a fresh project has none of them on.
    after_apis = pulumi.ResourceOptions(depends_on=apis.enable(cfg))

    data.provision(cfg, after_apis)
    secrets = secret_store.provision(cfg, after_apis)
    queue = refresh_queue.provision(cfg, after_apis)
    ids = iam.accounts(cfg, after_apis)
    bucket, source_object = source.provision(cfg, after_apis)
    repository = images.provision(cfg, after_apis)
    grants = iam.grant(cfg, ids, secrets, queue, bucket, repository, after_apis)
    after_grants = pulumi.ResourceOptions.merge(
        after_apis, pulumi.ResourceOptions(depends_on=grants)
    )
    deployed = functions.deploy(
        cfg, ids, secrets, queue, bucket, source_object, repository, after_grants
    )
    refresh_queue.schedule_sweep(cfg, deployed[INGEST.key].url, ids.tasks, after_apis)
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
    }
