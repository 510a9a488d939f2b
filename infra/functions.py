"""The three services as Cloud Run functions, built by Google from the source zip.

Why this path (docs/deploy.md): ``gcp.cloudfunctionsv2.Function`` builds the zip with Google's
Python buildpack inside Cloud Build and deploys the result as a Cloud Run service, so a deploy
needs no Docker daemon and no command besides ``pulumi up``. Each function *is* a Cloud Run
service; its invoker binding goes on that service (``service_config.service``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import CLERK_SYNC, INGEST, QUERY, SERVICES, Service, StackConfig
from infra.iam import Identities
from infra.refresh_queue import RefreshQueue
from infra.scheduled_jobs import reconcile_budget_s
from infra.secret_store import Secrets, StoredSecret

RUNTIME = "python311"  # requirements.lock is resolved for Python 3.11


@dataclass(frozen=True)
class Deployed:
    function: gcp.cloudfunctionsv2.Function
    url: pulumi.Output[str]  # the Cloud Run service's own URL


def function_name(service: Service, cfg: StackConfig) -> str:
    return cfg.service_name(service)


def deterministic_url(
    service: Service, cfg: StackConfig, project_number: pulumi.Input
) -> pulumi.Output[str]:
    """The URL Cloud Run gives a service from its name alone (``NAME-NUMBER.REGION.run.app``).

    ``REFRESH_URL`` needs it: query enqueues its own follow-ups, so its own URL as an output
    would make the function depend on itself.
    """
    return pulumi.Output.concat(
        "https://",
        function_name(service, cfg),
        "-",
        pulumi.Output.from_input(project_number).apply(str),
        ".",
        cfg.region,
        ".run.app",
    )


def _joined(listed: str | None, extra: pulumi.Input[str]) -> pulumi.Output[str]:
    """A comma-separated list from stack config with one more entry."""
    return pulumi.Output.concat(f"{listed}," if listed else "", extra)


def environments(
    cfg: StackConfig,
    ids: Identities,
    queue: RefreshQueue,
    refresh_url: pulumi.Input[str],
    console_origin: pulumi.Input[str],
    ingest_api_url: pulumi.Input[str],
) -> dict[str, dict[str, pulumi.Input[str]]]:
    """Each service's plain environment (docs/operations.md "Configuration"): exactly what its
    settings read.

    The console is served by the query service (its origin is ``console_origin``): Clerk gives
    its session tokens that origin as ``azp``, and it calls the ingest API across origins, so
    the origin joins the authorized parties and ingest's CORS origins."""
    firestore = {"GOOGLE_CLOUD_PROJECT": cfg.project, "FIRESTORE_DATABASE": cfg.database.name}
    clerk_auth = {
        "CLERK_ISSUER": cfg.clerk_issuer,
        "CLERK_AUTHORIZED_PARTIES": _joined(cfg.clerk_authorized_parties, console_origin),
        **({"CLERK_JWKS_URL": cfg.clerk_jwks_url} if cfg.clerk_jwks_url else {}),
    }
    tasks = {
        "TASKS_QUEUE": queue.path,
        "REFRESH_URL": refresh_url,
        "TASKS_SERVICE_ACCOUNT": ids.tasks.email,
        "TASKS_AUDIENCE": cfg.tasks_audience,
    }
    cors = {"CORS_ORIGINS": cfg.cors_origins} if cfg.cors_origins else {}
    return {
        # clerk-sync schedules a `delete` refresh for the sources of a user or organization
        # deleted in Clerk, so their blocks report `source-deleted`; the tasks settings also
        # say whose OIDC tokens POST /tasks/reconcile accepts (Google's issuer by default).
        CLERK_SYNC.key: {
            **firestore,
            **tasks,
            "CLERK_API_URL": cfg.clerk_api_url,
            "RECONCILE_BUDGET_S": str(reconcile_budget_s(cfg)),
        },
        INGEST.key: {
            **firestore,
            **clerk_auth,
            **tasks,
            "CORS_ORIGINS": _joined(cfg.cors_origins, console_origin),
            **({"INGEST_PUBLIC_URL": cfg.ingest_public_url} if cfg.ingest_public_url else {}),
        },
        QUERY.key: {
            **firestore,
            **clerk_auth,
            **tasks,
            **cors,
            "CLERK_API_URL": cfg.clerk_api_url,
            "INGEST_API_URL": ingest_api_url,
            **(
                {"CLERK_PUBLISHABLE_KEY": cfg.clerk_publishable_key}
                if cfg.clerk_publishable_key
                else {}
            ),
        },
    }


def secret_references(secrets: Secrets) -> dict[str, list[StoredSecret]]:
    """Which secrets each service reads: only those its settings need. The Clerk Backend API
    key is optional: clerk-sync reconciles with it, query falls back to Clerk with it."""
    clerk_api = [s for s in (secrets.clerk_secret_key,) if s is not None]
    return {
        CLERK_SYNC.key: [secrets.clerk_webhook_secret, *clerk_api],
        INGEST.key: [secrets.source_kek],
        QUERY.key: clerk_api,
    }


def deploy(
    cfg: StackConfig,
    ids: Identities,
    secrets: Secrets,
    queue: RefreshQueue,
    source_bucket: gcp.storage.Bucket,
    source_object: gcp.storage.BucketObject,
    image_repository: gcp.artifactregistry.Repository,
    opts: pulumi.ResourceOptions,
) -> dict[str, Deployed]:
    query_url = deterministic_url(QUERY, cfg, source_bucket.project_number)
    refresh_url = pulumi.Output.concat(query_url, "/tasks/refresh")
    ingest_url = deterministic_url(INGEST, cfg, source_bucket.project_number)
    env = environments(cfg, ids, queue, refresh_url, query_url, ingest_url)
    refs = secret_references(secrets)
    deployed = {}
    for service in SERVICES:
        scaling = cfg.scaling[service.key]
        function = gcp.cloudfunctionsv2.Function(
            service.key,
            project=cfg.project,
            location=cfg.region,
            name=function_name(service, cfg),
            description=f"Inlet {service.name}",
            build_config={
                "runtime": RUNTIME,
                "entry_point": service.target,
                "source": {
                    "storage_source": {"bucket": source_bucket.name, "object": source_object.name}
                },
                # Not the default compute account, which organisation policies often strip.
                "service_account": ids.build.id,
                "docker_repository": image_repository.id,
            },
            service_config={
                "service_account_email": ids.services[service.key].email,
                "min_instance_count": scaling.min_instances,
                "max_instance_count": scaling.max_instances,
                "max_instance_request_concurrency": scaling.concurrency,
                "available_memory": scaling.memory,
                "available_cpu": scaling.cpu,
                "timeout_seconds": scaling.timeout_seconds,
                "ingress_settings": "ALLOW_ALL",
                "all_traffic_on_latest_revision": True,
                "environment_variables": env[service.key],
                "secret_environment_variables": [
                    {
                        "key": stored.env,
                        "project_id": cfg.project,
                        "secret": stored.secret.secret_id,
                        "version": stored.version.version,  # a number, never "latest"
                    }
                    for stored in refs[service.key]
                ],
            },
            opts=opts,
        )
        # Cloud Run IAM is per service, not per path: each service is public and does its own
        # auth (Svix signatures, source signatures, Clerk sessions, OIDC on /tasks/*).
        gcp.cloudrunv2.ServiceIamMember(
            f"{service.key}-public",
            project=cfg.project,
            location=cfg.region,
            name=function.service_config.service,
            role="roles/run.invoker",
            member="allUsers",
            opts=opts,
        )
        url = function.service_config.uri
        deployed[service.key] = Deployed(function=function, url=url)
    return deployed
