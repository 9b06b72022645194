"""Fixtures for charging integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from secondnum.diameter import DiameterNode, codec
from secondnum.diameter import constants as dc


@pytest.fixture
async def ocs_node() -> AsyncIterator[DiameterNode]:
    """A server node answering CCR with 2001 (echoing CC-Request-Number)."""
    node = DiameterNode("ocs.test", "test", (dc.APP_RO,), watchdog_interval=30.0)

    def on_ccr(req, peer):  # type: ignore[no-untyped-def]
        n = codec.value(req.avps, dc.AVP_CC_REQUEST_NUMBER)
        return codec.new_answer(req, dc.SUCCESS, [codec.avp(dc.AVP_CC_REQUEST_NUMBER, n or 0)])

    node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, on_ccr)
    await node.start(listen=("127.0.0.1", 0))
    yield node
    await node.stop()
