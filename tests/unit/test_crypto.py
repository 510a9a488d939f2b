"""Envelope encryption of signing secrets under SOURCE_KEK (docs/ingest.md, "Configuration")."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag

from services.common.config import ConfigError
from services.common.crypto import Keyring, Sealed

URLSAFE_KEK = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()  # "-" and "_" characters
SECRET = b"whsec_" + base64.b64encode(b"\x07" * 32)


def kek() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_parse_makes_the_first_entry_the_current_key():
    keyring = Keyring.parse(f"k2:{kek()},k1:{kek()}")

    assert keyring.current_id == "k2"


def test_parse_tolerates_spaces_around_entries():
    keyring = Keyring.parse(f" k2:{kek()} , k1:{kek()} ")

    assert keyring.current_id == "k2"


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " ",
        "k1",
        f"{kek()}",
        f":{kek()}",
        "k1:",
        "k1:not-base64!",
        f"k1:{kek()}=",  # bad padding
        f"k1:{base64.b64encode(os.urandom(16)).decode()}",  # AES-128 is not enough
        f"k1:{base64.b64encode(os.urandom(31)).decode()}",
        f"k1:{base64.b64encode(os.urandom(33)).decode()}",
        f"k1:{base64.b64encode(os.urandom(64)).decode()}",
        f"k1:{URLSAFE_KEK}",
        f"k1:{kek()},",
        f"k1:{kek()},k2",
        f"k1:{kek()},k2:short",
    ],
)
def test_malformed_entries_and_wrong_key_lengths_are_config_errors(spec):
    with pytest.raises(ConfigError, match="SOURCE_KEK"):
        Keyring.parse(spec)


def test_a_keyring_without_keys_is_a_config_error():
    with pytest.raises(ConfigError, match="SOURCE_KEK"):
        Keyring([])


def test_config_error_does_not_echo_key_material():
    material = base64.b64encode(os.urandom(16)).decode()

    with pytest.raises(ConfigError) as raised:
        Keyring.parse(f"k1:{material}")

    assert material not in str(raised.value)


def test_seal_then_open_returns_the_plaintext():
    keyring = Keyring.parse(f"k1:{kek()}")

    sealed = keyring.seal(SECRET, b"src_1")

    assert sealed.kek_id == "k1"
    assert SECRET not in sealed.ciphertext
    assert keyring.open(sealed, b"src_1") == SECRET


def test_a_sealed_record_survives_a_round_trip_through_its_stored_form():
    keyring = Keyring.parse(f"k1:{kek()}")
    sealed = keyring.seal(SECRET, b"src_1")

    record = sealed.to_record()

    assert set(record) == {"kek", "nonce", "ciphertext"}
    assert keyring.open(Sealed.from_record(record), b"src_1") == SECRET


def test_ciphertext_is_bound_to_its_source_id():
    keyring = Keyring.parse(f"k1:{kek()}")
    sealed = keyring.seal(SECRET, b"src_1")

    with pytest.raises(InvalidTag):
        keyring.open(sealed, b"src_2")


def test_tampered_ciphertext_does_not_open():
    keyring = Keyring.parse(f"k1:{kek()}")
    sealed = keyring.seal(SECRET, b"src_1")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]

    with pytest.raises(InvalidTag):
        keyring.open(Sealed(sealed.kek_id, sealed.nonce, flipped), b"src_1")


def test_ciphertext_from_an_older_key_opens_after_a_new_key_is_put_first():
    old = kek()
    sealed = Keyring.parse(f"k1:{old}").seal(SECRET, b"src_1")

    rotated = Keyring.parse(f"k2:{kek()},k1:{old}")

    assert rotated.open(sealed, b"src_1") == SECRET
    assert rotated.seal(SECRET, b"src_1").kek_id == "k2"


def test_a_ciphertext_naming_an_unconfigured_key_does_not_open():
    sealed = Keyring.parse(f"k1:{kek()}").seal(SECRET, b"src_1")

    with pytest.raises(KeyError, match="k1"):
        Keyring.parse(f"k2:{kek()}").open(sealed, b"src_1")


def test_same_key_id_with_other_material_does_not_open():
    sealed = Keyring.parse(f"k1:{kek()}").seal(SECRET, b"src_1")

    with pytest.raises(InvalidTag):
        Keyring.parse(f"k1:{kek()}").open(sealed, b"src_1")


def test_every_seal_uses_a_fresh_96_bit_nonce():
    keyring = Keyring.parse(f"k1:{kek()}")

    sealed = [keyring.seal(SECRET, b"src_1") for _ in range(50)]

    assert all(len(s.nonce) == 12 for s in sealed)
    assert len({s.nonce for s in sealed}) == 50
    assert len({s.ciphertext for s in sealed}) == 50


def test_a_key_id_named_twice_is_refused():
    material = base64.b64encode(b"a" * 32).decode()
    with pytest.raises(ConfigError, match="twice"):
        Keyring.parse(f"k1:{material},k1:{material}")
