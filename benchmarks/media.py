"""Media server under N concurrent voicemail-deposit calls (SIPp UAC with ``rtp_stream``).

    .venv/bin/python -m benchmarks.media [--calls 50 200 400] [--hold 20]

For each N, SIPp places N calls to ``vm-deposit`` (50 calls/s), each sending 20 ms µ-law packets of speech
(``rtp_stream``) for ``--hold`` seconds, then BYE. The media server runs in this process (uvloop when
installed), its SecantusDB as a subprocess. Once all N calls are up, a measurement window records:

* CPU per stream: this process's CPU time over the window / (N x window) — the media server only (SIPp and
  the database are other processes);
* p99 RTP send lateness: for each 20 ms tick of the shared clock, how late the *last* packet of the tick
  left relative to the tick's due time (an upper bound for every packet of that tick).

Anchor, same run: the same clock with no streams (the event loop's own timer lateness), so the figures show
what the streams add. A run is bounded: N <= the RTP port range, calls end after ``--hold`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from media.audio import g711, wav
from media.service import MediaService
from media.settings import MediaSettings
from media.store.models import VoicemailMessage
from secondnum.log import KeyValueFormatter, setup_logging
from secondnum.mongo import EmbeddedMongo
from secondnum.net import free_port
from secondnum.service import RunContext

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="vm-deposit load">
  <send retrans="500">
    <![CDATA[
INVITE sip:vm-deposit@[remote_ip]:[remote_port];mailbox=4202700[call_number] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+42075553333@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:vm-deposit@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
P-Asserted-Identity: <tel:+42075553333>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
ACK sip:vm-deposit@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+42075553333@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:vm-deposit@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>
  <pause milliseconds="{hold_ms}"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500">
    <![CDATA[
BYE sip:vm-deposit@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+42075553333@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:vm-deposit@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""




PIN_OTHERS: list[str] = []  # ``taskset`` prefix for SIPp when ``--pin`` (set in main_async)


def pin(args: argparse.Namespace) -> tuple[set[int], set[int]] | None:
    """With ``--pin`` on a machine of >= 2 CPUs: the media process on CPU 0, SIPp and the database elsewhere.

    The question the benchmark asks is whether *one core* serves the streams on time; on a 2-CPU machine SIPp
    (which generates the 400 streams, in C, busy) would otherwise take the media server's core away from it
    and the lateness measured would be the scheduler's, not the engine's.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not args.pin or len(cpus) < 2:
        return None
    mine, others = {cpus[0]}, set(cpus[1:])
    os.sched_setaffinity(0, mine)
    PIN_OTHERS[:] = ["taskset", "-c", ",".join(map(str, sorted(others)))]
    return mine, others


def speech_ulaw(path: Path) -> None:
    text = ("Hello, this is a message for the benchmark. Please call me back about the meeting tomorrow "
            "at ten. Thank you, goodbye.")
    raw = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    path.write_bytes(g711.encode(wav.read_wav(raw), "PCMU"))


async def poll(predicate: Callable[[], bool], timeout: float) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)


async def anchor(svc: MediaService, seconds: float) -> float:
    svc.engine.lateness.clear()
    await asyncio.sleep(seconds)
    return svc.engine.lateness_percentile(99) * 1000


async def run_n(svc: MediaService, n: int, hold: float, workdir: Path, sip_port: int) -> dict[str, float]:
    scen = workdir / f"deposit_{n}.xml"
    scen.write_text(SCENARIO.replace("{audio}", str(workdir / "speech.ul"))
                    .replace("{hold_ms}", str(int(hold * 1000))))
    before = await asyncio.to_thread(VoicemailMessage.objects.count)
    cmd = [*PIN_OTHERS, "sipp", "-sf", str(scen), "-m", str(n), "-l", str(n), "-r", "50", "-i", "127.0.0.1",
           "-p", str(free_port(tcp=False)),
           "-mi", "127.0.0.1", "-mp", "46000", "-trace_err", "-error_file", str(workdir / f"err_{n}.log"),
           "-timeout", str(int(hold + 90)), "-timeout_error", "-nostdin", "-max_socket", "2000",
           f"127.0.0.1:{sip_port}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                cwd=workdir)
    await poll(lambda: len(svc.server.calls) >= n, n / 50 + 30)
    up = len(svc.server.calls)
    await asyncio.sleep(1.0)
    window = max(3.0, hold - n / 50 - 3)
    svc.engine.lateness.clear()
    skipped0 = svc.engine.skipped_ticks
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    cpu1, wall1 = time.process_time(), time.monotonic()
    streams = len(svc.engine.streams)
    p50 = svc.engine.lateness_percentile(50) * 1000
    p99 = svc.engine.lateness_percentile(99) * 1000
    pmax = svc.engine.lateness_percentile(100) * 1000
    skipped = svc.engine.skipped_ticks - skipped0
    await asyncio.wait_for(proc.communicate(), hold + 180)
    await poll(lambda: not svc.server.calls, 120)  # messages are stored before a call is released
    stored = await asyncio.to_thread(VoicemailMessage.objects.count) - before
    cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
    return {"n": n, "up": up, "streams": streams, "sipp_rc": float(proc.returncode or 0),
            "cpu_pct_total": cpu_share * 100, "cpu_pct_per_stream": cpu_share * 100 / max(1, streams),
            "us_per_stream_tick": (cpu1 - cpu0) / max(1, streams) / ((wall1 - wall0) / 0.02) * 1e6,
            "p50_ms": p50, "p99_ms": p99, "max_ms": pmax, "skipped_ticks": skipped, "stored": stored}


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-media-"))
    setup_logging("info")
    handler = logging.FileHandler(workdir / "media.log")
    handler.setFormatter(KeyValueFormatter())
    logging.getLogger().handlers[:] = [handler]
    print(f"logs: {workdir / 'media.log'}")
    speech_ulaw(workdir / "speech.ul")
    pinned = pin(args)
    mongo = EmbeddedMongo(":memory:")
    uri = mongo.start()  # main thread: see secondnum/mongo.py (death signal)
    if pinned and mongo.process is not None:
        os.sched_setaffinity(mongo.process.pid, pinned[1])
    settings = MediaSettings(sip_port=0, api_port=0, rtp_port_min=40000, rtp_port_max=41999,
                             prompt_dir=workdir / "prompts", max_calls=1000, rtp_timeout=60,
                             max_message_length=300, silence_timeout=30)
    svc = MediaService(settings, RunContext(uri, "bench_media"))
    svc.engine.lateness = __import__("collections").deque(maxlen=200_000)
    svc.engine._record_lateness = True
    try:
        await svc.start()
        port = svc.server.endpoint.local_address[1]
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        placement = f"media on CPU {sorted(pinned[0])}, SIPp+db on {sorted(pinned[1])}" if pinned else "no"
        print(f"media benchmark: loop={loop_name}, cpus={os.cpu_count()}, load={os.getloadavg()[0]:.2f}, "
              f"hold={args.hold}s, pinned={placement}")
        idle = await anchor(svc, 5.0)
        print(f"anchor: shared clock with 0 streams, p99 tick lateness {idle:.2f} ms")
        print(f"{'N':>5} {'up':>5} {'streams':>7} {'CPU%':>6} {'CPU%/stream':>11} {'µs/pkt':>7} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'skipped':>7} {'stored':>6} {'sipp rc':>7}")
        for n in args.calls:
            r = await run_n(svc, n, args.hold, workdir, port)
            print(f"{n:>5} {r['up']:>5.0f} {r['streams']:>7.0f} {r['cpu_pct_total']:>6.1f} "
                  f"{r['cpu_pct_per_stream']:>11.3f} {r['us_per_stream_tick']:>7.1f} {r['p50_ms']:>7.2f} "
                  f"{r['p99_ms']:>7.2f} {r['max_ms']:>7.2f} {r['skipped_ticks']:>7.0f} {r['stored']:>6.0f} "
                  f"{r['sipp_rc']:>7.0f}", flush=True)
            await asyncio.sleep(2)
    finally:
        await svc.stop()
        await asyncio.to_thread(mongo.stop)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[50, 200, 400])
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each call sends audio")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="media server on one CPU, SIPp and the database on the others (default on)")
    args = parser.parse_args()
    try:
        import uvloop

        return uvloop.run(main_async(args))
    except ImportError:
        return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
