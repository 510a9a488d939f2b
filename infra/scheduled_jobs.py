"""Cloud Scheduler jobs: the per-minute sweep on ingest and the Clerk reconciliation.

Both call a ``/tasks/*`` route of a public service, so each carries an OIDC token of the tasks
identity for the fixed audience the app checks (Cloud Run IAM is per service, not per path).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import CLERK_SYNC, StackConfig

SWEEP_SCHEDULE = "* * * * *"  # every minute (docs/ingest.md: the sweep)
# Cloud Scheduler's longest attempt; clerk-sync's default timeout is the same (infra/config.py).
RECONCILE_ATTEMPT_DEADLINE_S = 1800
# Left after the run's budget for the work under way when it ends (a page and its writes) and
# the answer: services/clerk_sync/reconcile_task.py FINISHING_S.
RECONCILE_FINISHING_S = 300


def reconcile_budget_s(cfg: StackConfig) -> int:
    """``RECONCILE_BUDGET_S`` for clerk-sync: the run stops starting work in time to answer
    within both its attempt and clerk-sync's request timeout (half of a short timeout)."""
    timeout = cfg.scaling[CLERK_SYNC.key].timeout_seconds
    limit = min(timeout, RECONCILE_ATTEMPT_DEADLINE_S)
    return max(1, max(timeout // 2, limit - RECONCILE_FINISHING_S))


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
    """``POST /tasks/reconcile`` on clerk-sync, daily unless ``inlet:reconcileSchedule`` says
    otherwise (docs/clerk-sync.md "Reconciliation"). None when switched off or without a Clerk
    Backend API
    key, which the run needs (infra/config.py)."""
    if cfg.reconcile_schedule is None:
        return None
    return _oidc_job(
        "reconcile",
        cfg,
        name=cfg.named("inlet-reconcile"),
        description="Inlet: reconcile Firestore's users and organizations with Clerk",
        schedule=cfg.reconcile_schedule,
        uri=pulumi.Output.concat(clerk_sync_url, "/tasks/reconcile"),
        # A full pass pages through every Clerk object: the longest attempt Cloud Scheduler
        # allows; the run's own budget ends earlier (reconcile_budget_s).
        deadline=f"{RECONCILE_ATTEMPT_DEADLINE_S}s",
        # A run stores nothing between attempts (it starts over), so a retry is safe; after
        # a Clerk outage (503) it comes five minutes later rather than at once.
        retries=1,
        min_backoff="300s",
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
    min_backoff: str | None = None,
) -> gcp.cloudscheduler.Job:
    retry_config: dict[str, object] = {"retry_count": retries}
    if min_backoff is not None:
        retry_config["min_backoff_duration"] = min_backoff
    return gcp.cloudscheduler.Job(
        resource_name,
        project=cfg.project,
        region=cfg.region,
        name=name,
        description=description,
        schedule=schedule,
        time_zone="Etc/UTC",
        attempt_deadline=deadline,
        retry_config=retry_config,
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
