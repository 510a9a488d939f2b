"""Per-request state shared by the HTTP layer, the Firestore layer and the request log line."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field


@dataclass
class RequestContext:
    request_id: str
    trace: str | None = None
    started: float = field(default_factory=time.monotonic)
    # Firestore work of one request stops at this monotonic time (clerk-sync answers within Svix's
    # 15 s).
    storage_deadline: float | None = None
    # Each Firestore RPC's own deadline when not the default (task routes allow longer reads).
    rpc_deadline_s: float | None = None
    firestore_ops: int = 0
    # Documents its queries and gets returned (Firestore bills a read for each).
    firestore_reads: int = 0
    # Documents this request's commits wrote, per collection (a group commit counts on the
    # request that sent it).
    firestore_writes: dict[str, int] = field(default_factory=dict)
    # Metadata a handler adds to its request's log line (ids and outcomes, never a body).
    log_fields: dict[str, object] = field(default_factory=dict)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "inlet_request", default=None
)


def current() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)
