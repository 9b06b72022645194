"""Voicemail PIN hashing: only a salted scrypt hash is ever stored (RFC 7914).

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` so parameters can be raised later without breaking
stored hashes. Verification is constant-time (``hmac.compare_digest``) and also accepts the
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` hashes the media server's mailbox store writes, so a PIN
hash can move between the two stores.

Cost: one verification takes tens of milliseconds of CPU by design; call it off the event loop
(``await asyncio.to_thread(profile.voicemail.verify_pin, pin)``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
PIN_RE = re.compile(r"^[0-9]{4,12}$")
"""PINs are entered with DTMF digits: 4 to 12 of them."""


class PinError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """Hash a PIN for storage; raises :class:`PinError` unless it is 4 to 12 digits."""
    if not PIN_RE.match(pin):
        raise PinError("PIN must be 4 to 12 digits")
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """True when ``pin`` matches ``stored``; False for no stored hash, a malformed one or a wrong PIN."""
    if not stored or not isinstance(pin, str):
        return False
    if stored.startswith("pbkdf2_sha256$"):
        return _verify_pbkdf2(pin, stored)
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        digest = hashlib.scrypt(pin.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def _verify_pbkdf2(pin: str, stored: str) -> bool:
    try:
        _, iterations, salt_hex, hash_hex = stored.split("$")
        expected = bytes.fromhex(hash_hex)
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt_hex), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)
