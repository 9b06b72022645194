"""SIPp as the S-CSCF (and the network behind it) for the demo, and reading what it saw on the wire.

SIPp is started in the foreground (``-bg`` loses its exit code) with ``-trace_msg`` so every message it
received can be shown and checked, and ``-trace_err`` so a failure explains itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
from pathlib import Path

from secondnum.demo.errors import DemoError

SCENARIOS = Path(__file__).parent
_SEPARATOR = re.compile(r"^-{20,} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s*$", re.MULTILINE)


@dataclasses.dataclass
class Traced:
    """One SIP message from SIPp's message log."""

    direction: str  # "sent" | "received"
    start_line: str
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""

    def all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]

    @property
    def method(self) -> str:
        return "" if self.start_line.startswith("SIP/2.0") else self.start_line.split(" ", 1)[0]

    @property
    def request_uri(self) -> str:
        parts = self.start_line.split(" ")
        return parts[1] if len(parts) > 2 and self.method else ""


def read_trace(path: Path) -> list[Traced]:
    if not path.exists():
        return []
    parts = _SEPARATOR.split(path.read_text(errors="replace"))
    out: list[Traced] = []
    for block in parts[1:]:
        lines = block.replace("\r\n", "\n").lstrip("\n").split("\n")
        direction = "sent" if lines and "sent" in lines[0] else "received"
        rest = lines[1:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        if not rest:
            continue
        headers: list[tuple[str, str]] = []
        j = 1
        while j < len(rest) and rest[j].strip():
            name, _, value = rest[j].partition(":")
            headers.append((name.strip(), value.strip()))
            j += 1
        out.append(Traced(direction, rest[0].strip(), headers, "\n".join(rest[j + 1:]).strip()))
    return out


CHILDREN: set[asyncio.subprocess.Process] = set()
"""Every SIPp and phone process the demo started, so an interrupted demo leaves none behind."""


def kill_children() -> None:
    for proc in CHILDREN:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    CHILDREN.clear()


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise DemoError("SIPp is not installed: sudo apt-get install sip-tester")
    return found


class Sipp:
    """One SIPp UAS process listening on ``host:port`` (UDP) with one of the demo's scenarios."""

    def __init__(self, workdir: Path, name: str, scenario: str, *, host: str, port: int, rtp_port: int,
                 timeout: int) -> None:
        self.name = name
        self.message_file = workdir / f"{name}.msg.log"
        self.error_file = workdir / f"{name}.err.log"
        self.args = [
            sipp_binary(), "-sf", str(SCENARIOS / scenario), "-i", host, "-p", str(port),
            "-mp", str(rtp_port),
            "-m", "1", "-t", "u1", "-trace_msg", "-message_file", str(self.message_file),
            "-trace_err", "-error_file", str(self.error_file), "-timeout", str(timeout), "-timeout_error",
            "-nostdin",
        ]
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""

    async def start(self) -> Sipp:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        CHILDREN.add(self.proc)
        await asyncio.sleep(0.5)  # bind before the AS sends anything
        if self.proc.returncode is not None:
            _, err = await self.proc.communicate()
            raise DemoError(f"SIPp ({self.name}) did not start: {err.decode(errors='replace').strip()}")
        return self

    async def wait(self, timeout: float) -> int:
        """SIPp's exit code (0: the scenario completed; 1: it failed; -9 when it had to be killed)."""
        assert self.proc is not None
        try:
            _, self.stderr = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        return int(self.proc.returncode if self.proc.returncode is not None else -9)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def received(self, method: str) -> list[Traced]:
        return [m for m in read_trace(self.message_file) if m.direction == "received" and m.method == method]

    def errors(self) -> str:
        text = self.error_file.read_text(errors="replace") if self.error_file.exists() else ""
        return (text.strip().splitlines() or [""])[-1]
