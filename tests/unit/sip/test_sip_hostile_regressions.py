"""Regressions for parser defects found by coverage-guided fuzzing (``tests/fuzz/atheris_run.py``)."""

from __future__ import annotations

import pytest

from secondnum.sip import SipParseError, parse_message

HEAD = b"REFER sip:as@1.0.0.1:5060 SIP/2.0\r\n"


@pytest.mark.parametrize("via", [b",", b" , ", b",,"])
def test_top_via_of_an_empty_list_is_a_bad_header(via: bytes) -> None:
    # atheris, sip_parser: "Via: ," made top_via raise IndexError instead of BadHeaderError (so the
    # endpoint logged a dispatch error instead of dropping the message as malformed).
    msg = parse_message(HEAD + b"Via: " + via + b"\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(SipParseError):
        _ = msg.top_via
