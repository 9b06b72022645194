"""Flows A.6 and B against the real media server (media.service), not a SIPp stand-in."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from as_helpers import caller_keys, cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import DID, MOBILE, Stack

from media.service import MediaService, create
from secondnum.service import Config, RunContext

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


@pytest.fixture
async def media(stack: Stack, mongo_uri: str, tmp_path: Path) -> AsyncIterator[MediaService]:
    low = random.randrange(30000, 60000, 100)
    config = Config(
        {
            "media": {
                "sip_port": stack.media_port,
                "api_port": 0,
                "rtp_port_min": low,
                "rtp_port_max": low + 99,
                "prompt_dir": str(tmp_path / "prompts"),
            }
        },
        environ={},
    )
    service = create(config, RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"]))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_no_answer_deposit_on_real_media(stack: Stack, media: MediaService, transport: str) -> None:
    await stack.provision(follow_me={"targets": [{"uri": f"tel:+{MOBILE}", "ring_timeout": 1}]})
    target = await Sipp(stack.workdir, "target", "target_noanswer.xml", stack.scscf_port, transport).start()
    caller = await start_caller(stack, "caller_answered.xml", transport, pause_ms=1500)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    (ok,) = [m for m in caller.received(200) if m.cseq_method == "INVITE"]
    assert "m=audio" in ok.body and "RTP/AVP 0" in ok.body  # media chose PCMU from the caller's offer
    (cdr,) = await cdrs()
    assert cdr.disposition == "voicemail" and cdr.diversion_reason == "no-answer"
    assert [leg.status for leg in cdr.legs if leg.role == "voicemail"] == [200]


async def test_voicemail_access_on_real_media(stack: Stack, media: MediaService) -> None:
    await stack.provision()
    caller = await start_caller(stack, "caller_answered.xml", keys=caller_keys(stack, MOBILE), pause_ms=1500)
    assert await caller.wait() == 0, explain(caller)
    (cdr,) = await cdrs()
    assert cdr.did == DID and cdr.disposition == "voicemail_access"
    assert [leg.status for leg in cdr.legs if leg.role == "voicemail"] == [200]


async def test_outgoing_call_from_the_real_voicemail_menu(stack: Stack, media: MediaService) -> None:
    """B then C end to end: the customer keys 4, the number and # (SIP INFO through the AS), the real media
    server REFERs, the AS calls out through the S-CSCF as the DID and bridges the customer."""
    await stack.provision()
    dest = await Sipp(stack.workdir, "dest", "dest_uas.xml", stack.scscf_port).start()
    caller = await start_caller(
        stack,
        "caller_dials_out.xml",
        keys=caller_keys(stack, MOBILE),
        pause_ms=1500,
        timeout=90,
    )
    assert await run_all(caller, dest, timeout=120) == [0, 0], explain(caller, dest)
    (out,) = dest.received("INVITE")
    assert out.start_line == "INVITE tel:+420273333444 SIP/2.0"
    assert out.header("P-Asserted-Identity") == f"<tel:+{DID}>"
    (cdr,) = await cdrs()
    assert cdr.flow == "outgoing" and cdr.disposition == "answered"
    assert {leg.role for leg in cdr.legs} == {"caller", "voicemail", "outgoing"}
