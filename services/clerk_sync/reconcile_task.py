"""``POST /tasks/reconcile``: one reconciliation run, bounded to fit a Cloud Scheduler attempt.

The same pass as ``inlet-backfill --reconcile`` (``reconcile.run``), with a deadline: after
``RECONCILE_BUDGET_S`` no new page or direct read starts, and the answer says the run stopped
(``complete`` false). Nothing is stored between runs, so the next one simply starts over.
Without ``CLERK_SECRET_KEY`` the route answers 501 ``not_configured``: clerk-sync still starts,
since deployments without the key have always run its webhook alone.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from services.clerk_sync.directory import Settings as ClerkBackfillSettings
from services.common import logs
from services.common.clerk_api import ClerkAPIError, ClerkAPISettings, RetryPolicy
from services.common.config import ConfigError, Env, FirestoreSettings
from services.common.errors import NotConfigured, UpstreamUnavailable

# Cloud Scheduler waits at most 30 minutes for an attempt and Cloud Run answers 504 past the
# service's timeout: the run stops starting work after this, leaving room for the work under way
# (infra/functions.py passes a budget derived from clerk-sync's timeout).
DEFAULT_BUDGET_S = 1500
# Work already started when the budget ends: one page (each try at most 5 s to connect and 30 s
# to read, retries waiting at most 10 s) and its objects' writes. Firestore calls on the
# request stop only after the budget and this much more.
FINISHING_S = 300
# Inside a scheduled attempt a throttled or failing Clerk is not waited out for minutes: the
# run answers 503 and the next run (or the job's retry) starts over.
RETRY = RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=10.0, max_retry_after_s=10.0)
DEFAULT_RETRY_AFTER_S = 60
MAX_RETRY_AFTER_S = 300


@dataclass(frozen=True)
class ReconcileSettings:
    """What the route reads from the environment, validated at start (docs/operations.md
    "Configuration")."""

    clerk: ClerkAPISettings | None  # None: no CLERK_SECRET_KEY, the route answers 501
    budget_s: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> ReconcileSettings:
        env = env or Env()
        clerk = ClerkAPISettings.from_env(env)
        if clerk is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", clerk.api_url):
            raise ConfigError("CLERK_API_URL must be an http(s) URL, e.g. https://api.clerk.com")
        budget = env.int("RECONCILE_BUDGET_S", DEFAULT_BUDGET_S)
        if budget < 1:
            raise ConfigError("RECONCILE_BUDGET_S must be a positive number of seconds")
        return cls(clerk, budget)


def run(settings: ReconcileSettings, firestore: FirestoreSettings) -> dict[str, Any]:
    """One bounded run; its report as JSON. NotConfigured without a key, UpstreamUnavailable
    (503, Retry-After) when Clerk fails: nothing unconfirmed has been tombstoned then."""
    if settings.clerk is None:
        raise NotConfigured(
            "reconciliation needs CLERK_SECRET_KEY (inlet:clerkSecretKey), which is not set"
        )
    from services.clerk_sync import reconcile  # the pass and its client: only when it runs

    clerk = ClerkBackfillSettings(firestore, settings.clerk.api_url, settings.clerk.secret_key)
    try:
        report = reconcile.run(
            clerk,
            retry=RETRY,
            progress=False,
            deadline=time.monotonic() + settings.budget_s,
        )
    except ClerkAPIError as err:
        # A refused key is the operator's to fix: logged with Clerk's status, never the key.
        logs.warning("reconciliation stopped: Clerk's Backend API failed", status=err.status)
        raise UpstreamUnavailable(
            "Clerk's Backend API is unavailable; nothing unconfirmed was tombstoned, run again",
            retry_after_s=_retry_after(err.retry_after),
        ) from None
    return report.as_json()


def _retry_after(seconds: float | None) -> int:
    if seconds is None:
        return DEFAULT_RETRY_AFTER_S
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(seconds)))
