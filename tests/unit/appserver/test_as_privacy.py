"""Caller privacy on the legs the AS creates (RFC 3323, RFC 3325 §9.3, RFC 7044 §10); the legs' Supported."""

from __future__ import annotations

import pytest

from appserver import legs, privacy
from appserver.cdr import CallRecord, to_raw
from appserver.privacy import LegPrivacy, Privacy
from secondnum.sip import HistoryInfoEntry, SipRequest, SipURI, parse_message, parse_name_addr

CALLER = "42075553333"
DID = "42027777100"


def invite(*lines: str, sender: str = f'"Alice" <tel:+{CALLER}>') -> SipRequest:
    """An INVITE to the DID from ``sender`` (a From name-addr) with extra header ``lines``."""
    raw = (
        f"INVITE tel:+{DID} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
        f"From: {sender};tag=a\r\nTo: <tel:+{DID}>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        + "".join(line + "\r\n" for line in lines) + "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw.encode())
    assert isinstance(msg, SipRequest)
    return msg


@pytest.mark.parametrize(
    ("lines", "values"),
    [
        ((), None),
        (("Privacy: id",), ("id",)),
        (("Privacy: id;header",), ("id", "header")),
        (("Privacy: ID ; History",), ("id", "history")),
        (("Privacy: user, critical",), ("user", "critical")),  # a comma list, tolerated
        (("Privacy: header", "Privacy: session"), ("header", "session")),  # two header lines
        (("Privacy: none",), ("none",)),
        (("Privacy: none;id",), ("id",)),  # contradictory: privacy wins (fail safe)
        (("Privacy: id;id",), ("id",)),
        (("Privacy: x-private;foo",), None),  # unknown values only
        (("Privacy:",), None),
    ],
)
def test_requested(lines: tuple[str, ...], values: tuple[str, ...] | None) -> None:
    got = privacy.requested(invite(*lines))
    assert (got.values if got is not None else None) == values


NONE = LegPrivacy(False, None, False)
ANON = "Anonymous <sip:anonymous@anonymous.invalid>"  # RFC 3323 §4.1.1.3 (a token display: no quotes needed)


@pytest.mark.parametrize(
    ("values", "present_did", "expected"),
    [
        (None, False, NONE),
        (None, True, NONE),
        (("none",), False, NONE),
        # Original caller shown: Privacy goes on; id/header/user -> anonymous From (RFC 3323 §4.1.1.3).
        (("id",), False, LegPrivacy(True, "id", False)),
        (("header",), False, LegPrivacy(True, "header", False)),
        (("user",), False, LegPrivacy(True, "user", False)),
        (("session",), False, LegPrivacy(False, "session", False)),
        (("history",), False, LegPrivacy(False, "history", True)),
        (("id", "history", "critical"), False, LegPrivacy(True, "id; history; critical", True)),
        # DID shown: the account's own identity; only history privacy applies (RFC 7044 §10).
        (("id",), True, NONE),
        (("header", "user"), True, NONE),
        (("history",), True, LegPrivacy(False, "history", True)),
        (("id", "history", "critical"), True, LegPrivacy(False, "history; critical", True)),
    ],
)
def test_forward_leg(values: tuple[str, ...] | None, present_did: bool, expected: LegPrivacy) -> None:
    asked = Privacy(values) if values is not None else None
    assert privacy.forward_leg(asked, present_did) == expected


def build(caller: SipRequest, present_did: bool, history: list[HistoryInfoEntry] | None = None) -> SipRequest:
    req = legs.forward_invite(
        target=SipURI.parse("tel:+42073723123"), did=DID, caller_from=caller.from_,
        caller_pai=parse_name_addr(f"<tel:+{CALLER}>"), present_did=present_did,
        return_route=[parse_name_addr("<sip:10.0.0.5;lr;odi=x>")], contact=SipURI.parse("sip:10.0.0.2"),
        call_id="x", pcv=None, history=history or [], diversion=(), body=b"", content_type=None,
        privacy=privacy.forward_leg(privacy.requested(caller), present_did))
    out = parse_message(req.encode())
    assert isinstance(out, SipRequest)
    return out


@pytest.mark.parametrize(
    ("lines", "present_did", "from_", "pai", "privacy_header"),
    [
        ((), False, f"Alice <tel:+{CALLER}>", f"<tel:+{CALLER}>", None),
        (("Privacy: id",), False, ANON, f"<tel:+{CALLER}>", "id"),
        (("Privacy: header;id",), False, ANON, f"<tel:+{CALLER}>",
         "header; id"),
        (("Privacy: user",), False, ANON, f"<tel:+{CALLER}>", "user"),
        (("Privacy: none",), False, f"Alice <tel:+{CALLER}>", f"<tel:+{CALLER}>", None),
        (("Privacy: id",), True, f"<tel:+{DID}>", f"<tel:+{DID}>", None),
        (("Privacy: id;history",), True, f"<tel:+{DID}>", f"<tel:+{DID}>", "history"),
    ],
)
def test_forward_invite_on_the_wire(lines: tuple[str, ...], present_did: bool, from_: str, pai: str,
                                    privacy_header: str | None) -> None:
    out = build(invite(*lines), present_did)
    assert (out.headers.get("from") or "").startswith(from_ + ";tag=")
    assert out.from_.tag not in ("a", None)
    assert out.headers.get("p-asserted-identity") == pai  # kept inside the trust domain (RFC 3325 §9.3)
    assert out.headers.get("privacy") == privacy_header
    if from_ == ANON:
        assert CALLER not in (out.headers.get("from") or "")


def test_history_entries_are_marked_private_when_history_privacy_is_asked() -> None:
    history = [HistoryInfoEntry(SipURI.parse(f"tel:+{DID}"), "1"),
               HistoryInfoEntry(SipURI.parse("sip:+42073723123@10.0.0.9;user=phone;cause=302"), "1.1",
                                {"mp": "1"}),
               HistoryInfoEntry(SipURI.parse("sip:bob@10.0.0.9?Reason=SIP%3Bcause%3D486"), "1.2",
                                {"mp": "1"})]
    marked = build(invite("Privacy: history"), True, history).history_info
    assert [str(e) for e in marked] == [
        f"<tel:+{DID}>;index=1",  # a tel URI has no header component (RFC 3966): the Privacy header covers it
        "<sip:+42073723123@10.0.0.9;user=phone;cause=302?Privacy=history>;index=1.1;mp=1",
        "<sip:bob@10.0.0.9?Privacy=history&Reason=SIP%3Bcause%3D486>;index=1.2;mp=1",
    ]
    assert privacy.private_history(marked) == marked  # idempotent
    unmarked = build(invite(), True, history).history_info
    assert [str(e) for e in unmarked] == [str(e) for e in history]


def test_voicemail_leg_carries_the_callers_privacy() -> None:
    caller = invite("Privacy: id")
    kw = dict(ruri=SipURI.parse("sip:vm-deposit@10.0.0.3;mailbox=1"), caller_from=caller.from_,
              caller_pai=None, contact=SipURI.parse("sip:10.0.0.2"), call_id="v", pcv=None, history=(),
              diversion=(), body=b"", content_type=None)
    assert legs.voicemail_invite(**kw, privacy=("id",)).headers.get("privacy") == "id"  # type: ignore[arg-type]
    assert "privacy" not in legs.voicemail_invite(**kw).headers  # type: ignore[arg-type]


def test_cdr_records_the_privacy_asked_for() -> None:
    rec = CallRecord(icid="i", did=DID, caller=CALLER, called=DID)
    assert "privacy" not in to_raw(rec)  # calls without privacy store nothing more
    rec.privacy = ("id", "history")
    assert to_raw(rec)["privacy"] == ["id", "history"]


@pytest.mark.parametrize("present_did", [True, False])
def test_legs_do_not_advertise_replaces(present_did: bool) -> None:
    """The AS has no Replaces handling (RFC 3891): its legs must not say they support it (RFC 3261 §20.37)."""
    out = build(invite("Supported: 100rel, replaces"), present_did)
    assert "replaces" not in out.supported and out.supported == ["histinfo"]
    media = legs.voicemail_invite(
        ruri=SipURI.parse("sip:vm-deposit@10.0.0.3"), caller_from=out.from_, caller_pai=None,
        contact=SipURI.parse("sip:10.0.0.2"), call_id="v", pcv=None, history=(), diversion=(), body=b"",
        content_type=None)
    dial = legs.outgoing_invite(destination=SipURI.parse("tel:+420273333444"), did=DID,
                                scscf=SipURI.parse("sip:10.0.0.5"), contact=SipURI.parse("sip:10.0.0.2"),
                                call_id="o", domain="secondnum.local", supported=["100rel"])
    assert "replaces" not in media.supported and "replaces" not in dial.supported


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ((f"P-Asserted-Identity: <tel:+{CALLER}>",), CALLER),
        ((f"P-Asserted-Identity: <tel:+{CALLER}>", "Privacy: id"), "anonymous"),
        ((f"P-Asserted-Identity: <tel:+{CALLER}>", "Privacy: header; history"), "anonymous"),
        ((f"P-Asserted-Identity: <tel:+{CALLER}>", "Privacy: history"), CALLER),  # not about the caller's id
        ((f"P-Asserted-Identity: <tel:+{CALLER}>", "Privacy: none"), CALLER),
    ],
)
def test_media_withholds_the_number_of_a_caller_asking_for_privacy(lines: tuple[str, ...],
                                                                   expected: str) -> None:
    """The voicemail leg carries the caller's Privacy: the mailbox owner must not hear the number."""
    from media.sipserver import MediaServer

    assert MediaServer._caller(invite(*lines)) == expected
