"""Call-rate ramp through the AS: "incoming call, forwarded, answered, short talk, BYE" with Ro per call.

Run: ``.venv/bin/python -m benchmarks.as_calls`` (bounded to about 4 minutes).

Set-up: SecantusDB (embedded), the built-in OCS and the AS (``secondnum as``) as child processes on
loopback; ``DIDS`` accounts (forward-then-voicemail, one follow-me target each) and their OCS balances.
SIPp plays the S-CSCF twice: a UAC sending the terminating INVITE (Route: AS, then the S-CSCF's odi entry)
and a UAS receiving the forwarded leg and answering at once. Every call costs a CCR-I and a CCR-T over
Diameter, a CDR insert and the Ro client's open-session record in MongoDB. The OCS rates with its in-memory
ledger by default, so that the figures are the AS's; ``--mongo-ocs`` runs ``secondnum ocs`` with its
MongoDB ledger instead (then the embedded SecantusDB, not the AS, sets the limit).

Anchor, same run, same SIPp scenarios: ``sippy``'s B2BUA (``b2bua_simple``, PyPI ``sippy``), which relays
the call to the same UAS with no charging, no profile lookup and no CDR. Target: ≥ 2x the anchor's rate.

Each step runs SIPp at a fixed rate for ``STEP_SECONDS``; a step passes with 0 failed calls. Printed per
step: calls, failures, setup delay p50/p99 (caller INVITE -> 200, which is what the B2BUA adds since the
far end answers at once), the B2BUA process's CPU (user+sys over wall time) and peak RSS, and the CPU of the
processes it needs on the same two cores ("others": the OCS and SecantusDB for the AS, both SIPp for both),
which is what bounds the rate on a small machine. Memory per
concurrent call: before the ramp, ``--held`` calls (default 500, the issue asks for 5,000) are held at once;
(peak RSS - RSS before) / held, with the held phase's failures and set-up delays printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from secondnum.mongo import EmbeddedMongo

RATES = [20, 40, 80, 120, 160, 180, 200, 250, 300, 350, 400, 500]
STEP_SECONDS = 6
HOLD_MS = 1000
BUDGET_SECONDS = 240  # for the whole ramp (both systems)
HEALTHY_P99_MS = 500.0  # "healthy" rate: 0 failed calls and p99 set-up delay within this
MEMORY_CALLS = 500  # calls held at once (100/s, 8 s hold) to measure memory per concurrent call
STOP_P50_MS = 2000.0  # a system whose median set-up delay passes this is saturated: stop ramping it
DIDS = 50
DID_BASE = 42027700000
MOBILE_BASE = 42073700000

CALLER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench_caller">
  <send retrans="500" start_rtd="setup">
    <![CDATA[

      INVITE sip:+[field0]@[remote_ip]:[remote_port];user=phone SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Route: <sip:[remote_ip]:[remote_port];lr>, <sip:[local_ip]:[field1];lr;odi=o[call_number]>
      Max-Forwards: 68
      From: <sip:+42075553333@[local_ip];user=phone>;tag=[pid]SIPpTag00[call_number]
      To: <sip:+[field0]@[remote_ip];user=phone>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      P-Asserted-Identity: <tel:+42075553333>
      P-Served-User: <tel:+[field0]>;sescase=term;regstate=unreg
      P-Charging-Vector: icid-value=bench-[call_number];orig-ioi=ims.example.net
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="181" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" rtd="setup"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      Max-Forwards: 70
      From: <sip:+42075553333@[local_ip];user=phone>;tag=[pid]SIPpTag00[call_number]
      To: <sip:+[field0]@[remote_ip];user=phone>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      Max-Forwards: 70
      From: <sip:+42075553333@[local_ip];user=phone>;tag=[pid]SIPpTag00[call_number]
      To: <sip:+[field0]@[remote_ip];user=phone>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""

TARGET = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench_target">
  <recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=mobile 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_or_zero(pid: int) -> float:
    try:
        return proc_cpu_seconds(pid)
    except OSError:
        return 0.0


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Peak RSS of a process, sampled every 100 ms while a step runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, proc_rss_mb(self.pid))
            await asyncio.sleep(0.1)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def read_rtts(workdir: Path) -> list[float]:
    out: list[float] = []
    for f in workdir.glob("*_rtt.csv"):
        with f.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():
                    out.append(float(row[1]))
        f.unlink()
    return out


def read_stats(workdir: Path) -> tuple[int, int]:
    """(successful, failed) from the last line of SIPp's -trace_stat file."""
    for f in workdir.glob("bench_caller_*_.csv"):
        rows = list(csv.reader(f.open(), delimiter=";"))
        f.unlink()
        if len(rows) >= 2:
            head, last = rows[0], rows[-1]
            ok = int(last[head.index("SuccessfulCall(C)")])
            failed = int(last[head.index("FailedCall(C)")])
            return ok, failed
    return 0, -1


async def run_step(
    workdir: Path,
    caller_xml: Path,
    dids_csv: Path,
    remote: int,
    rate: int,
    pid: int,
    calls: int | None = None,
    hold_ms: int = HOLD_MS,
    helpers: dict[str, int] | None = None,
) -> dict[str, float]:
    calls = calls or rate * STEP_SECONDS
    run_timeout = max(30, int(calls / rate + hold_ms / 1000 + 30))
    port = free_port()
    cmd = [
        "sipp",
        f"127.0.0.1:{remote}",
        "-sf",
        str(caller_xml),
        "-inf",
        str(dids_csv),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        str(hold_ms),
        "-l",
        str(max(rate * 10, calls)),
        "-trace_err",
        "-trace_stat",
        "-fd",
        "1",
        "-trace_rtt",
        "-rtt_freq",
        "1",
        "-timeout",
        str(run_timeout),
        "-timeout_error",
        "-nostdin",
        "-max_socket",
        str(max(5000, 2 * calls)),
    ]
    helpers = helpers or {}
    helper0 = {name: _cpu_or_zero(hpid) for name, hpid in helpers.items()}
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    with RssSampler(pid) as rss:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await proc.wait()
    wall = time.monotonic() - t0
    cpu = proc_cpu_seconds(pid) - cpu0
    helper_cpu = {name: 100 * (_cpu_or_zero(hpid) - helper0[name]) / wall for name, hpid in helpers.items()}
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the caller SIPp is the only child reaped here
    if helpers:
        helper_cpu["uac-sipp"] = 100 * (children1.ru_utime + children1.ru_stime
                                        - children0.ru_utime - children0.ru_stime) / wall
    ok, failed = read_stats(workdir)
    rtts = read_rtts(workdir)
    return {
        "rate": rate,
        "calls": calls,
        "ok": ok,
        "failed": failed if failed >= 0 else calls - ok,
        "rc": float(proc.returncode or 0),
        "p50": percentile(rtts, 0.5),
        "p99": percentile(rtts, 0.99),
        "cpu": 100 * cpu / wall,
        "cpu_ms_per_call": 1000 * cpu / max(1, ok),
        "rss_peak": rss.peak,
        **{f"cpu_{name}": value for name, value in helper_cpu.items()},
    }


@dataclasses.dataclass
class System:
    """One B2BUA under test."""

    name: str
    port: int
    pid: int
    helpers: dict[str, int] = dataclasses.field(default_factory=dict)
    """Processes the system needs besides itself (OCS, database, far-end SIPp): their CPU is printed per step,
    since they share the machine's cores with the system under test."""
    rss_idle: float = 0.0
    kb_per_held_call: float = 0.0
    held: tuple[int, int, int] = (0, 0, 0)  # calls held at once: asked, ok, failed
    active: bool = True
    results: list[dict[str, float]] = dataclasses.field(default_factory=list)


def healthy(r: dict[str, float]) -> bool:
    return not r["failed"] and r["ok"] >= r["calls"] and r["p99"] <= HEALTHY_P99_MS


async def ramp(systems: list[System], workdir: Path, rates: list[int], held: int) -> None:
    """Each rate is run against every still-active system in turn, so both see the same machine load.

    First, ``held`` calls are set up and held at once (at 100 calls/s up to 500 calls, 200 calls/s beyond,
    each held until the last one is up plus 4 s) for the memory per concurrent call.
    """
    caller_xml = workdir / "bench_caller.xml"
    dids_csv = workdir / "dids.csv"
    for system in systems:  # warm-up (imports, caches, peers), then the memory of held calls
        await run_step(workdir, caller_xml, dids_csv, system.port, 5, system.pid)
        system.rss_idle = proc_rss_mb(system.pid)
        held_rate = 100 if held <= MEMORY_CALLS else 200
        hold_ms = int(1000 * held / held_rate) + 4000
        r = await run_step(workdir, caller_xml, dids_csv, system.port, held_rate, system.pid, held, hold_ms)
        system.kb_per_held_call = 1024 * (r["rss_peak"] - system.rss_idle) / held
        print(
            f"{system.name:6} memory: {held} calls held at once ({held_rate}/s, {hold_ms / 1000:.0f} s): "
            f"RSS {system.rss_idle:.0f} -> {r['rss_peak']:.0f} MB = {system.kb_per_held_call:.1f} kB per "
            f"concurrent call; ok={int(r['ok'])} failed={int(r['failed'])}, set-up p50/p99 "
            f"{r['p50']:.0f}/{r['p99']:.0f} ms, CPU {r['cpu']:.0f}%",
            flush=True,
        )
        system.held = (held, int(r["ok"]), int(r["failed"]))
        await asyncio.sleep(3.0)
    start = time.monotonic()
    for rate in rates:
        for system in systems:
            if not system.active or time.monotonic() - start > BUDGET_SECONDS:
                continue
            r = await run_step(workdir, caller_xml, dids_csv, system.port, rate, system.pid,
                               helpers=system.helpers)
            system.results.append(r)
            others = " ".join(f"{k[4:]} {v:.0f}%" for k, v in r.items()
                              if k.startswith("cpu_") and k != "cpu_ms_per_call")
            print(
                f"{system.name:6} rate={rate:4}/s calls={int(r['calls']):5} ok={int(r['ok']):5} "
                f"failed={int(r['failed']):3} setup p50={r['p50']:6.1f} ms p99={r['p99']:7.1f} ms "
                f"cpu={r['cpu']:5.1f}% ({r['cpu_ms_per_call']:.2f} ms/call) rss={r['rss_peak']:.0f} MB"
                + (f" | others: {others}" if others else ""),
                flush=True,
            )
            # Keep ramping through a stray failure (one lost call under machine load) to see the whole curve;
            # stop at 1 % failures or when saturated. The report still requires 0 failures per step.
            if r["calls"] - r["ok"] > r["calls"] / 100 or r["p50"] > STOP_P50_MS:
                system.active = False
            await asyncio.sleep(1.0)  # let the step's calls end


def best(results: list[dict[str, float]], strict: bool) -> dict[str, float] | None:
    passing = [r for r in results if (healthy(r) if strict else not r["failed"] and r["ok"] >= r["calls"])]
    return max(passing, key=lambda r: r["rate"]) if passing else None


def provision(mongo_uri: str, database: str) -> None:
    from charging.ocs import models as ocs_models
    from hss_adapter import models as hss_models
    from hss_adapter import store
    from secondnum.mongo import connect

    connect(mongo_uri, database)
    hss_models.ensure_indexes()
    for i in range(DIDS):
        did = str(DID_BASE + i)
        store.create_account(
            {
                "did": did,
                "answering_mode": "forward_then_voicemail",
                "follow_me": {"targets": [{"uri": f"tel:+{MOBILE_BASE + i}", "ring_timeout": 20}]},
            }
        )
        ocs_models.Account(e164=did, balance=10**12).save()
    ocs_models.Tariff(prefix="", price_per_minute=100, increment_seconds=1).save()


async def serve_memory_ocs(port: int) -> None:
    """The built-in OCS (Diameter Ro, rating) with its in-memory ledger: no database on the charging path."""
    from charging.ocs.ledger import MemoryLedger
    from charging.ocs.rating import TariffRule
    from charging.ocs.server import OcsServer
    from charging.settings import OcsSettings

    ledger = MemoryLedger()
    for i in range(DIDS):
        ledger.balances[str(DID_BASE + i)] = 10**12
    ocs = OcsServer(OcsSettings(listen_port=port), ledger, http=False)
    ocs.tariffs.replace([TariffRule("", 100, 1, 0)])
    await ocs.start()
    await asyncio.Event().wait()


def _ready_once(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


UNDER_TEST_CPUS: set[int] | None = None
"""With ``--pin``: the CPU the B2BUA under test runs on; everything else (SIPp, OCS, database, this driver)
runs on the others. Set in main()."""


def _pin_under_test() -> None:
    if UNDER_TEST_CPUS is not None:
        os.sched_setaffinity(0, UNDER_TEST_CPUS)


async def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None,
                under_test: bool = False) -> asyncio.subprocess.Process:
    """Start a child; ``under_test`` puts it (all its future threads) on ``UNDER_TEST_CPUS`` when pinning."""
    with log.open("wb") as fh:
        return await asyncio.create_subprocess_exec(
            *cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, env=env,
            preexec_fn=_pin_under_test if under_test and UNDER_TEST_CPUS else None,
        )


async def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_ready_once, url):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} never became ready")


async def start_as(
    workdir: Path,
    args: argparse.Namespace,
    target_port: int,
    children: list[asyncio.subprocess.Process],
    mongo: EmbeddedMongo,
) -> System:
    """SecantusDB, accounts, the OCS and the AS; returns the AS as a system under test."""
    uri = mongo.start()  # main thread: see secondnum/mongo.py (death signal)
    await asyncio.to_thread(provision, uri, "bench")
    as_port, http_port, ocs_port = free_port(), free_port(), free_port()
    cfg = workdir / "bench.toml"
    cfg.write_text(
        f'[log]\nlevel = "warning"\n[mongo]\nuri = "{uri}"\ndatabase = "bench"\n'
        f"[ocs]\nlisten_port = {ocs_port}\nhttp_port = {free_port()}\n"
        f"[ro]\ntx_seconds = 5.0\n[[ro.peers]]\nport = {ocs_port}\n"
        f"[as]\nsip_port = {as_port}\nhttp_port = {http_port}\n"
        f'scscf_uri = "sip:127.0.0.1:{target_port}"\n'
        f"max_calls = 20000\nmax_pending = 5000\n"
        f"ro_crash_recovery = {'false' if args.no_ro_recovery else 'true'}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ocs_cmd = (
        [sys.executable, "-m", "secondnum.cli", "-c", str(cfg), "ocs"]
        if args.mongo_ocs
        else [sys.executable, "-m", "benchmarks.as_calls", "--serve-ocs", str(ocs_port)]
    )
    ocs_proc = await spawn(ocs_cmd, workdir / "ocs.log", env)
    children.append(ocs_proc)
    await asyncio.sleep(1.5)
    as_cmd = [sys.executable, "-m", "secondnum.cli", "-c", str(cfg), "as"]
    if args.profile:  # a script, not -m: dataclass annotations must resolve in secondnum.cli
        # Stock asyncio while profiling: uvloop's C loop hides which callbacks cost the time.
        (workdir / "run_as.py").write_text(
            "import asyncio, sys\nimport secondnum.cli as cli\n"
            "cli._run_loop = lambda factory: asyncio.run(factory())\n"
            "sys.exit(cli.main(sys.argv[1:]))\n"
        )
        prof = str(workdir / "as.prof")
        as_cmd = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            prof,
            str(workdir / "run_as.py"),
            "-c",
            str(cfg),
            "as",
        ]
    as_env = {**env, **dict(kv.split("=", 1) for kv in args.as_env)}  # the AS only, not the OCS or database
    as_proc = await spawn(as_cmd, workdir / "as.log", as_env, under_test=True)
    children.insert(0, as_proc)  # stopped first: it drains its calls while the OCS still answers
    await wait_ready(f"http://127.0.0.1:{http_port}/health/ready")
    helpers = {"ocs": ocs_proc.pid}
    if mongo.process is not None:
        helpers["db"] = mongo.process.pid
    return System("as", as_port, as_proc.pid, helpers)


async def start_sippy(workdir: Path, target_port: int, children: list[asyncio.subprocess.Process]) -> System:
    port = free_port()
    b2bua = str(Path(sys.executable).parent / "b2bua_simple")
    cmd = [b2bua, "-f", "-l", "127.0.0.1", "-p", str(port), "-n", f"127.0.0.1:{target_port}"]
    proc = await spawn([*cmd, "-L", str(workdir / "sippy.log")], workdir / "sippy.err", under_test=True)
    children.append(proc)
    await asyncio.sleep(1.5)
    return System("sippy", port, proc.pid)


def report(systems: list[System]) -> None:
    print()
    for system in systems:
        for strict, label in ((False, "0 failed calls"), (True, f"0 failed, p99 <= {HEALTHY_P99_MS:.0f} ms")):
            b = best(system.results, strict)
            if b is None:
                print(f"{system.name:6} {label}: no passing step")
                continue
            print(
                f"{system.name:6} highest rate with {label}: {int(b['rate'])} calls/s; "
                f"setup p50 {b['p50']:.1f} ms, p99 {b['p99']:.1f} ms; CPU {b['cpu']:.0f}% "
                f"({b['cpu_ms_per_call']:.2f} ms/call); {system.kb_per_held_call:.1f} kB per concurrent call"
            )
        asked, ok, failed = system.held
        print(f"{system.name:6} held at once: {ok} of {asked} calls up together, {failed} failed")
    by_name = {s.name: s for s in systems}
    if "as" in by_name and "sippy" in by_name:
        for strict in (False, True):
            a, s = best(by_name["as"].results, strict), best(by_name["sippy"].results, strict)
            if a and s:
                kind = "healthy" if strict else "0-failure"
                print(f"ratio as/sippy ({kind} rate): {a['rate'] / s['rate']:.2f}x (target >= 2x)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=["as", "sippy"], default=None)
    parser.add_argument("--mongo-ocs", action="store_true", help="OCS with its MongoDB ledger")
    parser.add_argument(
        "--no-ro-recovery",
        action="store_true",
        help="[as] ro_crash_recovery = false (no open-session writes)",
    )
    parser.add_argument("--profile", action="store_true", help="run the AS under cProfile, print the top 30")
    parser.add_argument(
        "--rates", default=None, help="comma-separated call rates instead of the default ramp"
    )
    parser.add_argument(
        "--held", type=int, default=MEMORY_CALLS,
        help=f"calls held at once for the memory figure (default {MEMORY_CALLS}; 5000 for the issue's hold)",
    )
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=False,
        help="the B2BUA under test alone on the last CPU, SIPp/OCS/database/driver on the others (both "
             "systems alike): compares the B2BUAs per core rather than the machine's sharing",
    )
    parser.add_argument(
        "--as-env", action="append", default=[], metavar="NAME=VALUE",
        help="environment for the AS process only, e.g. PYTHONMALLOC=malloc (repeatable)",
    )
    parser.add_argument("--serve-ocs", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ocs is not None:
        await serve_memory_ocs(args.serve_ocs)
        return
    rates = [int(r) for r in args.rates.split(",")] if args.rates else RATES
    workdir = Path(tempfile.mkdtemp(prefix="as-bench-"))
    (workdir / "bench_caller.xml").write_text(CALLER)
    (workdir / "bench_target.xml").write_text(TARGET)
    target_port = free_port()
    lines = ["SEQUENTIAL"] + [f"{DID_BASE + i};{target_port};" for i in range(DIDS)]
    (workdir / "dids.csv").write_text("\n".join(lines) + "\n")
    global UNDER_TEST_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        UNDER_TEST_CPUS = {cpus[-1]}
        os.sched_setaffinity(0, set(cpus[:-1]))  # inherited by SIPp, the OCS and SecantusDB
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
        f"python {platform.python_version()}, workdir {workdir}, pinned: "
        + (f"B2BUA on CPU {sorted(UNDER_TEST_CPUS)}, the rest on {cpus[:-1]}" if UNDER_TEST_CPUS else "no"),
        flush=True,
    )
    children: list[asyncio.subprocess.Process] = []
    systems: list[System] = []
    mongo = EmbeddedMongo(":memory:")
    target_cmd = ["sipp", "-sf", str(workdir / "bench_target.xml"), "-i", "127.0.0.1", "-p", str(target_port)]
    try:
        max_socket = str(max(5000, 2 * args.held))
        target_log = workdir / "target.log"
        target = await spawn([*target_cmd, "-nostdin", "-max_socket", max_socket], target_log)
        children.append(target)
        target_pid = target.pid
        if args.only in (None, "as"):
            systems.append(await start_as(workdir, args, target_port, children, mongo))
        if args.only in (None, "sippy"):
            systems.append(await start_sippy(workdir, target_port, children))
        for system in systems:
            system.helpers["uas-sipp"] = target_pid
        await ramp(systems, workdir, rates, args.held)
    finally:
        for child in children:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), 40)
            if child.returncode is None:
                child.kill()
                await child.wait()
        mongo.stop()
    report(systems)
    if args.profile:
        import pstats

        stats = pstats.Stats(str(workdir / "as.prof"))
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats("appserver|charging|secondnum", 40)


if __name__ == "__main__":
    asyncio.run(main())
