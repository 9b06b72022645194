"""Running SIPp scenarios against the AS, and reading what SIPp saw on the wire (its -trace_msg log)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"
_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", re.MULTILINE)




@dataclasses.dataclass
class Traced:
    """One message from the SIPp log."""

    at: dt.datetime
    direction: str  # "sent" | "received"
    start_line: str
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]

    @property
    def method(self) -> str:
        return self.start_line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        parts = self.start_line.split(" ", 2)
        return int(parts[1]) if self.start_line.startswith("SIP/2.0") else None

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]


def read_trace(path: Path) -> list[Traced]:
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    out: list[Traced] = []
    parts = _SEPARATOR.split(text)
    for i in range(1, len(parts) - 1, 2):
        stamp, block = parts[i], parts[i + 1]
        lines = block.replace("\r\n", "\n").lstrip("\n").split("\n")
        kind = lines[0] if lines else ""
        direction = "sent" if "sent" in kind else "received"
        rest = lines[1:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        if not rest:
            continue
        start = rest[0].strip()
        headers: list[tuple[str, str]] = []
        j = 1
        while j < len(rest) and rest[j].strip():
            name, _, value = rest[j].partition(":")
            headers.append((name.strip(), value.strip()))
            j += 1
        body = "\n".join(rest[j + 1 :]).strip()
        out.append(Traced(dt.datetime.fromisoformat(stamp), direction, start, headers, body))
    return out


class Sipp:
    """One SIPp process: a UAS (listening) or a UAC (calling ``remote``)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        scenario: str | Path,
        port: int,
        transport: str = "udp",
        remote: str | None = None,
        keys: dict[str, str] | None = None,
        calls: int = 1,
        pause_ms: int = 500,
        timeout: int = 60,
        extra: list[str] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.scenario = scenario if isinstance(scenario, Path) else SCENARIOS / scenario
        self.port = port
        self.message_file = workdir / f"{name}.msg.log"
        self.error_file = workdir / f"{name}.err.log"
        self.screen_file = workdir / f"{name}.screen.log"
        args = ["sipp"]
        if remote:
            args.append(remote)
        args += [
            "-sf",
            str(self.scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(calls),
            "-t",
            "t1" if transport == "tcp" else "u1",
            "-d",
            str(pause_ms),
            "-trace_msg",
            "-message_file",
            str(self.message_file),
            "-trace_err",
            "-error_file",
            str(self.error_file),
            "-trace_screen",
            "-screen_file",
            str(self.screen_file),
            "-timeout",
            str(timeout),
            "-timeout_error",
            "-max_recv_loops",
            "1000",
            "-nostdin",
        ]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        args += extra or []
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(0.3)  # let a UAS bind before the first request; a UAC does not mind
        return self

    async def wait(self, timeout: float = 90) -> int:
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        return int(self.proc.returncode or 0)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def messages(self) -> list[Traced]:
        return read_trace(self.message_file)

    def received(self, method_or_status: str | int) -> list[Traced]:
        out = []
        for m in self.messages():
            if m.direction != "received":
                continue
            if (isinstance(method_or_status, int) and m.status == method_or_status) or (
                isinstance(method_or_status, str) and m.status is None and m.method == method_or_status
            ):
                out.append(m)
        return out

    def diagnostics(self) -> str:
        parts = [f"--- {self.name}: {' '.join(self.args)}"]
        for f in (self.error_file, self.screen_file):
            if f.exists():
                parts.append(f.read_text(errors="replace")[-3000:])
        return "\n".join(parts)
