"""`secondnum up` as a real subprocess on free loopback ports, for the demo tests.

Every port and folder comes from a TOML file written per test (data in a temporary folder), and the
developer's SECONDNUM_* / MONGO_URI variables are removed, so a test never collides with a running instance.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from secondnum.net import free_port

SECONDNUM = str(Path(sys.executable).parent / "secondnum")
READY_LINE = "secondnum is up"




@dataclasses.dataclass
class Ports:
    as_sip: int
    as_http: int
    api: int
    media_sip: int
    media_api: int
    ocs_diameter: int
    ocs_http: int
    scscf: int
    rtp_min: int

    @classmethod
    def pick(cls) -> Ports:
        rtp = random.randrange(32000, 39000, 100)
        tcp = functools.partial(free_port, udp=False)
        return cls(free_port(), tcp(), tcp(), free_port(), tcp(), tcp(), tcp(), free_port(), rtp)


def write_config(folder: Path, ports: Ports, drain_limit: float = 5.0) -> Path:
    p = ports
    text = f"""
[run]
drain_limit = {drain_limit}

[mongo]
embedded_data_dir = "{folder / 'mongo'}"

[as]
sip_port = {p.as_sip}
http_port = {p.as_http}
own_uri = "sip:127.0.0.1:{p.as_sip}"
media_uri = "sip:127.0.0.1:{p.media_sip}"
scscf_uri = "sip:127.0.0.1:{p.scscf};lr"

[api]
port = {p.api}

[media]
sip_port = {p.media_sip}
api_port = {p.media_api}
rtp_port_min = {p.rtp_min}
rtp_port_max = {p.rtp_min + 99}
prompt_dir = "{folder / 'prompts'}"

[ocs]
listen_port = {p.ocs_diameter}
http_port = {p.ocs_http}

[[ro.peers]]
port = {p.ocs_diameter}
"""
    path = folder / "secondnum.toml"
    path.write_text(text)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECONDNUM_") and k != "MONGO_URI"}
    env.update(extra)
    return env


class Up:
    """One `secondnum ... up` (or a single component) process; output goes to a file."""

    def __init__(self, folder: Path, config: Path, args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.config = config
        self.args = args or ["up"]
        self.env = env or clean_env()
        self.out_path = folder / f"up-{time.monotonic_ns()}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def start(self, timeout: float = 120.0) -> Up:
        started = time.monotonic()
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen([SECONDNUM, "-c", str(self.config), *self.args], stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.folder)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.output():
                self.ready_seconds = time.monotonic() - started
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"secondnum exited {self.proc.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"secondnum not ready within {timeout} s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def interrupt(self, timeout: float) -> tuple[int, float]:
        """SIGINT (Ctrl-C); returns (exit code, seconds to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            tail = self.output()[-3000:]
            raise AssertionError(f"secondnum did not stop within {timeout} s:\n{tail}") from None
        return rc, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode(errors="replace")
