"""Cloud Scheduler jobs: the per-minute sweep on ingest and the Clerk reconciliation.

Both call a ``/tasks/*`` route of a public service, so each carries an OIDC token of the tasks
identity for the fixed audience the app checks (Cloud Run IAM is per service, not per path).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig

SWEEP_SCHEDULE = "* * * * *"  # every minute (README "ingest": the sweep)


def sweep(
    cfg: StackConfig,
    ingest_url: pulumi.Input[str],
    tasks_identity: gcp.serviceaccount.Account,
    opts: pulumi.ResourceOptions,
) -> gcp.cloudscheduler.Job:
    """``POST /tasks/sweep`` on ingest every minute."""
    return _oidc_job(
        "sweep",
        cfg,
        name=cfg.named("inlet-sweep"),
        description="Inlet: enqueue pending refreshes, trim retention, purge deleted sources",
        schedule=SWEEP_SCHEDULE,
        uri=pulumi.Output.concat(ingest_url, "/tasks/sweep"),
        deadline="60s",
        # The next minute's run is the retry; retrying inside a minute would only overlap it.
        retries=0,
        tasks_identity=tasks_identity,
        opts=opts,
    )


def reconcile(
    cfg: StackConfig,
    clerk_sync_url: pulumi.Input[str],
    tasks_identity: gcp.serviceaccount.Account,
    opts: pulumi.ResourceOptions,
) -> gcp.cloudscheduler.Job | None:
    """``POST /tasks/reconcile`` on clerk-sync on ``inlet:reconcileSchedule`` (README
    "Reconciliation": daily is plenty, Svix retries a failed delivery for about three days).

    Declared only when the schedule is set: clerk-sync serves no such route yet, and a job
    that calls a missing route would only fail every day.
    """
    if cfg.reconcile_schedule is None:
        return None
    return _oidc_job(
        "reconcile",
        cfg,
        name=cfg.named("inlet-reconcile"),
        description="Inlet: reconcile Firestore's users and organizations with Clerk",
        schedule=cfg.reconcile_schedule,
        uri=pulumi.Output.concat(clerk_sync_url, "/tasks/reconcile"),
        # A full pass pages through every Clerk object; Cloud Scheduler allows 30 minutes.
        deadline="1800s",
        # A run stores nothing between attempts (it starts over), so a retry is safe.
        retries=1,
        tasks_identity=tasks_identity,
        opts=opts,
    )


def _oidc_job(
    resource_name: str,
    cfg: StackConfig,
    *,
    name: str,
    description: str,
    schedule: str,
    uri: pulumi.Input[str],
    deadline: str,
    retries: int,
    tasks_identity: gcp.serviceaccount.Account,
    opts: pulumi.ResourceOptions,
) -> gcp.cloudscheduler.Job:
    return gcp.cloudscheduler.Job(
        resource_name,
        project=cfg.project,
        region=cfg.region,
        name=name,
        description=description,
        schedule=schedule,
        time_zone="Etc/UTC",
        attempt_deadline=deadline,
        retry_config={"retry_count": retries},
        http_target={
            "uri": uri,
            "http_method": "POST",
            "oidc_token": {
                "service_account_email": tasks_identity.email,
                "audience": cfg.tasks_audience,
            },
        },
        opts=opts,
    )
