"""The hss component's life cycle (secondnum.service contract) and the idempotent demo seed."""

from __future__ import annotations

import os

import aiohttp
import pytest

from hss_adapter import store
from hss_adapter.profile import AnsweringMode
from hss_adapter.service import SECTIONS, check_config, create
from hss_adapter.settings import DEV_TOKEN
from secondnum.config import ConfigError
from secondnum.seed import DEMO_DID, seed_demo_data
from secondnum.service import Config, RunContext


async def test_start_serve_drain_stop(mongo_uri: str) -> None:
    ctx = RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    svc = create(Config({"api": {"port": 0}}), ctx)
    assert svc.name == "hss" and {"hss", "api"} == SECTIONS
    await svc.start()
    try:
        base = f"http://127.0.0.1:{svc.port}"
        assert any(base in e.where for e in svc.endpoints())
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/health/ready") as r:
                assert r.status == 200
            headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
            async with session.post(
                f"{base}/api/v1/accounts", json={"did": "42000000011"}, headers=headers
            ) as r:
                assert r.status == 201
            await svc.drain(1.0)
            async with session.get(f"{base}/health/ready") as r:
                assert r.status == 503
    finally:
        await svc.stop()


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"api": {"port": 70000}}, "api"),
        ({"api": {"tokens": []}}, "api"),
        ({"api": {"colour": "red"}}, "api.colour"),
        ({"hss": {"peer_port": "x"}}, "hss.peer_port"),
    ],
)
def test_check_config_names_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config(Config(document))
    assert info.value.key == key


async def test_seed_is_idempotent(mongo_uri: str) -> None:
    ctx = RunContext(mongo_uri, os.environ["SECONDNUM_TEST_DB"])
    await seed_demo_data(ctx)
    first = store.profile_of(DEMO_DID)
    await seed_demo_data(ctx)
    second = store.profile_of(DEMO_DID)
    assert first is not None and first == second
    assert first.answering_mode is AnsweringMode.FORWARD_THEN_VOICEMAIL
    assert [(t.uri, t.ring_timeout) for t in first.follow_me.targets] == [("tel:+42073723123", 20)]
    assert first.voicemail.enabled
    (alias,) = first.aliases
    assert (alias.identity, alias.key, alias.allow_registration) == ("42073723123@pstn", "42073723123", False)
    # the charging hook ran too: one prepaid account for the DID, however many starts
    from charging.ocs import models as ocs_models

    assert ocs_models.Account.objects(e164=DEMO_DID).count() == 1
