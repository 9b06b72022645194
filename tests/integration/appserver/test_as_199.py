"""199 Early Dialog Terminated (RFC 6228) when the AS rings several targets at once.

Each far early dialog is shown to the caller in an early dialog of its own (appserver.early). When one far
side fails while another still rings, a caller that supports 199 learns at once that the failed one's early
dialog (and its early media) is gone; a caller without 199 support gets none. The AS's own 180 for the
ringing target goes in that target's dialog, which the 200 then confirms. SIPp plays the caller behind the
S-CSCF and both targets (run -m 2); what each received is read back from SIPp's message log.
"""

from __future__ import annotations

import collections

import pytest
from as_helpers import OTHER, caller_keys, cdrs, explain, provision_two_targets, run_all, start_caller, to_tag
from as_sipp import Sipp
from as_stack import MOBILE, Stack
from test_as_prack import _early_garbage

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

@pytest.mark.parametrize(("supported", "expect_199"), [("199, timer", True), ("timer", False)])
async def test_failed_fork_early_dialog_gets_199(stack: Stack, supported: str, expect_199: bool) -> None:
    await provision_two_targets(stack)
    _early_garbage()  # what earlier tests left: not this call's
    target = await Sipp(stack.workdir, "target", "target_fork_199.xml", stack.scscf_port, calls=2).start()
    keys = {**caller_keys(stack), "supported": supported}
    caller = await start_caller(stack, "caller_fork_199.xml", keys=keys, pause_ms=300)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    invites = {m.header("Call-ID"): m.start_line for m in target.received("INVITE")}
    assert sorted(invites.values()) == sorted(f"INVITE tel:+{n} SIP/2.0" for n in (OTHER, MOBILE))
    (busy,) = [m for m in target.messages() if m.direction == "sent" and m.status == 486]
    assert OTHER in invites[busy.header("Call-ID")]

    (c181,) = caller.received(181)
    (c183,) = caller.received(183)  # the other target's early media, in the INVITE's early dialog
    assert "o=other" in c183.body and to_tag(c183) == to_tag(c181)
    (c180,) = caller.received(180)  # the AS's 180 for the mobile: a dialog of its own (not the other's)
    (c200,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert "o=mobile" in c200.body
    assert to_tag(c180) == to_tag(c200) != to_tag(c183)
    c199 = caller.received(199)
    if expect_199:
        (one,) = c199  # one, in the failed target's dialog only; none for the dialog the 200 confirms
        assert to_tag(one) == to_tag(c183)
        assert one.header("Reason") == 'SIP;cause=486;text="Busy Here"'
        assert one.body == "" and one.header("RSeq") is None  # no SDP; unreliable like that dialog's 183
        assert one.at < c200.at
    else:
        assert c199 == []  # RFC 6228: only to a caller that said it supports 199

    assert target.received("CANCEL") == []  # the other had already failed: nothing left to cancel
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    assert _early_garbage() == collections.Counter()


async def test_199_is_reliable_in_a_100rel_early_dialog(stack: Stack) -> None:
    """RFC 6228 §8 with RFC 3262: the failed target's early dialog carried a reliable 183, so its 199 comes
    reliably (the dialog's next RSeq, Require: 100rel) and the caller's PRACK of it is answered by the AS
    (not relayed to the far side, which is gone)."""
    await provision_two_targets(stack)
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_fork_199_prack.xml", stack.scscf_port,
                        calls=2).start()
    caller = await start_caller(stack, "caller_fork_199_prack.xml", pause_ms=300)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    (c183,) = caller.received(183)
    (c199,) = caller.received(199)
    (c180,) = caller.received(180)
    (c200,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert to_tag(c199) == to_tag(c183) != to_tag(c200) == to_tag(c180)
    assert "100rel" in (c199.header("Require") or "")
    assert int(c199.header("RSeq") or 0) == int(c183.header("RSeq") or 0) + 1  # same dialog's RSeq space
    assert c199.header("Reason") == 'SIP;cause=486;text="Busy Here"' and c199.body == ""
    assert c180.header("RSeq") is None  # the caller does not require 100rel: our own 180 is unreliable
    prack_oks = [m for m in caller.received(200) if m.cseq_method == "PRACK"]
    assert len(prack_oks) == 2  # the 183's (relayed) and the 199's (the AS's own)
    (far_prack,) = target.received("PRACK")  # only the 183's PRACK reached the far side
    assert far_prack.header("RAck") == "1 1 INVITE"
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    assert _early_garbage() == collections.Counter()


async def test_no_199_when_the_failure_ends_the_call(stack: Stack) -> None:
    """RFC 6228: no 199 for the early dialog whose final response the caller gets anyway. Both targets show
    early media and are busy: the first failure (the other still rings) gets a 199; the last one ends the
    call (486 to the caller), which ends every early dialog: no 199 for it."""
    await provision_two_targets(stack, answering_mode="forward_only")
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_fork_199_busy.xml", stack.scscf_port,
                        calls=2).start()
    caller = await start_caller(stack, "caller_fork_199_busy.xml")
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    first, second = caller.received(183)
    assert "o=other" in first.body and "o=mobile" in second.body
    assert to_tag(first) != to_tag(second)
    (c199,) = caller.received(199)
    assert to_tag(c199) == to_tag(first)
    (final,) = caller.received(486)
    assert c199.at < final.at
    (cdr,) = await cdrs()
    assert cdr.disposition == "busy" and cdr.status == 486
    assert _early_garbage() == collections.Counter()
