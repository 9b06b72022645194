"""Failure injection against the running service (``secondnum up`` as a process; SIPp plays the S-CSCF at
127.0.0.5 and the far end; MongoDB is a separate SecantusDB process the test can kill).

* MongoDB down: calls for a known account still route from the profile cache, the AS's readiness turns 503,
  the process survives, and after MongoDB is back readiness returns and new CDRs are written.
* OCS slow or erroring, for each CCFH mode (RFC 4006 §5.7, §8.14): a Diameter peer in this test answers CCRs
  late (after Tx), with 3004 (a failover-class error) or 5012 (a permanent error). What happens to the call
  (forwarded to the mobile, or diverted to voicemail) is checked against RFC 4006.
  (OCS *absent* per CCFH mode is covered by tests/integration/appserver/test_as_admission.py.)
* SIGKILL of the service mid-call, then restart: the open Ro session must be closed by a CCR-T
  (RFC 4006 §5.5; the AS calls charging's ``RoClient.recover_open_sessions`` at start when
  ``[as] ro_crash_recovery`` is on), so the reservation is released at the OCS.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rel_sipp
import rel_stack as rs

from charging.messages import build_cca, parse_ccr
from secondnum.diameter import DiameterNode, codec
from secondnum.diameter import constants as dc

pytestmark = pytest.mark.slow

TRUSTED = rel_sipp.TRUSTED


@dataclass
class Running:
    workdir: Path
    ports: rs.Ports
    mongo: rs.MongoProcess
    proc: rs.SecondnumProcess
    config: Path

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.as_http}/health/ready"

    def restart(self) -> None:
        self.proc = rs.SecondnumProcess(self.workdir, self.config, name=f"secondnum-{time.monotonic_ns()}")
        self.proc.start([self.ready_url(), f"http://127.0.0.1:{self.ports.api}/health/ready"])


def _start(workdir: Path, extra: dict[str, dict[str, Any]] | None = None,
           mongo: rs.MongoProcess | None = None, ports: rs.Ports | None = None) -> Running:
    mongo = mongo or rs.MongoProcess(workdir / "mongo")
    if mongo.proc is None:
        mongo.start()
    ports = ports or rs.Ports()
    config = workdir / "cfg.toml"
    rs.write_config(config, ports, mongo.uri, trusted=[TRUSTED], extra=extra)
    proc = rs.SecondnumProcess(workdir, config)
    proc.start([f"http://127.0.0.1:{ports.as_http}/health/ready", f"http://127.0.0.1:{ports.api}/health/ready"])
    return Running(workdir, ports, mongo, proc, config)


def _calls(run: Running, n: int, name: str, *, talk_ms: tuple[int, int] = (300, 600), rate: float = 5,
           timeout: float = 120) -> tuple[int, int, int]:
    """``n`` calls to the seed DID from a PSTN caller; (successful, failed, INVITEs the far end got)."""
    far = rel_sipp.far_end(run.workdir, run.ports.scscf, name=f"{name}_far").start()
    try:
        time.sleep(0.3)
        caller = rel_sipp.caller(run.workdir, run.ports.as_sip, run.ports.scscf, did=rs.DID,
                                 caller_number=rs.PSTN_CALLER, rate=rate, calls=n, min_ms=talk_ms[0],
                                 max_ms=talk_ms[1], name=name).start()
        caller.wait(timeout)
        time.sleep(0.5)
    finally:
        far.stop()
    return (caller.counter("SuccessfulCall(C)"), caller.counter("FailedCall(C)"),
            far.counter("IncomingCall(C)"))


def _wait_status(url: str, status: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rs.http_json("GET", url, token=None)[0] == status:
            return True
        time.sleep(0.3)
    return False


def _cdr_total(run: Running) -> int:
    status, body = rs.http_json("GET", f"http://127.0.0.1:{run.ports.as_http}/api/v1/cdrs?limit=1")
    assert status == 200, body
    return int(body["total"])


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_mongodb_down_calls_route_from_cache_and_readiness_fails(workdir: Path) -> None:
    ocs_mongo, ocs, ocs_port, _ = rs.separate_ocs(workdir)
    run = _start(workdir, extra={"ro": {"peers": [{"port": ocs_port}]}})
    try:
        ok, failed, forwarded = _calls(run, 2, "before")
        assert (ok, failed, forwarded) == (2, 0, 2), run.proc.tail()
        cdrs_before = _cdr_total(run)

        run.mongo.kill()
        assert _wait_status(run.ready_url(), 503, 30), "readiness stayed 200 with MongoDB down"
        ok, failed, forwarded = _calls(run, 3, "mongo_down")
        print(f"\nMongoDB down: {ok} calls OK, {failed} failed, {forwarded} forwarded to the mobile")
        assert run.proc.alive(), run.proc.tail()
        assert (ok, forwarded) == (3, 3), run.proc.tail(60)

        run.mongo.start()
        assert _wait_status(run.ready_url(), 200, 60), "readiness did not come back after MongoDB restart"
        ok, failed, forwarded = _calls(run, 1, "after")
        assert (ok, forwarded) == (1, 1), run.proc.tail()
        time.sleep(2.0)
        cdrs_after = _cdr_total(run)
        print(f"CDRs: {cdrs_before} before, {cdrs_after} after (3 calls were made while MongoDB was down)")
        assert cdrs_after >= cdrs_before + 1
    finally:
        run.proc.stop()
        run.mongo.stop()
        ocs.stop()
        ocs_mongo.stop()


class FaultyOcs:
    """A Diameter Ro peer that answers CCR-I late, with an error, or normally; CCR-U/T always 2001."""

    def __init__(self, mode: str, delay: float) -> None:
        self.mode = mode
        self.delay = delay
        self.received: Counter[int] = Counter()
        self.node = DiameterNode("ocs.secondnum.local", "secondnum.local", (dc.APP_RO,))
        self.node.register_handler(dc.APP_RO, dc.CMD_CREDIT_CONTROL, self.on_ccr)
        self.port = 0

    async def on_ccr(self, req: Any, peer: Any) -> Any:
        ccr = parse_ccr(req)
        self.received[ccr.request_type] += 1
        if ccr.request_type == 1:
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            elif self.mode in ("3004", "5012"):
                return codec.new_answer(req, int(self.mode))
        return build_cca(req, ccr, dc.SUCCESS, granted_seconds=300)

    async def start(self) -> None:
        await self.node.start(listen=("127.0.0.1", 0))
        self.port = self.node.listen_port


# RFC 4006 §5.7: Tx expiry and failover-class errors (3002/3004) follow CCFH; a permanent 5xxx refuses the
# session whatever CCFH says. "forward" = the mobile rang; "voicemail" = the AS diverted the caller.
EXPECTED = {
    ("slow", "TERMINATE"): "voicemail", ("slow", "CONTINUE"): "forward",
    ("slow", "RETRY_AND_TERMINATE"): "voicemail",
    ("3004", "TERMINATE"): "voicemail", ("3004", "CONTINUE"): "forward",
    ("3004", "RETRY_AND_TERMINATE"): "voicemail",
    ("5012", "TERMINATE"): "voicemail", ("5012", "CONTINUE"): "voicemail",
    ("5012", "RETRY_AND_TERMINATE"): "voicemail",
}


@pytest.mark.parametrize("ccfh", ["TERMINATE", "CONTINUE", "RETRY_AND_TERMINATE"])
async def test_ocs_slow_or_erroring_follows_ccfh(tmp_path: Path, ccfh: str) -> None:
    results: dict[str, tuple[int, int, int, dict[int, int]]] = {}
    mongo = rs.MongoProcess(tmp_path / "mongo")
    ports = rs.Ports()
    try:
        for fault in ("slow", "3004", "5012"):
            ocs = FaultyOcs(fault, delay=3.0)
            await ocs.start()
            wd = tmp_path / fault
            wd.mkdir()
            extra = {"ro": {"peers": [{"port": ocs.port}], "tx_seconds": 1.0, "ccfh": ccfh}}
            run = await asyncio.to_thread(_start, wd, extra, mongo, ports)
            try:
                results[fault] = (*await asyncio.to_thread(_calls, run, 2, f"{fault}_{ccfh}"),
                                  dict(ocs.received))
                assert run.proc.alive(), run.proc.tail()
            finally:
                await asyncio.to_thread(run.proc.stop)
                await ocs.node.stop()
    finally:
        mongo.stop()
    print(f"\nCCFH {ccfh}: fault -> (calls OK, failed, forwarded to mobile, CCRs by type)")
    wrong = []
    for fault, (ok, failed, forwarded, ccrs) in results.items():
        outcome = "forward" if forwarded == 2 else "voicemail" if forwarded == 0 else f"mixed({forwarded})"
        print(f"  {fault:5}: {ok} ok, {failed} failed, {forwarded} forwarded, CCRs {ccrs} -> {outcome}")
        assert ok == 2, f"{fault}: the caller's call failed ({failed} failed)"
        if outcome != EXPECTED[(fault, ccfh)]:
            wrong.append(f"{fault}/{ccfh}: {outcome}, expected {EXPECTED[(fault, ccfh)]}")
    assert not wrong, wrong


def _ocs_reserved(run: Running) -> Decimal:
    status, body = rs.http_json("GET", f"http://127.0.0.1:{run.ports.ocs_http}/api/v1/accounts/{rs.DID}")
    assert status == 200, body
    return Decimal(str(body["reserved"]))


def test_sigkill_mid_call_then_restart_closes_the_ro_session(workdir: Path) -> None:
    run = _start(workdir)
    far = rel_sipp.far_end(run.workdir, run.ports.scscf, name="kill_far").start()
    caller = None
    try:
        time.sleep(0.3)
        caller = rel_sipp.caller(run.workdir, run.ports.as_sip, run.ports.scscf, did=rs.DID,
                                 caller_number=rs.PSTN_CALLER, rate=1, calls=1, min_ms=120_000,
                                 max_ms=120_000, name="kill_caller").start()
        end = time.monotonic() + 20
        while time.monotonic() < end and _ocs_reserved(run) == 0:
            time.sleep(0.2)
        reserved = _ocs_reserved(run)
        assert reserved > 0, "the call never got a reservation at the OCS"
        run.proc.stop(signal.SIGKILL)
        run.restart()
        end = time.monotonic() + 20
        while time.monotonic() < end and _ocs_reserved(run) != 0:
            time.sleep(0.5)
        left = _ocs_reserved(run)
        print(f"\nreserved before SIGKILL {reserved}, 20 s after restart {left}")
        assert left == 0, f"reservation {left} still held at the OCS after restart"
    finally:
        if caller is not None:
            caller.stop()
        far.stop()
        run.proc.stop()
        run.mongo.stop()
