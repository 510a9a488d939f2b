"""Source ids are ours to mint: their keyed check is verified before any lookup (README
"ingest")."""

from __future__ import annotations

import base64

import pytest

from services.common.crypto import Keyring
from services.common.source_store import SourceIds, is_source_id

KEK_A = "a:" + base64.b64encode(b"a" * 32).decode()
KEK_B = "b:" + base64.b64encode(b"b" * 32).decode()
LEGACY = "src_" + "0123456789" * 2


@pytest.fixture
def ids() -> SourceIds:
    return SourceIds.from_keyring(Keyring.parse(KEK_A), (LEGACY,))


def test_minted_ids_are_recognised_and_well_formed(ids):
    minted = ids.new()
    assert is_source_id(minted) and len(minted) == 36
    assert ids.recognised(minted)


def test_a_random_well_formed_id_is_not_recognised(ids):
    minted = ids.new()
    forged = minted[:-1] + ("0" if minted[-1] != "0" else "1")
    assert is_source_id(forged)
    assert not ids.recognised(forged)
    assert not ids.recognised("src_" + "f" * 32)


def test_ids_minted_under_another_key_are_not_recognised(ids):
    other = SourceIds.from_keyring(Keyring.parse(KEK_B))
    assert not ids.recognised(other.new())


def test_ids_stay_recognised_after_a_new_kek_is_put_first(ids):
    minted = ids.new()
    rotated = SourceIds.from_keyring(Keyring.parse(f"{KEK_B},{KEK_A}"))
    assert rotated.recognised(minted)


def test_legacy_ids_are_recognised_only_when_listed(ids):
    assert ids.recognised(LEGACY)
    assert not ids.recognised("src_" + "9" * 20)
    assert is_source_id("src_" + "9" * 20)  # the shape alone is not enough


@pytest.mark.parametrize(
    "value",
    [
        "src_" + "a" * 20 + "\n",
        "src_" + "a" * 19,
        "src_" + "a" * 21,
        "src_" + "a" * 33,
        "SRC_" + "a" * 20,
        "src_" + "A" * 20,
        "",
    ],
)
def test_anything_else_is_not_a_source_id(ids, value):
    assert not is_source_id(value)
    assert not ids.recognised(value)
