"""Flow C honours the customer's privacy (OIR, TS 24.607; RFC 3323, RFC 3325 §9.3).

The customer calls their DID from the mobile hiding their identity (Privacy in the access call's INVITE),
lands in the voicemail menu and asks for an outgoing call (REFER from media). The outgoing INVITE still
asserts the DID inside the trust domain, but carries the Privacy (``id`` at least) and an anonymous From, so
the destination is not shown the DID. Without Privacy nothing changes. SIPp plays the S-CSCF with the
customer, media, and the destination; the built-in OCS charges the call.
"""

from __future__ import annotations

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, DESTINATION, DID, MOBILE, Stack

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

ANON_URI = "sip:anonymous@anonymous.invalid"


@pytest.mark.parametrize(
    ("asked", "privacy_header", "anonymous"),
    [
        ("id", "id", True),
        ("header;user", "header; user; id", True),  # id added: the asserted DID must be withheld too
        ("none", None, False),
        (None, None, False),  # no Privacy header at all: unchanged behaviour
    ],
)
async def test_outgoing_call_carries_the_customers_privacy(stack: Stack, asked: str | None,
                                                           privacy_header: str | None,
                                                           anonymous: bool) -> None:
    await stack.provision()
    dest = await Sipp(stack.workdir, "dest", "dest_uas.xml", stack.scscf_port).start()
    media = await Sipp(
        stack.workdir, "media", "media_refer.xml", stack.media_port, keys={"dest": DESTINATION, "did": DID}
    ).start()
    keys = caller_keys(stack, MOBILE)
    scenario = "caller_reinvited.xml"
    if asked is not None:
        keys["privacy"] = asked
        scenario = "caller_privacy_reinvited.xml"
    caller = await start_caller(stack, scenario, keys=keys, pause_ms=1000)
    codes = await run_all(caller, media, dest)
    assert codes == [0, 0, 0], explain(caller, media, dest)

    (out,) = dest.received("INVITE")
    assert out.start_line == f"INVITE tel:+{DESTINATION} SIP/2.0"
    assert out.header("Route") == f"<sip:127.0.0.1:{stack.scscf_port};lr;orig>"
    # Inside the trust domain the network asserts the DID either way (RFC 3325 §9.3, TS 24.229 §5.7.3).
    assert out.all("P-Asserted-Identity") == [f"<tel:+{DID}>"]
    assert out.all("Privacy") == ([privacy_header] if privacy_header else [])
    from_ = out.header("From") or ""
    if anonymous:
        assert from_.startswith(f"Anonymous <{ANON_URI}>;tag=")  # RFC 3323 §4.1.1.3
        assert DID not in from_ and MOBILE not in from_
    else:
        assert from_.startswith(f"<tel:+{DID}>;tag=")
    assert MOBILE not in "".join(v for _, v in out.headers)  # the mobile never leaks, privacy or not

    # The call itself is unaffected: answered, bridged, charged to the DID, media released.
    frags = [m.body.splitlines()[0] for m in media.received("NOTIFY")]
    assert frags[-1] == "SIP/2.0 200 OK"
    (ccr_i,) = stack.ccr(CCR_I)
    assert ccr_i.subscription_e164 == DID and ccr_i.role_of_node == 0
    (cdr,) = await cdrs()
    assert cdr.flow == "outgoing" and cdr.disposition == "answered"
    assert list(cdr.privacy) == ([] if asked is None else asked.split(";"))
    (leg,) = [leg for leg in cdr.legs if leg.role == "outgoing"]
    assert leg.from_uri == (ANON_URI if anonymous else f"tel:+{DID}")
    assert leg.asserted == f"tel:+{DID}"
