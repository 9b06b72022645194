"""Interop, other direction: freeDiameterd as the client (CTF) against OUR built-in OCS.

freeDiameter connects (ConnectPeer, plain TCP) to `charging.ocs.OcsServer`, runs CCR-I/U/T for a funded
subscriber, a CCR-I for an unknown one and one for a nearly empty account, and logs every CCA after
its own dictionaries and CCA ABNF (RFC 4006 §3.2, TS 32.299 via dict_dcca_3gpp) accepted it. Balances
live in MongoDB (the session SecantusDB), as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fd_ocs import FreeDiameterOcs, OcsFactory

from charging.ocs import OcsServer, models
from charging.settings import OcsSettings
from secondnum.diameter import constants as dc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

OCS_HOST, REALM = "ocs.fd.secondnum.test", "fd.secondnum.test"
CTF_HOST = "ctf.fd.secondnum.test"
FUNDED, UNKNOWN, LOW = "42027777100", "42099999999", "42027777555"


@pytest.fixture
async def ocs(mongo_uri: str) -> AsyncIterator[OcsServer]:
    def seed() -> None:
        models.Account(e164=FUNDED, balance=100_000).save()
        models.Account(e164=LOW, balance=50).save()  # 5 s at 10 milli-units/s
        models.Tariff(prefix="420", price_per_minute=600, increment_seconds=1, connection_fee=0).save()

    await asyncio.to_thread(seed)
    server = OcsServer(
        OcsSettings(origin_host=OCS_HOST, origin_realm=REALM, listen_port=0, grant_seconds=300),
        http=False,
    )
    await server.start()
    yield server
    await server.stop()


async def test_freediameter_client_is_charged_by_our_ocs(ocs: OcsServer, fd_ocs_factory: OcsFactory) -> None:
    ctf: FreeDiameterOcs = fd_ocs_factory(
        identity=CTF_HOST,
        realm=REALM,
        connect_to=(OCS_HOST, REALM, ocs.diameter_port),
        client_e164=FUNDED,
        client_unknown=UNKNOWN,
        client_low=LOW,
    )
    events = await ctf.wait_for(lambda ev: any(e["event"] == "cca" and e["step"] == "4" for e in ev), 30)
    assert not [e for e in events if e["event"] in ("parse_error", "client_error", "client_timeout")]
    cca = {int(e["step"]): e for e in events if e["event"] == "cca"}
    assert all(c["origin"] == OCS_HOST for c in cca.values())
    # CCR-I/U/T of one session: CC-Request-Type/Number echoed, grants with Validity-Time in the MSCC.
    assert [(cca[i]["type"], cca[i]["number"], cca[i]["result"]) for i in (0, 1, 2)] == [
        ("1", "0", "2001"),
        ("2", "1", "2001"),
        ("3", "2", "2001"),
    ]
    assert cca[0]["session"] == cca[1]["session"] == cca[2]["session"]
    for i in (0, 1):
        assert (cca[i]["granted"], cca[i]["validity"], cca[i]["mscc_result"], cca[i]["fui"]) == (
            "300",
            "3600",
            "2001",
            "0",
        )
    assert cca[2]["granted"] == "-1"  # nothing granted on termination
    assert cca[3]["result"] == str(dc.USER_UNKNOWN)
    # Cut grant with Final-Unit-Indication (RFC 4006 §8.34), parsed by freeDiameter's dictionary.
    assert (cca[4]["result"], cca[4]["granted"], cca[4]["fui"]) == ("2001", "5", "1")

    def rated() -> tuple[int, models.RatedRecord]:
        record = models.RatedRecord.objects.get(session_id=cca[0]["session"])
        return models.Account.objects.get(e164=FUNDED).balance, record

    balance, record = await asyncio.to_thread(rated)
    assert (record.used_seconds, record.charged, record.closed) == (40, 400, True)  # USU 30 + 10 s
    assert balance == 100_000 - 400

    # freeDiameter's DPR on shutdown is answered by our server node (RFC 6733 §5.4).
    assert await asyncio.to_thread(ctf.stop) == 0
    after = ctf.events()
    assert any(e["event"] == "recv" and e["cmd"] == "282" and e["request"] == "0" for e in after)
    assert "Error while sending" not in ctf.log_text()
