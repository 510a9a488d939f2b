"""The minute sweep (Cloud Scheduler → ``POST /tasks/sweep``): the outbox and purges.

Retention is trimmed by the query service's refresh task, together with the rollups (a trimmed
event must leave the rollups in the same commit). A source whose refresh has not run still has
its refresh markers, and the outbox sweep re-enqueues them, so its trimming catches up as soon
as Cloud Tasks delivers; the sweep itself never trims.
"""

from __future__ import annotations

from services.common import outbox, source_store
from services.common.config import TaskSettings

# Documents one sweep may delete across all purges: bounded progress per run, well inside the
# route's storage budget; the next sweep resumes where this one stopped.
PURGE_BUDGET = 4_000


def sweep(settings: TaskSettings) -> dict[str, object]:
    """Re-enqueue owed refreshes, purge deleted sources a bounded amount.

    Each step is bounded and idempotent, so a sweep cut short by a timeout is simply resumed
    by the next one. A finished purge schedules a ``delete`` refresh, so the source's blocks
    report ``source-deleted`` whichever way the source was deleted.
    """
    counts, _ = outbox.sweep(settings)
    purged = 0
    budget = PURGE_BUDGET
    for source_id in source_store.pending_purges():
        if budget <= 0:
            break
        done, removed = source_store.purge(source_id, max_docs=budget)
        budget -= removed
        if done:
            purged += 1
            outbox.schedule_refresh(settings, source_id, "delete")
    return {**counts, "purged": purged}
