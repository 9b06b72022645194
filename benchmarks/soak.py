"""Soak: half the clean call rate through the AS for a bounded time, with varied call lengths.

Run: ``.venv/bin/python -m benchmarks.soak [--minutes 3] [--clean-rate auto|N] [--hold 1000-20000]
[--ocs builtin|separate]``
(10 minutes or more is possible; the default 3 is what RELIABILITY.md records).

The whole service runs as ``secondnum up`` (real processes, SecantusDB, built-in OCS with its MongoDB ledger,
loopback only); SIPp plays the S-CSCF (127.0.0.5, trusted) and the far end; every call is flow A (forwarded,
answered, talks a uniformly random time in ``--hold``, BYE) with a CCR-I/CCR-T and a CDR. ``--ocs separate``
runs the OCS as its own ``secondnum ocs`` on its own SecantusDB (as an operator's OCS is), so that the AS's
database load and the OCS's are told apart.

Sampled every ``--sample`` seconds: RSS and open file descriptors of the service process, calls in progress
(``secondnum_as_active_calls``), CPU use of the service and of SecantusDB (share of one core), Ro Tx expiries
(counted from the service log's ``ro_tx_expired``). At the end, after the last call: Ro sessions still open
in the AS's store (``ro_open_sessions``) and at the OCS (rated records not closed, reserved balance), CDRs
written versus calls placed. The anchor, in the same run, is the first minute: RSS growth is reported after
it (warm-up: caches, prompt files, allocator pools) and over it. Not a test: no assertion.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from benchmarks._service import machine, metric, ramp, rel_sipp, rs, setup_ms, start_stack, top_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clean-rate", default="auto", help="calls/s the AS handles cleanly, or auto (ramp)")
    parser.add_argument("--hold", default="1000-20000", help="talk time range in ms (uniform)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--ocs", choices=("builtin", "separate"), default="builtin")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--db-retry-writes", action="store_true",
                        help="the AS's database with pymongo's default retryable writes (before the fix: "
                             "SecantusDB's cost per write then grows with the writes done; comparison only)")
    args = parser.parse_args()
    lo, hi = (int(x) for x in args.hold.split("-"))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="secondnum-soak-"))
    print(f"machine: {machine()}")
    print(f"command: python -m benchmarks.soak --minutes {args.minutes:g} --clean-rate {args.clean_rate} "
          f"--hold {args.hold} --ocs {args.ocs}{' --db-retry-writes' if args.db_retry_writes else ''}   "
          f"(workdir {workdir})")
    clean = ramp(workdir / "ramp") if args.clean_rate == "auto" else float(args.clean_rate)
    rate = clean / 2
    seconds = args.minutes * 60
    calls = int(rate * seconds)
    ocs: tuple[rs.MongoProcess, rs.SecondnumProcess, int, int] | None = None
    extra: dict[str, dict[str, object]] = {"as": {"max_calls": 5000}}
    if args.ocs == "separate":
        ocs = rs.separate_ocs(workdir, amount="1000000.00")
        extra["ro"] = {"peers": [{"port": ocs[2]}]}
    mongo, proc, ports = start_stack(workdir, extra, retry_writes=args.db_retry_writes)
    ocs_http = ocs[3] if ocs is not None else ports.ocs_http
    ocs_db_uri = ocs[0].uri if ocs is not None else mongo.uri
    far = None
    samples: list[tuple[float, int, int, float]] = []
    assert mongo.proc is not None
    try:
        top_up(ports)
        far = rel_sipp.far_end(workdir, ports.scscf).start()
        time.sleep(0.5)
        print(f"clean rate {clean:g}/s -> soak at {rate:g}/s for {seconds:.0f} s = {calls} calls, "
              f"talk {lo / 1000:g}-{hi / 1000:g} s (~{rate * (lo + hi) / 2000:.0f} calls in progress)")
        caller = rel_sipp.caller(workdir, ports.as_sip, ports.scscf, did=rs.DID, caller_number=rs.PSTN_CALLER,
                                 rate=rate, calls=calls, min_ms=lo, max_ms=hi, limit=5000, name="soak")
        t0 = time.monotonic()
        caller.start()
        print(f"{'t/s':>6} {'RSS MiB':>8} {'fds':>5} {'in call':>8} {'CPU svc':>8} {'CPU db':>7} "
              f"{'Tx exp':>7}" + (f" {'CPU ocs':>8} {'ocs db':>7}" if ocs is not None else ""))
        pids = [proc.pid, mongo.proc.pid]
        if ocs is not None:
            assert ocs[0].proc is not None
            pids += [ocs[1].pid, ocs[0].proc.pid]
        cpu_prev = (time.monotonic(), [rs.cpu_seconds(p) for p in pids])
        while caller.proc is not None and caller.proc.poll() is None:
            if not proc.alive():
                print("the service process died")
                break
            t = time.monotonic() - t0
            sample = (t, rs.rss_kib(proc.pid), rs.open_fds(proc.pid),
                      metric(ports.as_http, "secondnum_as_active_calls"))
            samples.append(sample)
            cpu_now = (time.monotonic(), [rs.cpu_seconds(p) for p in pids])
            wall = max(1e-6, cpu_now[0] - cpu_prev[0])
            cpu = [(b - a) / wall for a, b in zip(cpu_prev[1], cpu_now[1], strict=True)]
            cpu_prev = cpu_now
            expired = proc.log_path.read_text(errors="replace").count("event=ro_tx_expired")
            ocs_cols = f" {cpu[2]:8.0%} {cpu[3]:7.0%}" if ocs is not None else ""
            print(f"{t:6.0f} {sample[1] / 1024:8.1f} {sample[2]:5d} {sample[3]:8.0f} {cpu[0]:8.0%} "
                  f"{cpu[1]:7.0%} {expired:7d}{ocs_cols}", flush=True)
            time.sleep(args.sample)
            if t > seconds + hi / 1000 + 300:
                print("caller did not finish in time; stopping it")
                caller.stop()
        caller.wait(30)
        time.sleep(3)  # last BYEs, CCR-Ts and CDR batches
        alive = proc.alive()
        placed = caller.counter("OutgoingCall(C)")
        status, cdrs = rs.http_json("GET", f"http://127.0.0.1:{ports.as_http}/api/v1/cdrs?limit=1")
        db: Database[dict[str, Any]] = MongoClient(mongo.uri, serverSelectionTimeoutMS=3000)["secondnum"]
        open_as = db["ro_open_sessions"].count_documents({})
        ocs_db: Database[dict[str, Any]] = MongoClient(ocs_db_uri, serverSelectionTimeoutMS=3000)[
            "ocs" if ocs is not None else "secondnum"]
        open_ocs = ocs_db["ocs_rated_records"].count_documents({"closed": False})
        status_acc, account = rs.http_json("GET", f"http://127.0.0.1:{ocs_http}/api/v1/accounts/{rs.DID}")
        print(f"calls: placed {placed}, ok {caller.counter('SuccessfulCall(C)')}, failed "
              f"{caller.counter('FailedCall(C)')}, setup mean {setup_ms(caller):.0f} ms")
        print(f"CDRs written: {cdrs.get('total') if status == 200 else status} for {placed} calls placed")
        print(f"Ro sessions left open: AS store {open_as}, OCS rated records not closed {open_ocs}, "
              f"OCS reserved {account.get('reserved') if status_acc == 200 else status_acc}")
        if samples:
            warm = [s for s in samples if s[0] >= 60] or samples
            first, last = samples[0], samples[-1]
            print(f"RSS: {first[1] / 1024:.1f} MiB at start, {warm[0][1] / 1024:.1f} after the first minute "
                  f"(anchor), {last[1] / 1024:.1f} at the end, max {max(s[1] for s in samples) / 1024:.1f}; "
                  f"after the anchor {(last[1] - warm[0][1]) / 1024:+.1f} MiB over "
                  f"{last[0] - warm[0][0]:.0f} s")
            print(f"fds: {first[2]} at start, {last[2]} at the end, max {max(s[2] for s in samples)}")
        print(f"process alive at the end: {alive}")
    finally:
        if far is not None:
            far.stop()
        rc = proc.stop()
        mongo.stop()
        if ocs is not None:
            ocs[1].stop()
            ocs[0].stop()
        print(f"secondnum exit code after SIGTERM: {rc}")


if __name__ == "__main__":
    main()
