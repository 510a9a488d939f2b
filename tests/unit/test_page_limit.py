"""``page_limit``: the one reading of a list's ``limit`` parameter (sources, blocks, users,
deliveries)."""

from __future__ import annotations

import pytest

from services.common.errors import BadRequest
from services.common.http import page_limit


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 50), ("1", 1), ("100", 100), ("007", 7), (100, 100), (1, 1)]
)
def test_a_limit_from_1_to_the_maximum_is_read(value, expected):
    assert page_limit(value, 50, 100) == expected


@pytest.mark.parametrize(
    "value",
    ["0", "101", "-1", "x", "1.5", " 5", "+5", "5 ", "", "1000", "\u0665", 0, 101, -1, True, 1.0],
)
def test_anything_else_is_400_naming_the_range(value):
    with pytest.raises(BadRequest, match="from 1 to 100"):
        page_limit(value, 50, 100)
