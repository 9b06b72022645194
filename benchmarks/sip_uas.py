"""Call-rate ramp: SIPp's built-in ``uac`` scenario against a minimal stateful UAS on our stack, then against
the same UAS written with ``sippy`` (PyPI ``sippy``, the reference anchor). Target: at least 2x sippy.

Run: ``.venv/bin/python -m benchmarks.sip_uas`` (bounded to about 3 minutes). Each step runs SIPp at a fixed
rate for a few seconds; a step passes with 0 failed calls and 0 SIPp retransmissions (a retransmission means
the UAS answered later than T1 = 500 ms). Printed per step: rate, calls, failures, retransmissions and the UAS
process's CPU use (user+sys time over wall time, from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from secondnum.net import free_port

RATES = [100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2200, 2600, 3000]
STEP_SECONDS = 5
CALL_HOLD_MS = 500
BUDGET_SECONDS = 150  # both implementations together

SDP = (b"v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")


# --- the two UAS implementations (run as child processes) -------------------------------------------------

def serve_ours(port: int) -> None:
    from secondnum.sip import Dialog, IncomingRequest, SipEndpoint, install_uvloop, metrics

    uvloop = install_uvloop()

    async def main() -> None:
        ep: SipEndpoint

        async def handler(inc: IncomingRequest) -> None:
            method = inc.request.method
            if method == "INVITE" and inc.dialog is None:
                dialog = Dialog.from_uas(inc.request, inc.to_tag, ep.local_contact())
                ep.dialogs.add(dialog)
                inc.respond(200, body=SDP, content_type="application/sdp")
                dialog.confirm()
            elif method == "BYE":
                inc.respond(200)
                if inc.dialog is not None:
                    ep.dialogs.remove(inc.dialog)
            elif method != "ACK":
                inc.respond(200)

        ep = SipEndpoint(handler, host="127.0.0.1", port=port, user_agent=None)
        await ep.start()
        print(f"ready uvloop={uvloop}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await ep.close()
        sent = {k: metrics.RETRANSMISSIONS.labels(k)._value.get() for k in ("request", "response", "ack")}
        got = {k: metrics.RETRANSMISSIONS_RECEIVED.labels(k)._value.get()
               for k in ("request", "response", "ack")}
        print(f"stats retransmitted={sent} absorbed={got}", flush=True)

    asyncio.run(main())


def serve_sippy(port: int) -> None:
    from sippy.CCEvents import CCEventConnect, CCEventTry  # type: ignore[import-untyped]
    from sippy.Core.EventDispatcher import ED2  # type: ignore[import-untyped]
    from sippy.MsgBody import MsgBody  # type: ignore[import-untyped]
    from sippy.SipConf import SipConf  # type: ignore[import-untyped]
    from sippy.SipTransactionManager import SipTransactionManager  # type: ignore[import-untyped]
    from sippy.UA import UA  # type: ignore[import-untyped]

    class NullLogger:
        level = 0

        def write(self, *args: object, **kwargs: object) -> None:
            pass

    class Call:
        def __init__(self, gc: dict[str, object]) -> None:
            self.ua = UA(gc, self.recv_event)

        def recv_event(self, event: object, ua: object) -> None:
            if isinstance(event, CCEventTry):
                self.ua.recvEvent(CCEventConnect((200, "OK", MsgBody(SDP.decode()))))

    def recv_request(req, sip_t):  # type: ignore[no-untyped-def]
        if req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        if req.getMethod() == "INVITE":
            return Call(gc).ua.recvRequest(req, sip_t)
        return (req.genResponse(200, "OK"), None, None)

    gc: dict[str, object] = {"_sip_address": "127.0.0.1", "_sip_port": port, "_sip_logger": NullLogger()}
    SipConf.my_uaname = "Sippy"
    gc["_sip_tm"] = SipTransactionManager(gc, recv_request)
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: ED2.breakLoop())
    ED2.loop()


# --- the ramp -------------------------------------------------------------------------------------------



def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_step(rate: int, port: int, pid: int, workdir: Path) -> dict[str, float]:
    calls = rate * STEP_SECONDS
    stat = workdir / f"stat_{port}_{rate}.csv"
    args = ["sipp", "-sn", "uac", "-r", str(rate), "-m", str(calls), "-l", str(rate * 4),
            "-d", str(CALL_HOLD_MS),
            "-i", "127.0.0.1", "-p", str(free_port(tcp=False)), "-t", "u1", "-trace_err", "-error_file",
            str(workdir / f"err_{port}_{rate}.log"), "-trace_stat", "-stf", str(stat), "-fd", "1",
            "-timeout", f"{STEP_SECONDS + 20}s", "-timeout_error", "-nostdin", "-nd", f"127.0.0.1:{port}"]
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    proc = subprocess.run(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=STEP_SECONDS + 40, check=False)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    rows = list(csv.DictReader(stat.open(), delimiter=";")) if stat.exists() else []
    last = rows[-1] if rows else {}

    def num(key: str) -> float:
        v = last.get(key, "0") or "0"
        return float(v)

    return {"rate": rate, "rc": proc.returncode, "ok": num("SuccessfulCall(C)"),
            "failed": num("FailedCall(C)"),
            "retrans": num("Retransmissions(C)"), "cpu": cpu / wall, "wall": wall, "calls": calls}


def start_server(name: str) -> tuple[subprocess.Popen[str], int, str]:
    port = free_port(tcp=False)
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.sip_uas", "--serve", name, str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    ready = server.stdout.readline().strip()
    if not ready.startswith("ready"):
        server.kill()
        err = server.stderr.read() if server.stderr else ""
        raise RuntimeError(f"{name} UAS did not start: {ready} {err}")
    return server, port, ready


def stop_server(server: subprocess.Popen[str]) -> str:
    """Stop a UAS; returns what it printed on the way out (our UAS prints its retransmission counters)."""
    server.send_signal(signal.SIGTERM)
    try:
        out, _ = server.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        out, _ = server.communicate()
    return out.strip()


def ramp(names: list[str], workdir: Path,
         steps: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, float] | None]:
    """Both UASes run side by side; each rate step runs against one then the other (same machine load)."""
    servers = {name: start_server(name) for name in names}
    best: dict[str, dict[str, float] | None] = dict.fromkeys(names)
    alive = set(names)
    try:
        for name, (_, port, ready) in servers.items():
            print(f"{name} UAS on 127.0.0.1:{port} ({ready})")
        print(f"\n{'UAS':>6} {'rate/s':>7} {'calls':>7} {'ok':>7} {'failed':>7} {'retrans':>8} "
              f"{'UAS CPU':>8}")
        started = time.monotonic()
        for rate in RATES:
            if not alive:
                break
            if time.monotonic() - started > BUDGET_SECONDS:
                print("   (time budget reached)")
                break
            for name in names:
                if name not in alive:
                    continue
                server, port, _ = servers[name]
                step = run_step(rate, port, server.pid, workdir)
                passed = (step["rc"] == 0 and step["failed"] == 0 and step["retrans"] == 0
                          and step["ok"] == step["calls"])
                print(f"{name:>6} {rate:>7} {step['calls']:>7.0f} {step['ok']:>7.0f} {step['failed']:>7.0f} "
                      f"{step['retrans']:>8.0f} {step['cpu'] * 100:>7.0f}%  {'pass' if passed else 'FAIL'}",
                      flush=True)
                if passed:
                    best[name] = step
                    steps.setdefault(name, {})[rate] = step
                else:
                    alive.discard(name)
                time.sleep(1)
        return best
    finally:
        for name, (server, _, _) in servers.items():
            tail = stop_server(server)
            if tail:
                print(f"{name} UAS at exit: {tail}")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", nargs=2, metavar=("IMPL", "PORT"))
    args = parser.parse_args()
    if args.serve:
        impl, port = args.serve[0], int(args.serve[1])
        (serve_ours if impl == "ours" else serve_sippy)(port)
        return
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}, "
          f"python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}")
    print(f"SIPp built-in uac, UDP, {STEP_SECONDS} s per step, {CALL_HOLD_MS} ms call hold")
    steps: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = ramp(["ours", "sippy"], Path(tmp), steps)
    print("\n== summary: highest rate with 0 failed calls and 0 retransmissions ==")
    for name, best in results.items():
        if best is None:
            print(f"{name:6s}: no passing step")
        else:
            print(f"{name:6s}: {best['rate']:.0f} calls/s, UAS CPU {best['cpu'] * 100:.0f}% of one core")
    ours, ref = results["ours"], results["sippy"]
    if ours and ref:
        ratio = ours["rate"] / ref["rate"]
        print(f"ratio ours/sippy: {ratio:.2f}x (target >= 2x: {'MET' if ratio >= 2 else 'MISSED'})")
    common = sorted(set(steps.get("ours", {})) & set(steps.get("sippy", {})))
    if common:
        rate = common[-1]
        per_call = {n: steps[n][rate]["cpu"] / rate * 1e6 for n in ("ours", "sippy")}
        gain = per_call["sippy"] / per_call["ours"]
        print(f"UAS CPU per call at {rate} calls/s: ours {per_call['ours']:.0f} us, "
              f"sippy {per_call['sippy']:.0f} us ({gain:.2f}x less CPU per call)")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
