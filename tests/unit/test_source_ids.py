"""Source ids are ours to mint; anything else is unknown without a Firestore lookup."""

from __future__ import annotations

import pytest

from services.common.source_store import is_source_id, new_source_id


def test_minted_ids_are_recognised():
    assert is_source_id(new_source_id())


@pytest.mark.parametrize(
    "value",
    [
        "src_" + "a" * 20 + "\n",
        "src_" + "a" * 19,
        "src_" + "a" * 21,
        "SRC_" + "a" * 20,
        "src_" + "A" * 20,
        "",
    ],
)
def test_anything_else_is_not_a_source_id(value):
    assert not is_source_id(value)
