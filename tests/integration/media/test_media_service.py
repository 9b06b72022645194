"""The component contract (secondnum.service): create() from a configuration, start, drain, stop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from media_harness import Uac, free_port_block

from media.service import SECTIONS, create
from secondnum.config import ConfigError
from secondnum.service import Config, RunContext


def _config(prompt_dir: Path, **extra: object) -> Config:
    base = free_port_block()
    media = {"sip_port": 0, "api_port": 0, "rtp_port_min": base, "rtp_port_max": base + 39,
             "prompt_dir": str(prompt_dir), **extra}
    return Config({"media": media})


async def test_create_start_drain_stop(mongo_uri: str, prompt_dir: Path) -> None:
    assert {"media"} == SECTIONS
    svc = create(_config(prompt_dir), RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"]))
    assert svc.name == "media"
    await svc.start()
    uac = Uac()
    await uac.start()
    try:
        whats = {e.what for e in svc.endpoints()}
        assert whats == {"SIP (UDP+TCP)", "RTP", "REST API"}
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{svc.api_port}/health/ready") as r:
            assert r.status == 200
        resp = await uac.call(svc.server.endpoint.local_address, "vm-access", params=";auth=network")
        assert resp.status == 200
        drain = asyncio.create_task(svc.drain(30))
        await asyncio.sleep(0.3)
        late = Uac()
        await late.start()
        try:
            refused = await late.call(svc.server.endpoint.local_address, "vm-deposit")
            assert refused.status == 503 and refused.headers.get("Retry-After") == "30"
        finally:
            await late.close()
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{svc.api_port}/health/ready") as r:
            assert r.status == 503
        assert not drain.done()            # the live call keeps the drain waiting ...
        await uac.bye()
        await asyncio.wait_for(drain, 15)  # ... until it ends
    finally:
        await uac.close()
        await svc.stop()


@pytest.mark.parametrize(("extra", "key"), [
    ({"rtp_port_min": 30000, "rtp_port_max": 20000}, "media"),
    ({"tts_engine": "festival"}, "media.tts_engine"),
    ({"colour": "blue"}, "media.colour"),
])
def test_bad_settings_named(prompt_dir: Path, extra: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        create(_config(prompt_dir, **extra), RunContext("mongodb://x", "x"))
    assert err.value.key == key
