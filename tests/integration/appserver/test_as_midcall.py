"""Mid-call behaviour: credit exhausted (Final-Unit-Indication), BYE glare, drain, the CDR REST API."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientSession
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import CCR_I, CCR_T, DID, PSTN_CALLER, Stack

from appserver import api
from appserver.cdr import CallRecord, Disposition, Flow, save
from secondnum import http
from secondnum.net import free_port

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


@pytest.mark.ocs_balance(5)  # 5 milli-units at 100 per minute: a final grant of 3 seconds
async def test_credit_exhausted_releases_both_sides(stack: Stack) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_released.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    for side in (caller, target):
        (bye,) = side.received("BYE")
        assert "cause=402" in (bye.header("Reason") or ""), bye.headers
    (ccr_i,) = stack.ccr(CCR_I)
    (ccr_t,) = stack.ccr(CCR_T)
    assert ccr_t.session_id == ccr_i.session_id
    assert 1 <= (ccr_t.used_seconds or 0) <= 5
    (cdr,) = await cdrs()
    assert cdr.end_reason == "final-unit" and cdr.charged_seconds == ccr_t.used_seconds


async def test_bye_glare(stack: Stack) -> None:
    """The far end's BYE crosses the AS's BYE on the same dialog: both are answered, one CCR-T, one CDR."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_glare.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_answered.xml")
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (theirs,) = [
        m
        for m in target.messages()
        if m.direction == "received" and m.cseq_method == "BYE" and m.status is not None
    ]
    assert theirs.status in (200, 481)  # RFC 3261 §15.1.2: the dialog may already be gone
    await asyncio.sleep(0.5)
    assert len(stack.ccr(CCR_T)) == 1
    assert len(await cdrs()) == 1
    assert not stack.server.calls and not stack.server.by_dialog


async def test_drain_refuses_new_invites_and_lets_live_calls_finish(stack: Stack) -> None:
    """SIGTERM path in-process: drain() -> new INVITE 503 + Retry-After, the live call completes."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    live = await Sipp(
        stack.workdir,
        "live",
        "caller_answered.xml",
        free_port(),
        remote=f"127.0.0.1:{stack.sip_port}",
        keys=caller_keys(stack),
        pause_ms=3000,
    ).start()
    for _ in range(100):
        if any(c.a is not None for c in stack.server.calls):
            break
        await asyncio.sleep(0.05)
    drain = asyncio.create_task(stack.server.drain(30))
    await asyncio.sleep(0.2)
    late = await Sipp(
        stack.workdir,
        "late",
        "caller_rejected.xml",
        free_port(),
        remote=f"127.0.0.1:{stack.sip_port}",
        keys=caller_keys(stack),
    ).start()
    assert await late.wait() == 0, explain(late)
    (refusal,) = [m for m in late.messages() if m.status == 503]
    assert refusal.header("Retry-After") == "5"
    assert await run_all(live, target) == [0, 0], explain(live, target)
    await asyncio.wait_for(drain, 10)
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered" and cdr.end_reason == "bye-caller"


async def test_drain_limit_releases_live_calls(stack: Stack) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_released.xml")
    for _ in range(100):
        if any(c.a is not None for c in stack.server.calls):
            break
        await asyncio.sleep(0.05)
    await stack.server.drain(0.5)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (bye,) = caller.received("BYE")
    assert "cause=503" in (bye.header("Reason") or "")
    assert len(stack.ccr(CCR_T)) == 1


async def test_cdr_api_lists_and_filters(mongo_uri: str) -> None:
    """The REST listing over CDRs written by the same code path as calls (``cdr.save``)."""
    app = http.make_app("as", tokens=["t0k"])
    api.add_routes(app)
    runner = await http.serve(app, "127.0.0.1", 0)
    port = http.bound_port(runner)
    try:
        for i in range(3):
            await save(
                CallRecord(
                    icid=f"i{i}",
                    did=DID,
                    caller=PSTN_CALLER,
                    called=DID,
                    flow=Flow.FORWARD,
                    disposition=Disposition.ANSWERED if i else Disposition.VOICEMAIL,
                )
            )
        base = f"http://127.0.0.1:{port}/api/v1/cdrs"
        async with ClientSession() as s:
            async with s.get(base) as r:
                assert r.status == 401
            auth = {"Authorization": "Bearer t0k"}
            async with s.get(base, headers=auth, params={"did": DID, "limit": "2"}) as r:
                body = await r.json()
                assert r.status == 200 and body["total"] == 3 and len(body["items"]) == 2
            async with s.get(base, headers=auth, params={"disposition": "voicemail"}) as r:
                body = await r.json()
                assert [c["icid"] for c in body["items"]] == ["i0"]
            async with s.get(f"{base}/{body['items'][0]['id']}", headers=auth) as r:
                assert (await r.json())["icid"] == "i0"
            async with s.get(base, headers=auth, params={"limit": "0"}) as r:
                assert r.status == 400 and r.content_type == "application/problem+json"
            async with s.get(base, headers=auth, params={"since": "yesterday"}) as r:
                assert r.status == 400
            async with s.get(f"{base}/nope", headers=auth) as r:
                assert r.status == 404
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_reinvite_hold_passes_through(stack: Stack, transport: str) -> None:
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_hold.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_hold.xml", transport)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    invites = target.received("INVITE")
    assert len(invites) == 2 and "a=sendonly" in invites[1].body
    # The target saw the caller's origin first, so the relayed offer keeps it with version + 1.
    assert "o=caller 53655765 2353687638" in invites[1].body
    answers = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert "a=recvonly" in answers[-1].body and "o=mobile 1 2" in answers[-1].body


async def test_drain_limit_releases_a_ringing_call(stack: Stack) -> None:
    """At the drain limit a call still ringing its follow-me target is given up: CANCEL, 503 to the caller."""
    await stack.provision()
    target = await Sipp(stack.workdir, "target", "target_noanswer.xml", stack.scscf_port).start()
    caller = await start_caller(stack, "caller_rejected.xml")
    for _ in range(100):
        if target.received("INVITE"):
            break
        await asyncio.sleep(0.05)
    await stack.server.drain(0.5)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    finals = [m for m in caller.messages() if m.status and m.status >= 200]
    assert [m.status for m in finals] == [503] and finals[0].header("Retry-After") == "5"
    (ccr_t,) = stack.ccr(CCR_T)
    assert (ccr_t.used_seconds or 0) == 0
    assert not stack.server.calls
