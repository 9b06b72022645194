"""SIPp processes for reliability tests and benchmarks: the S-CSCF (caller side) and the far end (UAS).

The S-CSCF side binds to ``TRUSTED`` (127.0.0.5, the address the AS trusts); the far end binds to the same
address on its own port, which the caller puts in the ``odi`` Route so that the AS's forwarded INVITE reaches
it. Statistics come from SIPp's ``-trace_stat`` CSV (cumulative counters of the last line).
"""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TRUSTED = "127.0.0.5"


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    return path


class Sipp:
    def __init__(self, name: str, workdir: Path, args: list[str]) -> None:
        self.name = name
        self.workdir = workdir
        self.args = [sipp_binary(), *args, "-trace_err", "-trace_stat", "-fd", "1",
                     "-stf", str(workdir / f"{name}_stat.csv"),
                     "-error_file", str(workdir / f"{name}_err.log"), "-nostdin"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        with open(self.workdir / f"{self.name}.out", "wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        return self

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: stop gracefully
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def stats(self) -> dict[str, str]:
        path = self.workdir / f"{self.name}_stat.csv"
        if not path.exists():
            return {}
        rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0], rows[-1], strict=False))

    def counter(self, name: str) -> int:
        value = self.stats().get(name, "0") or "0"
        try:
            return int(float(value))
        except ValueError:
            return 0

    def errors(self, limit: int = 3000) -> str:
        path = self.workdir / f"{self.name}_err.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def far_end(workdir: Path, port: int, name: str = "far_end") -> Sipp:
    return Sipp(name, workdir, ["-sf", str(SCENARIOS / "far_end.xml"), "-i", TRUSTED, "-p", str(port),
                                "-m", "1000000", "-t", "u1"])


def caller(workdir: Path, as_port: int, odi_port: int, *, did: str, caller_number: str, rate: float,
           calls: int, min_ms: int, max_ms: int, limit: int = 5000, name: str = "caller",
           extra: list[str] | None = None) -> Sipp:
    """``calls`` ISC INVITEs at ``rate`` per second, each talking ``min_ms``..``max_ms`` then BYE."""
    # SIPp cannot take keys in <pause> attributes: the talk-time bounds are written into a copy.
    scenario = workdir / f"{name}_isc_caller.xml"
    scenario.write_text((SCENARIOS / "isc_caller.xml").read_text().replace("[min_ms]", str(min_ms))
                        .replace("[max_ms]", str(max_ms)))
    args = [f"127.0.0.1:{as_port}", "-sf", str(scenario), "-i", TRUSTED, "-p", "0",
            "-t", "u1", "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-l", str(limit),
            "-key", "did", did, "-key", "caller", caller_number, "-key", "odi_port", str(odi_port),
            # Global SIPp timeout: the whole run plus the longest call plus slack (never cut a soak short).
            "-timeout", str(int(calls / rate + max_ms / 1000 + 300)), "-timeout_error",
            "-recv_timeout", "35000", "-max_retrans", "6"]
    return Sipp(name, workdir, args + (extra or []))
