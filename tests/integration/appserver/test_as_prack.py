"""Reliable provisional responses (RFC 3262), early UPDATE (RFC 3311) and Require handling through the AS.

SIPp plays a VoLTE caller behind the S-CSCF (Supported 100rel/precondition/timer, Require precondition) and
the far end (reliable 183 with the SDP answer, UPDATEs for the preconditions, RFC 3312). What each side
received is read back from SIPp's message log.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import socket

import pytest
from as_helpers import OTHER, caller_keys, cdrs, explain, provision_two_targets, run_all, start_caller
from as_sipp import Sipp
from as_stack import DESTINATION, DID, MOBILE, Stack

from secondnum.sip import SipResponse, parse_message

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


def tags(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_reliable_183_prack_and_early_updates_relayed(stack: Stack, transport: str) -> None:
    await stack.provision()
    _early_garbage()  # what earlier tests left: not this call's
    target = await Sipp(stack.workdir, "target", "target_prack.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_prack.xml", transport, pause_ms=500)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    # Far end: the forwarded INVITE offers 100rel and passes precondition through (TS 24.229 §5.7.5).
    (invite,) = target.received("INVITE")
    assert invite.start_line == f"INVITE tel:+{MOBILE} SIP/2.0"
    assert {"100rel", "precondition", "timer"} <= set(tags(invite.header("Supported")))
    assert tags(invite.header("Require")) == ["precondition"]
    assert "History-Info" in [n for n, _ in invite.headers]  # TS 24.604 behaviour kept
    assert "a=des:qos mandatory local sendrecv" in invite.body

    # Caller: the 183 arrives reliably with the far end's SDP, our own RSeq, precondition still required.
    received = [m for m in caller.messages() if m.direction == "received"]
    (c183,) = [m for m in received if m.status == 183]
    assert set(tags(c183.header("Require"))) == {"100rel", "precondition"}
    caller_rseq = int(c183.header("RSeq") or "0")
    assert 1 <= caller_rseq < 2**31
    assert "a=conf:qos remote sendrecv" in c183.body
    assert "UPDATE" in (c183.header("Allow") or "")
    assert 181 in [m.status for m in received]  # the AS's own 181 is there and unreliable
    (c181,) = [m for m in received if m.status == 181]
    assert c181.header("RSeq") is None

    # Far end: the caller's PRACK was relayed with the far end's RSeq (RAck = far RSeq, INVITE CSeq).
    pracks = target.received("PRACK")
    assert [p.header("RAck") for p in pracks] == ["1 1 INVITE", "2 1 INVITE"]  # 183 relayed, 180 local
    sent_prack = [m for m in caller.messages() if m.direction == "sent" and m.method == "PRACK"]
    assert sent_prack[0].header("RAck") == f"{caller_rseq} 1 INVITE"

    # UPDATE caller -> far end, with the caller's SDP, answered with the far end's SDP.
    (t_update,) = target.received("UPDATE")
    assert "a=curr:qos local sendrecv" in t_update.body and "a=curr:qos remote none" in t_update.body
    update_200 = [m for m in received if m.status == 200 and m.cseq_method == "UPDATE"]
    assert len(update_200) == 1 and "a=curr:qos remote sendrecv" in update_200[0].body
    assert "a=curr:qos local none" in update_200[0].body

    # UPDATE far end -> caller in the caller's early dialog (the To tag of the 183), with the far SDP.
    (c_update,) = caller.received("UPDATE")
    assert "a=curr:qos local sendrecv" in c_update.body and "a=curr:qos remote sendrecv" in c_update.body
    to_tag_183 = (c183.header("To") or "").split("tag=")[1]
    assert (c_update.header("From") or "").endswith(f"tag={to_tag_183}")
    far_update_200 = [m for m in target.messages() if m.direction == "received" and m.status == 200
                      and m.cseq_method == "UPDATE"]
    assert len(far_update_200) == 1 and "a=curr:qos remote sendrecv" in far_update_200[0].body

    # The far end's reliable 180 (no SDP) was PRACKed by the AS; the caller got a plain 180, then the
    # 200 in the same dialog as the 183 (same To tag), and the BYE reached the far end.
    (c180,) = [m for m in received if m.status == 180]
    assert c180.header("RSeq") is None
    (c200,) = [m for m in received if m.status == 200 and m.cseq_method == "INVITE"]
    assert (c200.header("To") or "").endswith(f"tag={to_tag_183}")
    assert target.received("ACK") and target.received("BYE")

    (cdr,) = await cdrs()
    assert cdr.flow == "forward" and cdr.disposition == "answered"
    # The early-dialog machinery leaves no reference cycle behind (the AS tunes the collector on that).
    assert _early_garbage() == collections.Counter()


def _early_garbage() -> collections.Counter[str]:
    """Objects of the 100rel/early-dialog modules that only the cyclic collector could free."""
    modules = ("appserver.early", "secondnum.sip.provisional", "secondnum.sip.reliable")
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                                   if type(o).__module__ in modules)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        # Saved garbage is cyclic: once out of gc.garbage it needs one more pass to be freed, or the next
        # DEBUG_SAVEALL collection would report it again (under another test's name).
        gc.collect()


async def test_unknown_required_extension_gets_420(stack: Stack) -> None:
    await stack.provision()
    caller = await start_caller(stack, "caller_bad_extension.xml")
    (code,) = await run_all(caller)
    assert code == 0, explain(caller)
    (resp,) = caller.received(420)
    assert tags(resp.header("Unsupported")) == ["x-unknown-ext"]  # only the tag we cannot serve
    assert not stack.ccrs  # refused before anything was charged


async def test_outgoing_leg_reliable_183_offer_answered_in_prack(stack: Stack) -> None:
    """Flow C with a 100rel destination: the offer of its reliable 183 goes to the customer (re-INVITE),
    the customer's answer goes back in the AS's PRACK; the 200 without SDP needs no second re-INVITE."""
    await stack.provision()
    _early_garbage()
    dest = await Sipp(stack.workdir, "dest", "dest_prack.xml", stack.scscf_port).start()
    media = await Sipp(
        stack.workdir, "media", "media_refer.xml", stack.media_port, keys={"dest": DESTINATION, "did": DID}
    ).start()
    caller = await start_caller(stack, "caller_reinvited.xml", keys=caller_keys(stack, MOBILE), pause_ms=1500)
    codes = await run_all(caller, media, dest)
    assert codes == [0, 0, 0], explain(caller, media, dest)

    (out,) = dest.received("INVITE")
    assert "100rel" in tags(out.header("Supported")) and out.header("Require") is None
    assert out.body == ""
    (reinvite,) = caller.received("INVITE")
    assert "RTP/AVP 8 0" in reinvite.body  # the destination's offer, from the 183
    (prack,) = dest.received("PRACK")
    assert prack.header("RAck") == "1 1 INVITE"
    assert "m=audio" in prack.body and "RTP/AVP 8" in prack.body  # the customer's answer (RFC 3262 §5)
    (ack,) = dest.received("ACK")
    assert ack.body == ""
    frags = [m.body.splitlines()[0] for m in media.received("NOTIFY")]
    assert frags == ["SIP/2.0 100 Trying", "SIP/2.0 183 Session Progress", "SIP/2.0 200 OK"]
    assert dest.received("BYE")
    (cdr,) = await cdrs()
    assert cdr.flow == "outgoing" and cdr.disposition == "answered"
    assert _early_garbage() == collections.Counter()


async def test_caller_requiring_100rel_gets_reliable_181_and_prack_carries_the_answer(stack: Stack) -> None:
    """Offerless INVITE with Require: 100rel: our 181 is reliable; the far end's reliable 183 carries the
    offer, the caller's PRACK the answer, relayed in the AS's PRACK to the far end (RFC 3262 §3, §5)."""
    await stack.provision()
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_prack_offer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_require_100rel.xml", pause_ms=500)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    (invite,) = target.received("INVITE")
    assert "100rel" in tags(invite.header("Supported")) and invite.header("Require") is None
    assert invite.body == ""
    (c181,) = caller.received(181)
    (c183,) = caller.received(183)
    assert "100rel" in tags(c181.header("Require")) and "100rel" in tags(c183.header("Require"))
    # One RSeq space per INVITE on our side, and the 183 waited for the 181's PRACK (§3).
    assert int(c183.header("RSeq") or 0) == int(c181.header("RSeq") or 0) + 1
    assert "RTP/AVP 8 0" in c183.body  # the far end's offer
    (prack,) = target.received("PRACK")
    assert prack.header("RAck") == "1 1 INVITE"
    assert "RTP/AVP 0" in prack.body and prack.header("Content-Type") == "application/sdp"
    (ack,) = target.received("ACK")
    assert ack.body == ""
    assert target.received("BYE")
    await cdrs()  # written at the end of the call's teardown
    assert _early_garbage() == collections.Counter()


async def test_simultaneous_ringing_each_far_early_dialog_is_relayed_in_its_own(stack: Stack) -> None:
    """Two targets ringing with reliable 183s: the caller sees two early dialogs (the INVITE's To tag for
    the first, a fresh one for the second, as behind a forking proxy, RFC 3261 §13.2.2.4, RFC 3960 §3),
    each with its own RSeq space; PRACKs and UPDATEs stay within their pair of dialogs; the mobile answers
    in its own early dialog and the other target is CANCELled."""
    await provision_two_targets(stack)
    _early_garbage()
    target = await Sipp(stack.workdir, "target", "target_fork_prack.xml", stack.scscf_port, calls=2).start()
    caller = await start_caller(stack, "caller_prack_fork.xml", pause_ms=500)
    codes = await run_all(caller, target)
    assert codes == [0, 0], explain(caller, target)

    invites = {m.header("Call-ID"): m.start_line for m in target.received("INVITE")}
    other_id = next(cid for cid, line in invites.items() if OTHER in line)
    mobile_id = next(cid for cid, line in invites.items() if MOBILE in line)

    def got(method: str, call_id: str | None) -> list[str]:
        return [m.body for m in target.received(method) if m.header("Call-ID") == call_id]

    def tag(m: object) -> str:
        return (m.header("To") or "").split("tag=")[1]  # type: ignore[attr-defined]

    # The caller saw both far early dialogs, each in an early dialog of its own.
    first, second = caller.received(183)
    assert "o=mobile" in first.body and "o=other" in second.body
    (c181,) = caller.received(181)
    assert tag(first) == tag(c181) and tag(second) != tag(first)  # the INVITE's tag, then a fresh one
    assert all("100rel" in tags(m.header("Require")) for m in (first, second))
    assert first.header("RSeq") and second.header("RSeq")  # one RSeq space per early dialog (RFC 3262 §4)
    # PRACKs: each far 183 got the caller's PRACK of its own relayed copy.
    assert len(got("PRACK", mobile_id)) == 1 and len(got("PRACK", other_id)) == 1
    # The caller's UPDATE went to the mobile only; the other's UPDATE reached the caller in the 2nd dialog.
    assert len(got("UPDATE", mobile_id)) == 1 and got("UPDATE", other_id) == []
    assert "a=curr:qos local sendrecv" in got("UPDATE", mobile_id)[0]
    (c_update,) = caller.received("UPDATE")
    assert (c_update.header("From") or "").endswith(f"tag={tag(second)}") and "o=other" in c_update.body
    answered = [m for m in target.received(200)
                if m.header("Call-ID") == other_id and m.cseq_method == "UPDATE"]
    assert len(answered) == 1 and "o=other" not in answered[0].body  # the caller's answer, relayed
    # The mobile answered in its own early dialog; the other target was CANCELled (completed elsewhere).
    (c200,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert tag(c200) == tag(first)
    (cancel,) = target.received("CANCEL")
    assert cancel.header("Call-ID") == other_id and "cause=200" in (cancel.header("Reason") or "")
    await cdrs()
    assert _early_garbage() == collections.Counter()


async def test_options_lists_the_served_extensions(stack: Stack) -> None:
    """RFC 3261 §11.2: the OPTIONS answer says which extensions the AS supports."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    try:
        request = (
            f"OPTIONS sip:127.0.0.1:{stack.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\n"
            "From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:as@127.0.0.1>\r\nCall-ID: opt-1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        await loop.sock_sendto(sock, request, ("127.0.0.1", stack.sip_port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 10)
    finally:
        sock.close()
    resp = parse_message(data)
    assert isinstance(resp, SipResponse) and resp.status == 200
    assert {"100rel", "precondition", "timer"} <= set(resp.supported)
    assert "PRACK" in (resp.headers.get("allow") or "") and "UPDATE" in (resp.headers.get("allow") or "")
