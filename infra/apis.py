"""The Google APIs a fresh project must have on before anything else is created."""

from __future__ import annotations

import pulumi_gcp as gcp

from infra.config import StackConfig

APIS = (
    "cloudresourcemanager.googleapis.com",  # project IAM bindings read and write the policy
    "iam.googleapis.com",  # service accounts
    "serviceusage.googleapis.com",
    "firestore.googleapis.com",
    "cloudtasks.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",  # Cloud Run functions build the source with Cloud Build
    "artifactregistry.googleapis.com",  # where those builds push the images
    "storage.googleapis.com",  # the source zip
    "logging.googleapis.com",
    "monitoring.googleapis.com",
)


def enable(cfg: StackConfig) -> list[gcp.projects.Service]:
    """One resource per API; every other resource depends on the whole list."""
    return [
        gcp.projects.Service(
            f"api-{api.split('.')[0]}",
            project=cfg.project,
            service=api,
            # Turning an API off on `pulumi destroy` can break other things in the project,
            # and switching it back on later is slow: leave it on.
            disable_on_destroy=False,
        )
        for api in APIS
    ]
