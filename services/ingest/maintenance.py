"""The minute sweep (Cloud Scheduler → ``POST /tasks/sweep``): outbox, purges, retention."""

from __future__ import annotations

from services.common import outbox, source_store, store
from services.common.config import TaskSettings


def sweep(settings: TaskSettings) -> dict[str, object]:
    """Re-enqueue stale refreshes, purge deleted sources, trim sources over their retention.

    Each step is bounded and idempotent, so a sweep cut short by a timeout is simply resumed
    by the next one.
    """
    counts, active = outbox.sweep(settings)
    purged = [sid for sid in source_store.pending_purges() if source_store.purge(sid)]
    trimmed = 0
    for source_id in sorted(active):
        snap = source_store.source_ref(source_id).get(retry=store.retry())
        if snap.exists and not snap.get("deleted"):
            trimmed += source_store.trim(source_id, snap.get("retention"))
    return {**counts, "purged": len(purged), "trimmed": trimmed}
