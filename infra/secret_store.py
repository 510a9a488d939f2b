"""Secret Manager: one secret per stack config secret, one version per value.

Services get a secret by reference at the version's number, never as a plain environment value;
a new value makes a new version, so its number changes and the services roll a new revision
(``latest`` would leave running instances on the old value). Named ``secret_store`` so it never
shadows the standard library's ``secrets``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig


@dataclass(frozen=True)
class StoredSecret:
    name: str  # the secret's id in Secret Manager
    env: str  # the variable the service reads (docs/operations.md "Configuration")
    secret: gcp.secretmanager.Secret
    version: gcp.secretmanager.SecretVersion


@dataclass(frozen=True)
class Secrets:
    clerk_webhook_secret: StoredSecret
    source_kek: StoredSecret
    # Optional: without it clerk-sync does not reconcile and query reads no Backend API.
    clerk_secret_key: StoredSecret | None


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> Secrets:
    def stored(stem: str, env: str, value: str) -> StoredSecret:
        name = cfg.named(stem)  # secret ids are project-unique
        secret = gcp.secretmanager.Secret(
            stem,
            project=cfg.project,
            secret_id=name,
            replication={"auto": {}},
            opts=opts,
        )
        version = gcp.secretmanager.SecretVersion(
            f"{stem}-version",
            secret=secret.id,
            secret_data=pulumi.Output.secret(value),
            # A rotated value creates the new version first and destroys the old one only
            # after the services point at the new number (Pulumi's create-before-delete).
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=secret)),
        )
        return StoredSecret(name=name, env=env, secret=secret, version=version)

    return Secrets(
        clerk_webhook_secret=stored(
            "inlet-clerk-webhook-secret", "CLERK_WEBHOOK_SECRET", cfg.clerk_webhook_secret
        ),
        source_kek=stored("inlet-source-kek", "SOURCE_KEK", cfg.source_kek),
        clerk_secret_key=(
            stored("inlet-clerk-secret-key", "CLERK_SECRET_KEY", cfg.clerk_secret_key)
            if cfg.clerk_secret_key
            else None
        ),
    )
