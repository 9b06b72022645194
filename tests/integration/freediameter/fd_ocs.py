"""freeDiameterd as a real, independent Diameter credit-control server (OCS) for interop tests.

`build_extension()` compiles `fd_test_ocs.c` against libfreediameter-dev (cached by a hash of the source
and the freeDiameter headers), `FreeDiameterOcs` writes a self-signed certificate whose CN is the
Identity (freeDiameter needs TLS_Cred/TLS_CA even with SecPort = 0), the daemon configuration from the
`*.in` templates next to this file, starts `freeDiameterd -c CONF` on a free port and reads back what
the extension logged (one line per CCR, base-protocol message and connection event; see fd_test_ocs.c).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fd_test_ocs.c"
HEADERS = Path("/usr/include/freeDiameter")
EXTENSION_DIR = Path("/usr/lib/freeDiameter")
REQUIRED_EXTENSIONS = ("dict_nasreq.fdx", "dict_dcca.fdx", "dict_dcca_3gpp.fdx", "acl_wl.fdx")

Event = dict[str, str]
OcsFactory = Callable[..., "FreeDiameterOcs"]  # fixture fd_ocs_factory(**OcsOptions fields)


class FreeDiameterError(RuntimeError):
    """The daemon or the extension build failed; the message carries the tool's own output."""


def missing_prerequisites() -> list[str]:
    """What is not installed (binary, headers, Debian extensions, compiler, openssl)."""
    import shutil

    missing = [tool for tool in ("freeDiameterd", "gcc", "openssl") if shutil.which(tool) is None]
    if not (HEADERS / "extension.h").is_file():
        missing.append("libfreediameter-dev")
    absent = [x for x in REQUIRED_EXTENSIONS if not (EXTENSION_DIR / x).is_file()]
    missing += [f"freediameter-extensions ({x})" for x in absent]
    return missing


def build_extension(cache_root: Path | None = None) -> Path:
    """Compile fd_test_ocs.c into a loadable `.fdx`, reusing an earlier build of the same inputs."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    for header in sorted(HEADERS.glob("*.h")):
        digest.update(header.read_bytes())
    root = cache_root or Path(tempfile.gettempdir()) / f"secondnum-freediameter-cache-{os.getuid()}"
    target = root / digest.hexdigest()[:16] / "fd_test_ocs.fdx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    cmd = [
        "gcc",
        "-shared",
        "-fPIC",
        "-O2",
        "-Wall",
        "-Wextra",
        "-o",
        str(partial),
        str(SOURCE),
        "-lfdcore",
        "-lfdproto",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise FreeDiameterError(f"building the test extension failed: {' '.join(cmd)}\n{done.stderr}")
    os.replace(partial, target)  # atomic: parallel sessions never load a half-written file
    return target


def make_certificate(workdir: Path, common_name: str) -> tuple[Path, Path]:
    """Self-signed EC certificate with CN = the Diameter Identity (what freeDiameter checks)."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    cmd = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={common_name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise FreeDiameterError(f"openssl failed: {done.stderr}")
    return cert, key


def free_port() -> int:
    """A TCP port free on every address (freeDiameter binds 0.0.0.0 whatever ListenOn says)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def is_listening(port: int) -> bool:
    """True when a socket listens on `port`; read from /proc so no probe connection reaches the daemon."""
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and (fields[1] + " ").endswith(needle) and fields[3] == "0A":
                return True
    return False


@dataclass(frozen=True)
class OcsOptions:
    """What the test OCS grants and refuses, and the daemon's own watchdog timer."""

    identity: str = "ocs.fd.secondnum.test"
    realm: str = "fd.secondnum.test"
    client_pattern: str = "*.fd.secondnum.test"  # acl_wl: who may connect
    grant_seconds: int = 60
    refuse_number: str = "42000000402"
    refuse_code: int = 4012
    abort_number: str = "42000000274"  # gets an ASR after each CCR-Update
    reauth_number: str = "42000000258"  # gets a RAR after its first CCR-Update
    garble_number: str = "42000000500"  # its CCAs carry an unknown AVP with the M bit
    tw_seconds: int = 30  # freeDiameter's own Tw (RFC 3539 §3.4.1); it enforces >= 6
    # Client mode (freeDiameter as CTF): ConnectPeer to this Diameter server, then CCR-I/U/T for
    # client_e164 and one CCR-I each for client_unknown and client_low (see fd_test_ocs.c).
    connect_to: tuple[str, str, int] | None = None  # (Diameter identity, realm, port on 127.0.0.1)
    client_e164: str = ""
    client_unknown: str = ""
    client_low: str = ""
    client_called: str = "tel:+420273333444"


class FreeDiameterOcs:
    """One freeDiameterd process with the fd_test_ocs extension, in its own work directory."""

    def __init__(self, workdir: Path, extension: Path, options: OcsOptions | None = None) -> None:
        self.workdir = workdir
        self.extension = extension
        self.options = options or OcsOptions()
        self.port = 0
        self.event_log = workdir / "events.log"
        self.daemon_log = workdir / "freeDiameterd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.errors_expected = False  # a test provoking errors on purpose sets this

    @property
    def identity(self) -> str:
        return self.options.identity

    @property
    def realm(self) -> str:
        return self.options.realm

    def _write_config(self) -> Path:
        cert, key = make_certificate(self.workdir, self.options.identity)
        values = {
            "identity": self.options.identity,
            "realm": self.options.realm,
            "port": str(self.port),
            "tw": str(self.options.tw_seconds),
            "cert": str(cert),
            "key": str(key),
            "extdir": str(EXTENSION_DIR),
            "acl": str(self.workdir / "acl_wl.conf"),
            "ocs_ext": str(self.extension),
            "ocs_conf": str(self.workdir / "fd_test_ocs.conf"),
            "client": self.options.client_pattern,
            "log": str(self.event_log),
            "grant": str(self.options.grant_seconds),
            "refuse": self.options.refuse_number,
            "refuse_code": str(self.options.refuse_code),
            "abort": self.options.abort_number,
            "reauth": self.options.reauth_number,
            "garble": self.options.garble_number,
            "connect_peer": self._connect_peer(),
            "client_peer": self.options.connect_to[0] if self.options.connect_to else "",
            "client_realm": self.options.connect_to[1] if self.options.connect_to else "",
            "client_e164": self.options.client_e164,
            "client_unknown": self.options.client_unknown,
            "client_low": self.options.client_low,
            "client_called": self.options.client_called,
        }
        for name in ("acl_wl.conf", "fd_test_ocs.conf", "freeDiameter.conf"):
            text = Template((HERE / f"{name}.in").read_text()).substitute(values)
            (self.workdir / name).write_text(text)
        return self.workdir / "freeDiameter.conf"

    def _connect_peer(self) -> str:
        if self.options.connect_to is None:
            return ""
        host, _realm, port = self.options.connect_to
        return f'ConnectPeer = "{host}" {{ ConnectTo = "127.0.0.1"; Port = {port}; No_TLS; }};'

    def start(self, timeout: float = 30.0, port: int | None = None) -> None:
        """Start the daemon and return once it listens; retries if a free port was taken meanwhile.

        `port`: listen there (a restart on the port the clients know); no retry then.
        """
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            self.port = port or free_port()
            conf = self._write_config()
            self.event_log.unlink(missing_ok=True)
            with self.daemon_log.open("ab") as out:
                self._proc = subprocess.Popen(
                    ["freeDiameterd", "-c", str(conf)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.workdir,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                if is_listening(self.port) and self.events("ready"):
                    return
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in self.log_text() or attempt == attempts - 1:
                raise FreeDiameterError(f"freeDiameterd did not start:\n{self.log_text()[-4000:]}")
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the daemon sends DPR to open peers), SIGKILL after `timeout`; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # in case a test paused it
            proc.terminate()
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(10)
        return proc.returncode

    def pause(self) -> None:
        """SIGSTOP: the daemon keeps its sockets but answers nothing (a hung peer, RFC 3539 §3.4)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.daemon_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def error_lines(self) -> list[str]:
        """ERROR/WARN lines of the daemon's own log (a clean interop run has none)."""
        return [ln for ln in self.log_text().splitlines() if " ERROR " in ln or " WARN " in ln]

    def events(self, kind: str | None = None) -> list[Event]:
        """Lines of the extension's event log as dicts, optionally only `event=kind`."""
        try:
            text = self.event_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # a last line without its newline is still being written
        out = []
        for line in lines:
            fields = dict(f.split("=", 1) for f in line.split("\t") if "=" in f)
            if kind is None or fields.get("event") == kind:
                out.append(fields)
        return out

    def ccrs(self) -> list[Event]:
        return self.events("ccr")

    async def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 20.0) -> list[Event]:
        """Poll the event log until `predicate(events)` holds; returns the events (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met within {timeout} s; events:\n" + "\n".join(str(e) for e in events)
                )
            await asyncio.sleep(0.05)
