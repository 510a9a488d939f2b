"""The one retry policy for optimistic writes that lose a race (issue 14, item 12).

Every read-then-conditional-write in the services (an event's idempotency key, a source's keys,
a Clerk object and its delivery record, a source's deletion) follows the same rule: read, decide,
commit with a precondition on what was read; if the precondition fails, something changed in
between, so read and decide again. At most ``ATTEMPTS`` rounds, with a short jittered backoff so
that concurrent writers stop colliding; after that the request answers 409 with ``Retry-After``
and the caller retries (partners, Svix and browsers all do). Never an unbounded loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from services.common.errors import Conflict

T = TypeVar("T")

ATTEMPTS = 10
BACKOFF_S = 0.01  # doubled per round, capped, full jitter: about 0.9 s in all at worst
MAX_BACKOFF_S = 0.2
RETRY_AFTER_S = 1


class Contended(Exception):
    """Raised by an attempt whose commit found that what it read had changed."""


def retry_contended(
    attempt: Callable[[], T],
    *,
    message: str = "the resource is being changed concurrently, retry",
    code: str = "conflict",
) -> T:
    """Run ``attempt`` until it returns without raising ``Contended``, at most ``ATTEMPTS``
    times; then answer 409 ``code`` with ``Retry-After``."""
    for round_ in range(ATTEMPTS):
        if round_:
            time.sleep(random.uniform(0, min(MAX_BACKOFF_S, BACKOFF_S * 2**round_)))
        try:
            return attempt()
        except Contended:
            continue
    raise Conflict(message, code=code, headers={"Retry-After": str(RETRY_AFTER_S)})
