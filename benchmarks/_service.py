"""Shared plumbing of the service-level benchmarks (overload, soak): the stack as processes, metrics, samples.

Reuses ``tests/reliability/rel_stack.py`` and ``rel_sipp.py`` (one implementation of "start the service and
SIPp"); the folder is put on ``sys.path`` because a dev dependency (sippy) shadows the ``tests`` package name.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

import rel_sipp
import rel_stack as rs

__all__ = ["machine", "metric", "ramp", "rel_sipp", "rs", "run_caller", "setup_ms", "start_stack", "top_up"]


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{platform.node()} | {cpu} | {os.cpu_count()} CPUs | Python {platform.python_version()} | "
            f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def metric(port: int, name: str, labels: str = "") -> float:
    """Sum of a Prometheus sample from the AS's /metrics (all label sets matching ``labels``)."""
    return metrics(port, name, labels=labels)[name]


def metrics(port: int, *names: str, labels: str = "") -> dict[str, float]:
    """Several samples (each summed over the label sets matching ``labels``) from one read of /metrics."""
    status, text = rs.http_json("GET", f"http://127.0.0.1:{port}/metrics", token=None)
    if status != 200 or not isinstance(text, str):
        return {name: float("nan") for name in names}
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#") or (labels and labels not in line):
            continue
        name = line.split("{")[0].split(" ")[0]
        if name in totals:
            m = re.match(r"^[^\s{]+(\{[^}]*\})?\s+([0-9.eE+-]+)$", line)
            if m:
                totals[name] += float(m.group(2))
    return totals


Stack = tuple[rs.MongoProcess, rs.SecondnumProcess, rs.Ports]


def start_stack(workdir: Path, extra: dict[str, dict[str, object]], *, retry_writes: bool = False) -> Stack:
    mongo = rs.MongoProcess(workdir / "mongo", retry_writes=retry_writes)
    mongo.start()
    ports = rs.Ports()
    rs.write_config(workdir / "cfg.toml", ports, mongo.uri, trusted=[rel_sipp.TRUSTED],
                    extra={"log": {"level": "warning"}, **extra})
    proc = rs.SecondnumProcess(workdir, workdir / "cfg.toml")
    proc.start([f"http://127.0.0.1:{ports.as_http}/health/ready", f"http://127.0.0.1:{ports.api}/health/ready"])
    return mongo, proc, ports


def top_up(ports: rs.Ports, amount: str = "1000000.00") -> None:
    status, body = rs.http_json("POST", f"http://127.0.0.1:{ports.ocs_http}/api/v1/accounts/{rs.DID}/topup",
                                {"amount": amount})
    if status != 200:
        raise RuntimeError(f"OCS top-up failed: {status} {body}")


def wait(seconds: float) -> None:
    time.sleep(seconds)


def run_caller(stack_ports: rs.Ports, workdir: Path, name: str, rate: float, seconds: float,
                hold: tuple[int, int], limit: int) -> rel_sipp.Sipp:
    calls = max(1, int(rate * seconds))
    return rel_sipp.caller(workdir, stack_ports.as_sip, stack_ports.scscf, did=rs.DID,
                           caller_number=rs.PSTN_CALLER, rate=rate, calls=calls, min_ms=hold[0],
                           max_ms=hold[1], limit=limit, name=name).start()


def setup_ms(s: rel_sipp.Sipp) -> float:
    """SIPp's mean INVITE -> 200 time (HH:MM:SS:micro) in ms."""
    value = s.stats().get("ResponseTimesetup(C)", "")
    try:
        h, m, sec, micro = (int(x) for x in value.split(":"))
    except ValueError:
        return float("nan")
    return (h * 3600 + m * 60 + sec) * 1000 + micro / 1000


def ramp(workdir: Path, step_seconds: float = 10.0) -> float:
    """Highest rate with no failed call and a mean setup delay < 100 ms (own stack, fresh per ramp)."""
    workdir.mkdir(parents=True, exist_ok=True)
    mongo, proc, ports = start_stack(workdir, {})
    far = None
    clean = 0.0
    try:
        top_up(ports)
        far = rel_sipp.far_end(workdir, ports.scscf, name="ramp_far").start()
        time.sleep(0.5)
        for rate in (10, 20, 40, 60, 80, 100, 130, 160, 200, 250):
            step = run_caller(ports, workdir, f"ramp{rate}", rate, step_seconds, (1000, 2000), 100_000)
            step.wait(step_seconds + 90)
            failed, ok = step.counter("FailedCall(C)"), step.counter("SuccessfulCall(C)")
            setup = setup_ms(step)
            clean_step = failed == 0 and ok == step.counter("OutgoingCall(C)") and setup < 100
            print(f"ramp {rate:>4}/s: ok {ok}, failed {failed}, setup mean {setup:.0f} ms "
                  f"-> {'clean' if clean_step else 'not clean'}", flush=True)
            if not clean_step:
                break
            clean = float(rate)
            time.sleep(3)
    finally:
        if far is not None:
            far.stop()
        proc.stop()
        mongo.stop()
    return clean or 10.0
