"""Early media without 100rel, the AS's own PRACK timeout, and the caller's privacy on the forwarded leg.

SIPp plays the caller behind the S-CSCF and the far end; what each side received is read back from SIPp's
message log (as in test_as_prack.py).
"""

from __future__ import annotations

import collections
import re

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller, to_tag
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DID, PSTN_CALLER, Stack
from test_as_prack import _early_garbage

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


def tags(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def origin(body: str) -> str:
    (line,) = [x for x in body.splitlines() if x.startswith("o=")]
    return line


@pytest.mark.parametrize(("supported", "transport"),
                         [("timer", "udp"), ("100rel, timer", "udp"), ("timer", "tcp")])
async def test_unreliable_183_with_sdp_is_relayed_as_early_media(stack: Stack, supported: str,
                                                                 transport: str) -> None:
    """RFC 3261 §13.3.1.1 / RFC 3960 §2: the far end's unreliable 183 with SDP reaches the caller with its
    SDP, unreliably, in the early dialog the 200 then confirms (same To tag, same SDP origin/version)."""
    await stack.provision()
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_early_media.xml", stack.scscf_port,
                        transport).start()
    caller = await start_caller(stack, "caller_early_media.xml", transport,
                                keys={**caller_keys(stack), "supported": supported}, pause_ms=300)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    (invite,) = target.received("INVITE")
    assert ("100rel" in tags(invite.header("Supported"))) == ("100rel" in supported)
    (c183,) = caller.received(183)
    assert c183.header("RSeq") is None and "100rel" not in tags(c183.header("Require"))
    assert "o=callee 7 7" in c183.body and "m=audio" in c183.body
    (c181,) = caller.received(181)
    (c180,) = caller.received(180)  # the far 180 had no SDP: the AS's own 180, in the same dialog
    (c200,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert to_tag(c183) == to_tag(c181) == to_tag(c180) == to_tag(c200)
    assert origin(c200.body) == origin(c183.body)  # same description, same o= (RFC 3264 §8)
    assert target.received("ACK") and target.received("BYE")
    assert target.received("PRACK") == []
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.privacy == []
    assert _early_garbage() == collections.Counter()


async def test_caller_requiring_100rel_gets_unreliable_early_media_reliably(stack: Stack) -> None:
    """RFC 3262 §3: a caller that requires 100rel gets every 1xx reliably, the far end's unreliable 183
    with SDP included; its PRACK of that 183 is answered by the AS (the far end sent no RSeq to PRACK)."""
    await stack.provision()
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_early_media.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_require_100rel_early_media.xml", pause_ms=300)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    (c181,) = caller.received(181)
    (c183,) = caller.received(183)
    (c180,) = caller.received(180)
    rseqs = [int(m.header("RSeq") or 0) for m in (c181, c183, c180)]
    assert rseqs[1:] == [rseqs[0] + 1, rseqs[0] + 2]  # one dialog, one RSeq space, in order (§3)
    assert all("100rel" in tags(m.header("Require")) for m in (c181, c183, c180))
    assert "o=callee 7 7" in c183.body
    assert target.received("PRACK") == []  # the far 183 was unreliable: nothing to PRACK there
    (c200,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert to_tag(c200) == to_tag(c183) and origin(c200.body) == origin(c183.body)
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    assert _early_garbage() == collections.Counter()


@pytest.mark.as_settings(sip_t1=0.05)
async def test_caller_never_pracks_the_relayed_183(stack: Stack) -> None:
    """RFC 3262 §3: the AS's reliable 183 is retransmitted (T1, 2T1, ...) and after 64*T1 without PRACK the
    INVITE is rejected with a 5xx; the ringing far leg is CANCELled and its Ro session closed (CCR-T)."""
    await stack.provision()
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_prack_unanswered.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_prack_timeout.xml",
                                keys={**caller_keys(stack), "supported": "100rel"})
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    copies = caller.received(183)
    # Sent at 0, T1, 3T1, 7T1, ... 63T1: 7 at most; several under any load.
    assert 2 <= len(copies) <= 7, [m.start_line for m in copies]
    assert len({m.header("RSeq") for m in copies}) == 1 and copies[0].header("RSeq")
    assert all("100rel" in tags(m.header("Require")) and "o=callee" in m.body for m in copies)
    (final,) = caller.received(500)
    assert "cause=500" in (final.header("Reason") or "")
    assert target.received("PRACK") == []  # the caller never PRACKed: nothing to relay
    (cancel,) = target.received("CANCEL")
    assert "cause=500" in (cancel.header("Reason") or "")
    (cdr,) = await cdrs()
    assert (cdr.end_reason, cdr.status, cdr.disposition) == ("prack-timeout", 500, "failed")
    assert len(stack.ccr(CCR_I)) == 1 and len(stack.ccr(CCR_T)) == 1  # charging closed
    assert _early_garbage() == collections.Counter()


ANONYMOUS = "Anonymous <sip:anonymous@anonymous.invalid>"  # RFC 3323 §4.1.1.3
SIP_MOBILE = "sip:mobile-2@127.0.0.1"  # a SIP URI entry can carry the escaped Privacy (a tel URI cannot)


@pytest.mark.parametrize(
    ("presentation", "asked", "from_", "pai", "privacy"),
    [
        # Original caller shown + identity privacy: anonymous From, PAI kept in the trust domain, Privacy on.
        ("original_caller", "id", ANONYMOUS, f"<tel:+{PSTN_CALLER}>", "id"),
        ("original_caller", "header;user", ANONYMOUS, f"<tel:+{PSTN_CALLER}>", "header; user"),
        # DID shown: the account's own identity; only history privacy applies (RFC 7044 §10).
        ("did", "id;history", f"<tel:+{DID}>", f"<tel:+{DID}>", "history"),
    ],
)
async def test_privacy_on_the_forwarded_leg(stack: Stack, presentation: str, asked: str, from_: str, pai: str,
                                            privacy: str) -> None:
    await stack.provision(
        caller_id_presentation=presentation,
        follow_me={"targets": [{"uri": SIP_MOBILE, "ring_timeout": 20}]},
    )
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_privacy.xml", keys={**caller_keys(stack), "privacy": asked},
                                pause_ms=300)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    (invite,) = target.received("INVITE")
    assert re.sub(r";tag=\S+$", "", invite.header("From") or "") == from_
    assert invite.header("P-Asserted-Identity") == pai
    assert invite.header("Privacy") == privacy
    if from_ == ANONYMOUS:
        assert all(PSTN_CALLER not in (invite.header(h) or "") for h in ("From", "Contact", "History-Info"))
    history = invite.header("History-Info") or ""
    mobile_entry = next(e for e in history.split(", ") if "mobile-2@" in e)
    # RFC 7044 §10.1.2: the entry of a SIP URI is marked private only when history privacy was asked for.
    assert ("Privacy=history" in mobile_entry) == ("history" in asked)
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    assert cdr.privacy == [v.strip() for v in asked.split(";")]


async def test_voicemail_leg_carries_the_callers_privacy(stack: Stack) -> None:
    """Straight to voicemail: media (trusted) gets the caller's identity and Privacy, so it withholds the
    number from the mailbox owner (TS 24.607 OIR); the CDR records the privacy asked for."""
    await stack.provision(answering_mode="voicemail_only")
    media = await Sipp(stack.workdir, "media", "media_deposit.xml", stack.media_port).start()
    caller = await start_caller(stack, "caller_privacy.xml", keys={**caller_keys(stack), "privacy": "id"},
                                pause_ms=300)
    codes = await run_all(caller, media)
    assert codes == [0, 0], explain(caller, media)

    (vm,) = media.received("INVITE")
    assert vm.header("Privacy") == "id"
    assert vm.header("P-Asserted-Identity") == f"<tel:+{PSTN_CALLER}>"
    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail" and cdr.privacy == ["id"]
