"""The Cloud Tasks queue that carries refresh work to ``query`` (its sweep: scheduled_jobs.py).

Named ``refresh_queue`` rather than ``queue`` so it never shadows the standard library's module.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.config import StackConfig

QUEUE_PREFIX = "inlet-refresh"


@dataclass(frozen=True)
class RefreshQueue:
    queue: gcp.cloudtasks.Queue
    name: pulumi.Output[str]  # the short name
    path: pulumi.Output[str]  # projects/P/locations/L/queues/Q, as TASKS_QUEUE wants it


def provision(cfg: StackConfig, opts: pulumi.ResourceOptions) -> RefreshQueue:
    # A deleted queue's name stays blocked for days, so a destroy-then-up must not reuse it:
    # the suffix is random once per stack and kept in its state.
    suffix = random.RandomId("queue-suffix", byte_length=3)
    limits = cfg.queue
    queue = gcp.cloudtasks.Queue(
        "refresh-queue",
        project=cfg.project,
        location=cfg.region,
        name=suffix.hex.apply(lambda hex_: f"{cfg.named(QUEUE_PREFIX)}-{hex_}"),
        rate_limits={
            "max_dispatches_per_second": limits.max_dispatches_per_second,
            "max_concurrent_dispatches": limits.max_concurrent_dispatches,
        },
        retry_config={
            "max_attempts": limits.max_attempts,
            "min_backoff": limits.min_backoff,
            "max_backoff": limits.max_backoff,
            "max_doublings": limits.max_doublings,
            "max_retry_duration": limits.max_retry_duration,
        },
        opts=opts,
    )
    path = pulumi.Output.concat(
        "projects/", cfg.project, "/locations/", cfg.region, "/queues/", queue.name
    )
    return RefreshQueue(queue=queue, name=queue.name, path=path)
