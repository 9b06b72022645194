"""Every spelling of one subscriber reduces to the same key (TS 23.003 §13.4, RFC 3966)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secondnum.identity import IdentityError, canonical, normalise_e164, tel_uri


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        ("42073723123@pstn", "42073723123"),
        ("tel:+42073723123", "42073723123"),
        ("<tel:+42073723123>", "42073723123"),
        ("tel:+420-737-23123;phone-context=x", "42073723123"),
        ("sip:+42073723123@ims.example.net;user=phone", "42073723123"),
        ("sip:42073723123@ims.example.net;user=phone", "42073723123"),
        ("<sip:+42073723123@ims.example.net:5060;user=phone>", "42073723123"),
        ("+420 737 23123", "42073723123"),
        ("sip:alice@IMS.Example.NET;transport=tcp", "sip:alice@ims.example.net"),
        ("alice@Example.net", "sip:alice@example.net"),
    ],
)
def test_canonical(identity: str, key: str) -> None:
    assert canonical(identity) == key


@pytest.mark.parametrize(
    "bad", ["", "tel:", "tel:+0123456", "abc", "sip:ims.example.net", "12345", "+1234567890123456",
            "42073723123\x00@pstn", "sip:a\nb@h", "tel:+4207372\t3123"]
)
def test_rejects_non_identities(bad: str) -> None:
    with pytest.raises(IdentityError):
        canonical(bad)


@given(st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True))
def test_all_forms_agree(digits: str) -> None:
    forms = [f"{digits}@pstn", tel_uri(digits), f"sip:+{digits}@h.example;user=phone", f"+{digits}"]
    assert {canonical(f) for f in forms} == {digits}
    assert normalise_e164(f"+{digits}") == digits


@given(st.text(max_size=60))
def test_never_raises_anything_but_identity_error(text: str) -> None:
    with contextlib.suppress(IdentityError):
        canonical(text)
