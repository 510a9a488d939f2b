"""The Artifact Registry repository the functions' builds push to.

A repository of our own, rather than the one Cloud Run functions create on first deploy, so
the build account can be granted write on this repository alone, before the first build.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> gcp.artifactregistry.Repository:
    return gcp.artifactregistry.Repository(
        "images",
        project=cfg.project,
        location=cfg.region,
        repository_id=cfg.named("inlet-functions"),
        format="DOCKER",
        description="Inlet: images built from the functions' source",
        # Every deploy pushes three images; keep the recent ones for rollbacks, not all.
        cleanup_policies=[
            {
                "id": "keep-recent",
                "action": "KEEP",
                "most_recent_versions": {"keep_count": 10},
            },
            {
                "id": "delete-old",
                "action": "DELETE",
                "condition": {"older_than": "2592000s"},
            },
        ],
        cleanup_policy_dry_run=False,
        opts=opts,
    )
