"""Voicemail PIN hashing: only salted scrypt hashes are stored; verification rejects everything else."""

from __future__ import annotations

import pytest

from hss_adapter.pin import PinError, hash_pin, verify_pin


def test_hash_is_salted_and_verifies() -> None:
    a, b = hash_pin("1234"), hash_pin("1234")
    assert a != b  # random salt
    assert a.startswith("scrypt$") and "1234" not in a
    assert verify_pin("1234", a) and verify_pin("1234", b)


@pytest.mark.parametrize(
    ("pin", "stored_for", "expected"),
    [
        ("1234", "1234", True),
        ("1235", "1234", False),
        ("", "1234", False),
        ("12345678", "12345678", True),
        ("1234", None, False),
    ],
)
def test_verify_table(pin: str, stored_for: str | None, expected: bool) -> None:
    stored = None if stored_for is None else hash_pin(stored_for)
    assert verify_pin(pin, stored) is expected


@pytest.mark.parametrize(
    "stored",
    ["", "md5$abc", "scrypt$1$2$3", "scrypt$16384$8$1$!!!$???", "scrypt$x$8$1$AAAA$AAAA", "plain1234"],
)
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert verify_pin("1234", stored) is False


@pytest.mark.parametrize("pin", ["123", "abcd", "12 34", "1234567890123", ""])
def test_bad_pins_are_refused(pin: str) -> None:
    with pytest.raises(PinError):
        hash_pin(pin)


def test_media_store_pbkdf2_hashes_verify() -> None:
    """The media mailbox store's format (pbkdf2_sha256$iterations$salt hex$hash hex) is accepted too."""
    import hashlib

    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", b"2468", salt, 1000)
    stored = f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"
    assert verify_pin("2468", stored)
    assert not verify_pin("2469", stored)
    assert not verify_pin("2468", "pbkdf2_sha256$1000$zz$00")
