"""Flow C: the customer's Privacy (OIR, TS 24.607; RFC 3323, RFC 3325 §9.3) on the outgoing leg the AS
places for the DID: which header values, From and P-Asserted-Identity the INVITE gets."""

from __future__ import annotations

import pytest
from test_as_privacy import DID, invite

from appserver import legs, privacy
from appserver.privacy import LegPrivacy
from secondnum.sip import SipRequest, SipURI, parse_message

DEST = "420273333444"
MOBILE = "42073723123"
ANON = "Anonymous <sip:anonymous@anonymous.invalid>"  # RFC 3323 §4.1.1.3
NONE = LegPrivacy(False, None, False)


def customer_invite(*lines: str) -> SipRequest:
    """The customer's access call (flow B) as the S-CSCF delivers it."""
    return invite(f"P-Asserted-Identity: <tel:+{MOBILE}>", *lines, sender=f"<tel:+{MOBILE}>")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ((), NONE),  # no Privacy: unchanged (From and PAI = the DID)
        (("Privacy: none",), NONE),
        (("Privacy: x-unknown",), NONE),
        # id: the asserted identity (the DID) withheld at the boundary; From anonymous (TS 24.607).
        (("Privacy: id",), LegPrivacy(True, "id", False)),
        # header/user: identity privacy, so id is added for the P-Asserted-Identity (RFC 3325 §9.3).
        (("Privacy: header",), LegPrivacy(True, "header; id", False)),
        (("Privacy: user",), LegPrivacy(True, "user; id", False)),
        (("Privacy: header;user",), LegPrivacy(True, "header; user; id", False)),
        (("Privacy: header;critical",), LegPrivacy(True, "header; id; critical", False)),
        (("Privacy: id;header;user;critical",), LegPrivacy(True, "id; header; user; critical", False)),
        (("Privacy: none;id",), LegPrivacy(True, "id", False)),  # contradictory: privacy wins
        # Not about the identity: passed on, From stays the DID; nothing to mark (no History-Info sent).
        (("Privacy: session",), LegPrivacy(False, "session", False)),
        (("Privacy: history",), LegPrivacy(False, "history", False)),
        (("Privacy: id;history",), LegPrivacy(True, "id; history", False)),
    ],
)
def test_outgoing_leg_privacy(lines: tuple[str, ...], expected: LegPrivacy) -> None:
    assert privacy.outgoing_leg(privacy.requested(customer_invite(*lines))) == expected


def build(leg_privacy: LegPrivacy) -> SipRequest:
    req = legs.outgoing_invite(destination=SipURI.parse(f"tel:+{DEST}"), did=DID,
                               scscf=SipURI.parse("sip:10.0.0.5"), contact=SipURI.parse("sip:10.0.0.2"),
                               call_id="o", domain="secondnum.local", supported=["100rel"],
                               privacy=leg_privacy)
    out = parse_message(req.encode())
    assert isinstance(out, SipRequest)
    return out


@pytest.mark.parametrize(
    ("lines", "from_", "privacy_header"),
    [
        ((), f"<tel:+{DID}>", None),
        (("Privacy: none",), f"<tel:+{DID}>", None),
        (("Privacy: id",), ANON, "id"),
        (("Privacy: header; user",), ANON, "header; user; id"),
        (("Privacy: session",), f"<tel:+{DID}>", "session"),
    ],
)
def test_outgoing_invite_on_the_wire(lines: tuple[str, ...], from_: str, privacy_header: str | None) -> None:
    out = build(privacy.outgoing_leg(privacy.requested(customer_invite(*lines))))
    assert (out.headers.get("from") or "").startswith(from_ + ";tag=")
    assert out.from_.tag
    # Inside the trust domain the asserted identity stays the DID (the S-CSCF's orig processing needs it).
    assert out.headers.get("p-asserted-identity") == f"<tel:+{DID}>"
    assert out.headers.get("privacy") == privacy_header
    assert (out.headers.get("route") or "").endswith(";lr;orig>")
    if from_ == ANON:
        assert DID not in (out.headers.get("from") or "")
