"""Per-source rate limits that hold across instances (docs/ingest.md "Rate limits").

A source's ``rateLimit`` is events per second (``DEFAULT_RATE_LIMIT`` when never set, ``None``
for none). Each second is a budget kept in ``sources/{id}/rate_leases/{unix second}``: the
first verified event of a second on an instance leases a share of it with one write, an
``Increment`` of ``leased`` whose result (the total leased so far, returned by the commit) says
how much of the budget others took first; the instance is granted what is left, up to what it
asked. Within the second every further event is counted against that grant in memory.

- Exact per second: the grants of one second never add up to more than the limit, so any 10 s
  accept at most 11 seconds' worth (within the SPEC's 110 % + one second).
- At most one write per instance, source and second, and none for a source without a limit;
  an event refused because the grant is spent costs no Firestore call at all.
- An instance asks for what it saw last second (accepted and refused) plus a quarter, and at
  least half the limit, first come first served. So a steady sender spread over two instances
  is never refused up to about 80 % of its limit, and a burst from idle gets half the limit on
  each instance at once. With more instances, or an uneven spread near the limit, the last
  instance to lease in a second may get less than it sees: its refusals say ``Retry-After: 1``.
- The lease is best effort with a short deadline: when storage is slow the instance falls back
  to a small local share (a tenth of the limit) for that second, never to no limit at all.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from services.common import context, source_store, source_view
from services.common.errors import TooManyRequests

DEFAULT_RATE_LIMIT = source_view.DEFAULT_RATE_LIMIT
MAX_RATE_LIMIT = 10_000
LEASES = source_store.RATE_LEASES
LEASE_DEADLINE_S = 0.5
LEASE_TTL = dt.timedelta(hours=1)  # the TTL policy collects old seconds
FLOOR_SHARE = 0.5  # the least an instance asks for, as a share of the limit
HEADROOM = 1.25  # an instance asks for last second's arrivals times this
FALLBACK_SHARE = 0.1  # granted locally when the lease does not answer in time
MAX_SOURCES = 10_000


@dataclass
class _Second:
    second: int
    granted: int
    used: int = 0
    arrivals: int = 0


def parse_limit(value: Any) -> int | None:
    """A ``rateLimit`` from a request body: an integer from 1 to ``MAX_RATE_LIMIT`` or None;
    anything else is a ``ValueError``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT:
        raise ValueError(f"rateLimit must be an integer from 1 to {MAX_RATE_LIMIT}, or null")
    return value


def of_record(record: dict[str, Any]) -> int | None:
    """A stored source's limit: records from before limits existed get the default."""
    return record.get("rateLimit", DEFAULT_RATE_LIMIT)


def ask_for(limit: int, last_arrivals: int) -> int:
    """How much of a second's budget an instance leases, from what it saw the second before."""
    wanted = max(math.ceil(limit * FLOOR_SHARE), math.ceil(last_arrivals * HEADROOM) + 1)
    return min(limit, wanted)


def granted_of(limit: int, ask: int, total_leased: int) -> int:
    """What is left for a lease of ``ask`` once ``total_leased`` (its own included) is leased."""
    return max(0, min(ask, limit - (total_leased - ask)))


class RateLimiter:
    """The instance's share of each limited source's current second."""

    def __init__(self, max_sources: int = MAX_SOURCES) -> None:
        self._max = max_sources
        self._seconds: dict[str, _Second] = {}
        self._lock = threading.Lock()  # counters only: never held across a Firestore call
        self._leasing: dict[str, threading.Lock] = {}

    def admit(self, source_id: str, limit: int | None) -> None:
        """Count one verified event against the source's limit, or raise ``TooManyRequests``."""
        if limit is None:
            return
        now = time.time()
        second = int(now)
        if not self._take(source_id, second):
            with self._lock:
                leasing = self._leasing.setdefault(source_id, threading.Lock())
            with leasing:  # one lease per source and second: a burst waits for it
                current = self._seconds.get(source_id)
                if current is None or current.second != second:
                    self._lease(source_id, second, limit, current)
            with self._lock:
                self._leasing.pop(source_id, None)
            if not self._take(source_id, second):
                raise TooManyRequests(
                    f"this source accepts at most {limit} events per second; retry shortly",
                    code="rate_limited",
                    headers={"Retry-After": str(max(1, math.ceil(second + 1 - now)))},
                )

    def _take(self, source_id: str, second: int) -> bool:
        """Use one event of this second's grant; False when the second has no lease yet or its
        grant is spent (then the refusal costs nothing but this lookup)."""
        with self._lock:
            current = self._seconds.get(source_id)
            if current is None or current.second != second:
                return False
            current.arrivals += 1
            if current.used >= current.granted:
                return False
            current.used += 1
            return True

    def _lease(self, source_id: str, second: int, limit: int, previous: _Second | None) -> None:
        from google.cloud import firestore

        last = previous.arrivals if previous is not None and previous.second == second - 1 else 0
        ask = ask_for(limit, last)
        ref = source_store.source_ref(source_id).collection(LEASES).document(str(second))
        started = dt.datetime.fromtimestamp(second, dt.UTC)
        try:
            written = ref.set(
                {"leased": firestore.Increment(ask), "expireAt": started + LEASE_TTL},
                merge=True,
                retry=None,
                timeout=LEASE_DEADLINE_S,
            )
            granted = granted_of(limit, ask, int(written.transform_results[0].integer_value))
            outcome = "leased"
        except Exception as err:  # slow or failing storage: a small local share, counted
            granted = max(1, int(limit * FALLBACK_SHARE))
            outcome = f"fallback:{type(err).__name__}"
        with self._lock:
            self._seconds.pop(source_id, None)  # re-inserted last: the dict stays in idle order
            while len(self._seconds) >= self._max:
                self._seconds.pop(next(iter(self._seconds)))
            self._seconds[source_id] = _Second(second, granted)
        ctx = context.current()
        if ctx is not None:
            ctx.log_fields.update(
                rateLease=outcome, rateSecond=second, rateAsked=ask, rateGranted=granted
            )
