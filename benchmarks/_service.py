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

__all__ = ["machine", "metric", "rel_sipp", "rs", "start_stack", "top_up"]


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
    status, text = rs.http_json("GET", f"http://127.0.0.1:{port}/metrics", token=None)
    if status != 200 or not isinstance(text, str):
        return float("nan")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            m = re.match(r"^[^\s{]+(\{[^}]*\})?\s+([0-9.eE+-]+)$", line)
            if m and line.split("{")[0].split(" ")[0] == name:
                total += float(m.group(2))
    return total


Stack = tuple[rs.MongoProcess, rs.SecondnumProcess, rs.Ports]


def start_stack(workdir: Path, extra: dict[str, dict[str, object]]) -> Stack:
    mongo = rs.MongoProcess(workdir / "mongo")
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
