"""iFC ServerName comparison (issue 7 check)."""

from __future__ import annotations

import pytest

from hss_adapter.sh.ifc import ifc_warnings, same_server


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("sip:127.0.0.1:5060", "sip:127.0.0.1", True),
        ("sip:AS.Example.net;transport=udp", "sip:as.example.net:5060", True),
        ("<sip:as@127.0.0.1:5060;lr>", "sip:127.0.0.1:5060", True),
        ("sip:127.0.0.1:5070", "sip:127.0.0.1:5060", False),
        ("sip:other.example.net", "sip:as.example.net", False),
        ("sips:as.example.net", "sip:as.example.net", False),
    ],
)
def test_same_server(a: str, b: str, same: bool) -> None:
    assert same_server(a, b) is same


def test_warnings() -> None:
    assert ifc_warnings([], "sip:127.0.0.1:5060")
    assert ifc_warnings(["sip:10.0.0.1"], "sip:127.0.0.1:5060")
    assert ifc_warnings(["sip:10.0.0.1", "sip:127.0.0.1:5060;lr"], "sip:127.0.0.1:5060") == ()
