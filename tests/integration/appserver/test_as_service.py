"""The AS as a service (secondnum.service contract): start, readiness, drain on SIGTERM, stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import ClientSession
from as_helpers import caller_keys, explain, run_all
from as_sipp import Sipp
from as_stack import DID, MOBILE, Stack

from appserver.service import SECTIONS, create
from secondnum.net import free_port
from secondnum.service import Config, RunContext

pytestmark = [pytest.mark.sipp, pytest.mark.slow]


async def ready(port: int) -> tuple[int, dict[str, object]]:
    async with ClientSession() as s, s.get(f"http://127.0.0.1:{port}/health/ready") as r:
        return r.status, await r.json()


async def test_service_start_ready_drain_stop(stack: Stack, tmp_path: Path, mongo_uri: str) -> None:
    """SIGTERM during a live call, in-process: drain -> readiness 503, new INVITE 503, live call completes."""
    import os

    await stack.provision()
    scscf, media = free_port(), free_port()
    config = Config(
        {
            "as": {
                "sip_port": 0,
                "http_port": 0,
                "scscf_uri": f"sip:127.0.0.1:{scscf}",
                "media_uri": f"sip:127.0.0.1:{media}",
                "api_tokens": ["t"],
            },
            "ro": {"peers": [{"port": stack.ocs.diameter_port}], "tx_seconds": 2.0},
        },
        environ={},
    )
    assert {"as"} == SECTIONS
    service = create(config, RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"]))
    assert service.name == "as"
    await service.start()
    try:
        status, body = await ready(service.http_port)
        assert status == 200, body
        sip_port = service.server.ep.local_address[1]  # type: ignore[union-attr]
        assert any(e.what.startswith("SIP") and e.where.endswith(str(sip_port)) for e in service.endpoints())

        keys = {**caller_keys(stack), "odi_port": str(scscf)}
        target = await Sipp(stack.workdir, "target", "target_answer.xml", scscf).start()
        live = await Sipp(
            stack.workdir,
            "live",
            "caller_answered.xml",
            free_port(),
            remote=f"127.0.0.1:{sip_port}",
            keys=keys,
            pause_ms=3000,
        ).start()
        for _ in range(200):
            if any(c.a is not None for c in service.server.calls):  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        drain = asyncio.create_task(service.drain(30))
        await asyncio.sleep(0.2)
        status, body = await ready(service.http_port)
        assert status == 503 and body["draining"] is True
        late = await Sipp(
            stack.workdir,
            "late",
            "caller_rejected.xml",
            free_port(),
            remote=f"127.0.0.1:{sip_port}",
            keys={**keys, "pai": MOBILE},
        ).start()
        assert await late.wait() == 0, explain(late)
        assert [m.status for m in late.messages() if m.status and m.status >= 200] == [503]
        assert await run_all(live, target) == [0, 0], explain(live, target)
        await asyncio.wait_for(drain, 10)
        async with (
            ClientSession() as s,
            s.get(
                f"http://127.0.0.1:{service.http_port}/api/v1/cdrs",
                params={"did": DID},
                headers={"Authorization": "Bearer t"},
            ) as r,
        ):
            cdrs = (await r.json())["items"]
        assert [c["disposition"] for c in cdrs] == ["answered"]
        async with ClientSession() as s, s.get(f"http://127.0.0.1:{service.http_port}/metrics") as r:
            metrics = await r.text()
        assert 'secondnum_as_calls_total{disposition="answered",flow="forward"}' in metrics
        assert 'secondnum_as_rejected_total{reason="draining"}' in metrics
        assert "secondnum_as_setup_seconds_count" in metrics
    finally:
        await service.stop()
