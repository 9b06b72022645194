"""The whole service as real processes on loopback, for reliability tests and benchmarks.

``SecondnumProcess`` writes a configuration with free ports, runs ``secondnum up`` (or one component) as a
subprocess, waits for its start-up table and readiness, and stops it with SIGTERM (or SIGKILL on request).
MongoDB is a separate SecantusDB (``MongoProcess``) so that tests can kill and restart it independently of
the service. Provisioning goes through the real REST API. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secondnum.mongo import secantus_uri

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOKEN = "rel-token"
DID = "42027777100"
MOBILE = "42073723123"
PSTN_CALLER = "42075553333"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s2:
            try:
                s2.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def free_rtp_range(size: int = 1000) -> tuple[int, int]:
    """An even-aligned range of UDP ports, most likely unused (picked around a free port)."""
    base = free_port() & ~1
    base = min(max(base, 20000), 63000)
    return base, base + size - 1


class MongoProcess:
    """A SecantusDB subprocess with a data folder that survives kill/restart (same port)."""

    def __init__(self, data_dir: Path, *, retry_writes: bool = False) -> None:
        self.data_dir = data_dir
        self.retry_writes = retry_writes
        """True: the driver's default retryable writes, as before the fix (the soak's comparison)."""
        self.port = free_port(socket.SOCK_STREAM)
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir.parent / "secantus-empty.toml").write_text("")

    @property
    def uri(self) -> str:
        """The same URI ``secondnum up`` uses for its embedded server (retryable writes off: see there)."""
        uri = secantus_uri(self.port)
        return uri.replace("&retryWrites=false", "") if self.retry_writes else uri

    def start(self, timeout: float = 30.0) -> None:
        exe = VENV_BIN / "secantusd-py"
        log = open(self.data_dir.parent / "secantus.log", "ab")  # noqa: SIM115 - kept for the child's life
        self.proc = subprocess.Popen(
            [str(exe), "--config", str(self.data_dir.parent / "secantus-empty.toml"), "--host", "127.0.0.1",
             "--port", str(self.port), "--storage-path", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir.parent)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("secantusd did not start listening")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Ports:
    as_sip: int = field(default_factory=free_port)
    as_http: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    media_sip: int = field(default_factory=free_port)
    media_api: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    ocs: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    ocs_http: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    api: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    scscf: int = field(default_factory=free_port)
    rtp: tuple[int, int] = field(default_factory=free_rtp_range)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def write_config(path: Path, ports: Ports, mongo_uri: str, *, trusted: list[str],
                 extra: dict[str, dict[str, Any]] | None = None, prompts_dir: Path | None = None) -> None:
    sections: dict[str, dict[str, Any]] = {
        "run": {"drain_limit": 3.0, "seed_demo_data": True},  # the seed's DID, alias and OCS balance
        "log": {"level": "info"},
        "mongo": {"uri": mongo_uri, "database": "secondnum"},
        "as": {"sip_port": ports.as_sip, "http_port": ports.as_http,
               "own_uri": f"sip:127.0.0.1:{ports.as_sip}", "media_uri": f"sip:127.0.0.1:{ports.media_sip}",
               "scscf_uri": f"sip:127.0.0.1:{ports.scscf};lr", "trusted_scscf": trusted,
               "api_tokens": [TOKEN]},
        "media": {"sip_port": ports.media_sip, "api_port": ports.media_api, "rtp_port_min": ports.rtp[0],
                  "rtp_port_max": ports.rtp[1]},
        "ocs": {"listen_port": ports.ocs, "http_port": ports.ocs_http},
        "ro": {"peers": [{"port": ports.ocs}]},
        "api": {"port": ports.api, "tokens": [TOKEN]},
    }
    # Rendered prompts are reused between runs (espeak-ng takes seconds for the whole set).
    sections["media"]["prompt_dir"] = str(prompts_dir or ROOT / "var" / "prompts")
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))


class SecondnumProcess:
    """``secondnum -c cfg <command>`` as a subprocess; logs in ``workdir/<name>.log``."""

    def __init__(self, workdir: Path, config: Path, command: str = "up", name: str = "secondnum") -> None:
        self.workdir = workdir
        self.config = config
        self.command = command
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_urls: list[str], timeout: float = 90.0) -> None:
        args = [str(VENV_BIN / "secondnum"), "-c", str(self.config), self.command]
        env = {k: v for k, v in os.environ.items() if k != "MONGO_URI" and not k.endswith("_PROXY")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                         env=env)
        end = time.monotonic() + timeout
        pending = list(ready_urls)
        while pending and time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"secondnum exited with {self.proc.returncode}:\n{self.tail()}")
            status, _ = http_json("GET", pending[0])
            if status == 200:
                pending.pop(0)
            else:
                time.sleep(0.2)
        if pending:
            raise RuntimeError(f"not ready: {pending}\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def http_json(method: str, url: str, body: Any = None, token: str | None = TOKEN,
              timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw and raw[:1] in b"[{" else raw.decode(errors="replace")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, raw.decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None


def provision_account(api_port: int, did: str = DID, mobile: str = MOBILE, ring_timeout: int = 20,
                      **fields: Any) -> None:
    body: dict[str, Any] = {
        "did": did,
        "answering_mode": "forward_then_voicemail",
        "follow_me": {"targets": [{"uri": f"tel:+{mobile}", "ring_timeout": ring_timeout}]},
        "aliases": [{"identity": f"{mobile}@pstn", "allow_registration": False}],
    }
    body.update(fields)
    status, answer = http_json("POST", f"http://127.0.0.1:{api_port}/api/v1/accounts", body)
    if status != 201:
        raise RuntimeError(f"provisioning {did}: {status} {answer}")


def separate_ocs(workdir: Path, amount: str = "1000.00") -> tuple[MongoProcess, SecondnumProcess, int, int]:
    """``secondnum ocs`` on its own SecantusDB, as an operator's OCS is its own system (killing or loading
    the AS's MongoDB must not affect charging). Tariff 0.10/min per second, ``amount`` on the seed's DID.
    Returns (its MongoDB, the process, its Diameter port, its HTTP port)."""
    wd = workdir / "ocs"
    wd.mkdir(parents=True, exist_ok=True)
    mongo = MongoProcess(wd / "mongo")
    mongo.start()
    diameter, http = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    (wd / "ocs.toml").write_text(f'[mongo]\nuri = "{mongo.uri}"\ndatabase = "ocs"\n'
                                 f"[ocs]\nlisten_port = {diameter}\nhttp_port = {http}\n")
    proc = SecondnumProcess(wd, wd / "ocs.toml", command="ocs", name="ocs")
    proc.start([f"http://127.0.0.1:{http}/health/ready"])
    for method, path, body in (("PUT", "/api/v1/tariffs/default", {"price_per_minute": "0.10",
                                                                     "increment_seconds": 1}),
                               ("POST", f"/api/v1/accounts/{DID}/topup", {"amount": amount})):
        status, answer = http_json(method, f"http://127.0.0.1:{http}{path}", body)
        if status != 200:
            raise RuntimeError(f"OCS set-up {path}: {status} {answer}")
    return mongo, proc, diameter, http


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_no_traceback(proc: SecondnumProcess) -> None:
    log = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 2000:][:6000]


@contextlib.contextmanager
def serving(workdir: Path, trusted: str, as_extra: dict[str, Any] | None = None
            ) -> Iterator[tuple[Ports, SecondnumProcess]]:
    """``secondnum up`` on its own SecantusDB with ``trusted`` as the S-CSCF and media's trusted source; on
    exit it must still be alive with no traceback in its log, and it is stopped with SIGTERM."""
    mongo = MongoProcess(workdir / "mongo")
    mongo.start()
    ports = Ports()
    extra: dict[str, Any] = {"media": {"trusted_sources": [trusted]}}
    if as_extra:
        extra["as"] = as_extra
    write_config(workdir / "cfg.toml", ports, mongo.uri, trusted=[trusted], extra=extra)
    proc = SecondnumProcess(workdir, workdir / "cfg.toml")
    try:
        proc.start([f"http://127.0.0.1:{ports.as_http}/health/ready",
                    f"http://127.0.0.1:{ports.api}/health/ready"])
        yield ports, proc
        assert proc.alive(), proc.tail()
        assert_no_traceback(proc)
    finally:
        rc = proc.stop()
        mongo.stop()
        print(f"\nsecondnum exit code after SIGTERM: {rc}")
