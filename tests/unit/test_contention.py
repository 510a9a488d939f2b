"""The one retry policy for optimistic writes that lose a race (services/common/contention.py)."""

from __future__ import annotations

import pytest

from services.common import contention
from services.common.errors import Conflict


def test_an_attempt_that_loses_a_few_races_is_retried_until_it_commits():
    rounds = []

    def attempt() -> str:
        rounds.append(1)
        if len(rounds) < 4:
            raise contention.Contended
        return "committed"

    assert contention.retry_contended(attempt) == "committed"
    assert len(rounds) == 4


def test_contention_that_outlasts_the_policy_is_a_409_with_retry_after():
    rounds = []

    def attempt() -> None:
        rounds.append(1)
        raise contention.Contended

    with pytest.raises(Conflict) as raised:
        contention.retry_contended(attempt, message="busy", code="idempotency_conflict")
    assert len(rounds) == contention.ATTEMPTS
    assert raised.value.status == 409 and raised.value.code == "idempotency_conflict"
    assert raised.value.headers["Retry-After"] == str(contention.RETRY_AFTER_S)


def test_other_errors_are_not_retried():
    rounds = []

    def attempt() -> None:
        rounds.append(1)
        raise ValueError("not a race")

    with pytest.raises(ValueError):
        contention.retry_contended(attempt)
    assert len(rounds) == 1
