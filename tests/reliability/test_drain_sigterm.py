"""SIGTERM during a live call, on the real process (what Kubernetes does at pod termination).

`secondnum up` runs as a subprocess with a live, answered, charged call through the AS. On SIGTERM it must
stop taking new calls (readiness 503, a new INVITE 503 with Retry-After), let the live call finish on its own
(BYE from the caller, CCR-T with the used time), then stop and exit 0; the OCS is left with nothing reserved.
"""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
import rel_sip as rsip
import rel_sipp
import rel_stack as rs

pytestmark = pytest.mark.slow

TRUSTED = "127.0.0.5"
DRAIN_LIMIT = 25.0
TALK_MS = 8_000


def _ocs_account(ports: rs.Ports) -> dict[str, object]:
    status, body = rs.http_json("GET", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{rs.DID}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def test_sigterm_drains_a_live_call_and_exits_cleanly(tmp_path: Path) -> None:
    mongo = rs.MongoProcess(tmp_path / "mongo")
    mongo.start()
    ports = rs.Ports()
    config = tmp_path / "cfg.toml"
    rs.write_config(config, ports, mongo.uri, trusted=[TRUSTED], extra={"run": {"drain_limit": DRAIN_LIMIT}})
    proc = rs.SecondnumProcess(tmp_path, config)
    far = caller = None
    try:
        proc.start([f"http://127.0.0.1:{ports.as_http}/health/ready", f"http://127.0.0.1:{ports.api}/health/ready"])
        balance_before = Decimal(str(_ocs_account(ports)["balance"]))
        far = rel_sipp.far_end(tmp_path, ports.scscf, name="drain_far").start()
        time.sleep(0.3)
        caller = rel_sipp.caller(tmp_path, ports.as_sip, ports.scscf, did=rs.DID,
                                 caller_number=rs.PSTN_CALLER, rate=1, calls=1, min_ms=TALK_MS,
                                 max_ms=TALK_MS, name="drain_caller").start()
        end = time.monotonic() + 20
        while time.monotonic() < end and Decimal(str(_ocs_account(ports)["reserved"])) == 0:
            time.sleep(0.2)
        assert Decimal(str(_ocs_account(ports)["reserved"])) > 0, "the call was never answered and charged"
        signalled = time.monotonic()
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)

        # Draining: not ready, and a new INVITE from the trusted S-CSCF is refused with Retry-After.
        end = time.monotonic() + 5
        ready_status = 200
        while time.monotonic() < end and ready_status == 200:
            ready_status, _ = rs.http_json("GET", f"http://127.0.0.1:{ports.as_http}/health/ready")
            time.sleep(0.1)
        assert ready_status == 503
        peer = rsip.UdpPeer(TRUSTED)
        try:
            data, branch = rsip.invite(ports.as_sip, rs.DID, rs.PSTN_CALLER, peer.addr)
            peer.send(data, ports.as_sip)
            peer.collect(5, {branch})
            assert branch in peer.finals, "no answer to a new INVITE while draining"
            reply = peer.finals[branch]
            peer.ack_non2xx(reply, ports.as_sip)
            assert reply.status == 503
            assert reply.header("Retry-After") is not None
        finally:
            peer.close()

        # The live call ends on its own (the caller's BYE after its talk time), then the process exits 0.
        caller.wait(TALK_MS / 1000 + 30)
        assert caller.counter("SuccessfulCall(C)") == 1, "the live call did not complete normally"
        assert caller.counter("FailedCall(C)") == 0
        rc = proc.proc.wait(DRAIN_LIMIT + 30)
        took = time.monotonic() - signalled
        assert rc == 0, proc.tail()
        assert took < DRAIN_LIMIT + 20, f"shutdown took {took:.1f} s"
        rs.assert_no_traceback(proc)

        # Nothing left reserved at the OCS (CCR-T with the used time), and the call was charged.
        proc.start([f"http://127.0.0.1:{ports.ocs_http}/health/ready"])
        account = _ocs_account(ports)
        assert Decimal(str(account["reserved"])) == 0, account
        assert Decimal(str(account["balance"])) < balance_before, account
    finally:
        if caller is not None:
            caller.stop()
        if far is not None:
            far.stop()
        proc.stop()
        mongo.stop()
