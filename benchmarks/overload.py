"""Overload: twice the clean call rate through the AS (flow A, forwarded and answered), bounded in time.

Run: ``.venv/bin/python -m benchmarks.overload [--clean-rate auto|N] [--seconds 30] [--hold 2000-4000]
[--max-calls sized|default]``.

The whole service runs as ``secondnum up`` (real processes, SecantusDB, built-in OCS, loopback only); SIPp
plays the S-CSCF (127.0.0.5, trusted) and the far end.

0. ``--clean-rate auto`` (default): a ramp of 10 s steps (10, 20, 40, 60, 80, ... calls/s) finds the highest
   rate with no failed call and a mean setup delay under 100 ms on this machine, now: the clean rate.
   With ``--max-calls sized``, ``[as] max_calls`` is set to clean rate x mean hold x ``--headroom`` (so twice
   the rate must be shed with 503 + Retry-After); ``default`` keeps the AS's own limits (2000 calls,
   500 pending), which shows what CPU saturation alone does.
1. Anchor, in the same run: the clean rate for ``--seconds`` (expected: no failure).
2. ``--long`` calls are set up and kept talking through the whole overload ("calls in progress").
3. Overload: twice the clean rate for ``--seconds``.
4. ``--settle`` s (75) to let the finished calls' transactions run out and the allocator's free memory be
   returned (``[run] memory_trim_interval``), a second identical overload, the same wait again: RSS and open
   file descriptors after each (growth from the first to the second would be a leak), with the live Python
   blocks and glibc's in-use/free heap from /metrics, which tell a leak (live blocks grow) from memory the
   allocator keeps (free grows). The same figures are printed after the anchor: the baseline.

``--recover S`` adds S seconds of clean-rate traffic after the first overload's reading (then the wait and
another reading): whether RSS falls back while calls go on, as they would in service.

``sized`` also sets ``[as] max_setups`` (calls in their set-up stage) to half a second of set-up at the
clean rate; ``default`` leaves it at 100.

Printed: the process survived, calls in progress unharmed (all of them ended normally), 503 count (the AS's
``secondnum_as_rejected_total``), setup times, RSS before/after, CDRs written. Not a test: no assertion.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from benchmarks._service import machine, metric, metrics, ramp, rel_sipp, rs, run_caller, start_stack, top_up


def _summary(s: rel_sipp.Sipp) -> str:
    st = s.stats()
    return (f"attempted {s.counter('OutgoingCall(C)')}, ok {s.counter('SuccessfulCall(C)')}, "
            f"failed {s.counter('FailedCall(C)')}, setup mean {st.get('ResponseTimesetup(C)', '?')} "
            f"(stdev {st.get('ResponseTimesetupStDev(C)', '?')})")


def _memory(port: int) -> str:
    """Live Python blocks and glibc's in-use/free heap from one read of /metrics (secondnum/memory.py)."""
    m = metrics(port, "secondnum_python_allocated_blocks", "secondnum_malloc_in_use_bytes",
                "secondnum_malloc_free_bytes", "secondnum_malloc_trimmed_bytes_total",
                "secondnum_as_active_calls", "secondnum_media_calls", "secondnum_media_rtp_streams")
    blocks = m["secondnum_python_allocated_blocks"]
    in_use = m["secondnum_malloc_in_use_bytes"] / 2**20
    free = m["secondnum_malloc_free_bytes"] / 2**20
    trimmed = m["secondnum_malloc_trimmed_bytes_total"] / 2**20
    calls = m["secondnum_as_active_calls"]
    media = m["secondnum_media_calls"]
    streams = m["secondnum_media_rtp_streams"]
    return (f"python blocks {blocks / 1e3:.0f}k, malloc in use {in_use:.1f} MiB, "
            f"free in heap {free:.1f} MiB, trimmed so far {trimmed:.1f} MiB; calls in progress: "
            f"AS {calls:.0f}, media {media:.0f} ({streams:.0f} RTP streams)")


def _census(port: int) -> dict[str, int]:
    status, body = rs.http_json("GET", f"http://127.0.0.1:{port}/api/v1/debug/objects?top=500&mappings=4",
                                timeout=300)
    if status != 200 or not isinstance(body, dict):
        return {}
    for m in body.get("mappings", []):  # what sits in the most resident anonymous mappings
        kinds = ", ".join(f"{t['type'].rsplit('.', 1)[-1]} {t['count']}" for t in m["types"][:6])
        print(f"    mapping {m['start']}: {m['resident_bytes'] / 2**20:.1f} MiB resident, {m['objects']} "
              f"objects ({m['object_bytes'] / 2**20:.1f} MiB): {kinds}")
        for h in m.get("holders", [])[:4]:
            print(f"      {h['count']:6d}  {h['path']}")
    for g in body.get("growth", [])[:10]:  # with --tracemalloc: the source lines that gained most
        print(f"    +{g['bytes'] / 1024:.0f} KiB {g['blocks']:+d} blocks  {g['where']}")
    return {t["type"]: int(t["count"]) for t in body["types"]}


def _growth(before: dict[str, int], after: dict[str, int], top: int = 12) -> str:
    """The object types whose count grew most between two censuses (secondnum/memory.py object_census)."""
    diff = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in set(before) | set(after)), reverse=True)
    return ", ".join(f"{k.rsplit('.', 1)[-1]} {d:+d}" for d, k in diff[:top] if d > 0) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clean-rate", default="auto", help="calls/s the AS handles cleanly, or auto (ramp)")
    parser.add_argument("--max-calls", choices=("sized", "default"), default="sized")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--hold", default="2000-4000", help="talk time range in ms")
    parser.add_argument("--long", type=int, default=20, help="calls kept up through the overload")
    parser.add_argument("--headroom", type=float, default=1.3, help="max_calls = rate x mean hold x this")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--settle", type=float, default=75.0,
                        help="seconds to wait after the anchor and each overload before reading memory: "
                             "64*T1 (32 s) plus one [run] memory_trim_interval (60 s) by default")
    parser.add_argument("--recover", type=float, default=0.0,
                        help="seconds of traffic at the clean rate after the first overload (then --settle "
                             "and a reading): whether RSS falls back while calls go on; 0 = none")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the service with PYTHONTRACEMALLOC=1 and print the source lines whose "
                             "allocations grew between readings (slow: not for the figures)")
    args = parser.parse_args()
    if args.tracemalloc:
        os.environ["PYTHONTRACEMALLOC"] = "1"
    lo, hi = (int(x) for x in args.hold.split("-"))
    mean_hold = (lo + hi) / 2000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="secondnum-overload-"))
    print(f"machine: {machine()}")
    print(f"command: python -m benchmarks.overload --clean-rate {args.clean_rate} --seconds {args.seconds:g} "
          f"--hold {args.hold} --long {args.long} --max-calls {args.max_calls} --headroom {args.headroom:g}"
          f"   (workdir {workdir})")
    if args.clean_rate == "auto":
        args.clean_rate = ramp(workdir / "ramp")
    else:
        args.clean_rate = float(args.clean_rate)
    sized = args.max_calls == "sized"
    max_calls = math.ceil(args.clean_rate * mean_hold * args.headroom) + args.long if sized else 2000
    # Set-up stage backlog (AsSettings.max_setups): sized for half a second of set-up at the clean rate.
    max_setups = max(10, math.ceil(args.clean_rate * 0.5)) if sized else 100
    mongo, proc, ports = start_stack(workdir, {"as": {"max_calls": max_calls, "max_setups": max_setups}})
    far = None
    try:
        top_up(ports)
        far = rel_sipp.far_end(workdir, ports.scscf).start()
        time.sleep(0.5)
        rss0 = rs.rss_kib(proc.pid)
        print(f"clean rate {args.clean_rate:g}/s; [as] max_calls = {max_calls}, max_setups = {max_setups}; "
              f"RSS at start {rss0 / 1024:.1f} MiB, fds {rs.open_fds(proc.pid)}; {_memory(ports.as_http)}")

        anchor = run_caller(ports, workdir, "anchor", args.clean_rate, args.seconds, (lo, hi), max_calls)
        anchor.wait(args.seconds + hi / 1000 + 120)
        rss1 = rs.rss_kib(proc.pid)
        rej0 = metric(ports.as_http, "secondnum_as_rejected_total")
        print(f"anchor   {args.clean_rate:g}/s: {_summary(anchor)}; RSS {rss1 / 1024:.1f} MiB")
        time.sleep(args.settle)
        print(f"  {args.settle:.0f} s after the anchor: RSS {rs.rss_kib(proc.pid) / 1024:.1f} MiB; "
              f"{_memory(ports.as_http)}")
        census0 = _census(ports.as_http)

        long_talk = int(args.seconds * 1000 + 15_000)
        inprog = rel_sipp.caller(workdir, ports.as_sip, ports.scscf, did=rs.DID, caller_number=rs.PSTN_CALLER,
                                 rate=10, calls=args.long, min_ms=long_talk, max_ms=long_talk,
                                 name="in_progress").start()
        time.sleep(args.long / 10 + 2)
        overload = run_caller(ports, workdir, "overload", 2 * args.clean_rate, args.seconds, (lo, hi),
                               10 * max_calls)
        peak_rss = rs.rss_kib(proc.pid)
        t0 = time.monotonic()
        while overload.proc is not None and overload.proc.poll() is None and \
                time.monotonic() - t0 < args.seconds + hi / 1000 + 120:
            time.sleep(1)
            peak_rss = max(peak_rss, rs.rss_kib(proc.pid) if proc.alive() else 0)
        overload.wait(5)
        inprog.wait(long_talk / 1000 + 60)
        time.sleep(2)
        alive = proc.alive()
        rss2 = rs.rss_kib(proc.pid) if alive else 0
        rejected = metric(ports.as_http, "secondnum_as_rejected_total") - rej0 if alive else float("nan")
        status, cdrs = rs.http_json("GET", f"http://127.0.0.1:{ports.as_http}/api/v1/cdrs?limit=1")
        print(f"overload {2 * args.clean_rate:g}/s: {_summary(overload)}")
        print(f"  503/refused by the AS during overload: {rejected:.0f}")
        print(f"  calls in progress through the overload: {inprog.counter('SuccessfulCall(C)')} of "
              f"{args.long} ended normally, {inprog.counter('FailedCall(C)')} failed")
        print(f"  process alive: {alive}; RSS {rss0 / 1024:.1f} MiB start, {rss1 / 1024:.1f} after anchor, "
              f"peak {peak_rss / 1024:.1f} during overload, {rss2 / 1024:.1f} after")
        print(f"  CDRs written: {cdrs.get('total') if status == 200 else status}; far end answered "
              f"{far.counter('IncomingCall(C)')} forwarded INVITEs")
        # Memory after: once the finished calls' transactions have run out (64*T1 = 32 s), and again after a
        # second overload of the same length. CPython keeps freed arenas, so RSS rarely falls back to the
        # start; what must not happen is growth from one round to the next (a leak).
        settle = args.settle
        time.sleep(settle)
        settled1 = rs.rss_kib(proc.pid) if proc.alive() else 0
        fds1 = rs.open_fds(proc.pid) if proc.alive() else 0
        print(f"  {settle:.0f} s after the overload: RSS {settled1 / 1024:.1f} MiB; {_memory(ports.as_http)}")
        census1 = _census(ports.as_http)
        print(f"  objects grown since the anchor: {_growth(census0, census1)}")
        if args.recover > 0:
            # Traffic goes on after a burst: the clean rate again, as in the anchor. Objects that live on
            # (metric values, caches) are then re-allocated in the fuller arenas, and the burst's may empty.
            back = run_caller(ports, workdir, "recover", args.clean_rate, args.recover, (lo, hi), max_calls)
            back.wait(args.recover + hi / 1000 + 120)
            time.sleep(settle)
            print(f"recover  {args.clean_rate:g}/s for {args.recover:g} s: {_summary(back)}")
            settled1 = rs.rss_kib(proc.pid) if proc.alive() else 0
            print(f"  {settle:.0f} s after it: RSS {settled1 / 1024:.1f} MiB; {_memory(ports.as_http)}")
            census1 = _census(ports.as_http)
        again = run_caller(ports, workdir, "overload2", 2 * args.clean_rate, args.seconds, (lo, hi),
                           10 * max_calls)
        again.wait(args.seconds + hi / 1000 + 120)
        rejected2 = metric(ports.as_http, "secondnum_as_rejected_total") - rej0 - rejected \
            if proc.alive() else float("nan")
        print(f"overload2 {2 * args.clean_rate:g}/s: {_summary(again)}; 503: {rejected2:.0f}")
        time.sleep(settle)
        settled2 = rs.rss_kib(proc.pid) if proc.alive() else 0
        fds2 = rs.open_fds(proc.pid) if proc.alive() else 0
        first = "the first and the recovery traffic" if args.recover > 0 else "the first"
        print(f"  memory {settle:.0f} s after each overload: RSS {settled1 / 1024:.1f} MiB after {first}, "
              f"{settled2 / 1024:.1f} after the second ({(settled2 - settled1) / 1024:+.1f}); "
              f"fds {fds1} -> {fds2}; process alive: {proc.alive()}; {_memory(ports.as_http)}")
        print(f"  objects grown since the first overload: {_growth(census1, _census(ports.as_http))}")
    finally:
        if far is not None:
            far.stop()
        rc = proc.stop()
        mongo.stop()
        print(f"secondnum exit code after SIGTERM: {rc}")


if __name__ == "__main__":
    main()
