"""Which early dialog towards the caller shows which far early dialog (appserver.early.CallerTags).

One caller early dialog per far early dialog, as a forking proxy shows them (RFC 3261 §13.2.2.4): the
INVITE's To tag for the first one with a session description, fresh tags after; the AS's own 180 goes in
the ringing far dialog's own caller dialog; a dialog ended by 199 (RFC 6228) or holding another far side's
offer/answer never gets the 2xx.
"""

from __future__ import annotations

import itertools

import pytest

from appserver import legs
from appserver.early import CallerTags
from secondnum.sip import SipRequest, parse_message

A, B, C = ("leg-a", "ta"), ("leg-b", "tb"), ("leg-c", "tc")
VOICEMAIL = ("", "")  # an answer from no far early dialog (voicemail, a far side that showed nothing)

Step = tuple[str, object, object]

CASES: dict[str, list[Step]] = {
    "plain call: the INVITE's tag": [
        ("answer", A, "inv"),
    ],
    "brief's fork: A's early media, B rings, A busy (199 on inv), B answers in its own dialog": [
        ("link", A, "inv"),
        ("ringing", B, "f1"),  # not in A's dialog (task 3)
        ("ended", "leg-a", ["inv"]),
        ("terminate", "inv", None),
        ("answer", B, "f1"),
    ],
    "the 180 of a linked far dialog goes in its own dialog": [
        ("link", A, "inv"),
        ("link", B, "f1"),
        ("ringing", B, "f1"),
        ("ringing", A, "inv"),
        ("answer", B, "f1"),
    ],
    "a far dialog keeps its tag from its 180 to its 18x with SDP and its 2xx": [
        ("link", A, "inv"),
        ("ringing", B, "f1"),
        ("link", B, "f1"),
        ("answer", B, "f1"),
    ],
    "an unlinked 180 in the INVITE's dialog does not reserve it": [
        ("ringing", A, "inv"),
        ("link", B, "inv"),
        ("answer", A, "f1"),  # inv carries B's offer/answer: never two answers in one dialog
    ],
    "the INVITE's dialog stays free for an answer while nobody is linked to it": [
        ("ringing", A, "inv"),
        ("ringing", A, "inv"),
        ("answer", A, "inv"),
    ],
    "voicemail after the INVITE's dialog got a 199: a fresh dialog": [
        ("link", A, "inv"),
        ("ended", "leg-a", ["inv"]),
        ("terminate", "inv", None),
        ("answer", VOICEMAIL, "f1"),
        ("link", C, "f2"),  # nor is a terminated dialog linked again
    ],
    "a terminated dialog is never answered in, even when remembered": [
        ("ringing", B, "inv"),
        ("link", A, "inv"),
        ("ringing", C, "f1"),
        ("terminate", "f1", None),
        ("answer", C, "f2"),
    ],
    "ended returns the dialogs shown for every far dialog of that leg (downstream forking)": [
        ("link", A, "inv"),
        ("link", ("leg-a", "ta2"), "f1"),
        ("ringing", ("leg-a", "ta3"), "f2"),
        ("ended", "leg-b", []),
        ("ended", "leg-a", ["inv", "f1", "f2"]),
        ("ended", "leg-a", []),  # forgotten
        ("answer", B, "f3"),  # inv still holds A's (ended) offer/answer
    ],
}


@pytest.mark.parametrize("steps", list(CASES.values()), ids=list(CASES))
def test_caller_tags(steps: list[Step]) -> None:
    counter = itertools.count(1)
    tags = CallerTags("inv", fresh=lambda: f"f{next(counter)}")
    for op, arg, expected in steps:
        if op == "terminate":
            assert isinstance(arg, str)
            tags.terminated.add(arg)
            continue
        if op == "ended":
            assert isinstance(arg, str)
            got: object = tags.ended(arg)
        else:
            assert isinstance(arg, tuple)
            got = getattr(tags, op)(arg)
        assert got == expected, (op, arg)


def test_199_is_a_served_option() -> None:
    """A Require naming 199 is served (no 420), and OPTIONS says the AS supports it (RFC 3261 §11.2)."""
    raw = (b"INVITE tel:+42027777100 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
           b"From: <tel:+42075553333>;tag=a\r\nTo: <tel:+42027777100>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
           b"Require: 199\r\nContent-Length: 0\r\n\r\n")
    req = parse_message(raw)
    assert isinstance(req, SipRequest)
    assert legs.unsupported_options(req) == []
    assert "199" in [t.strip() for t in legs.SUPPORTED.split(",")]
