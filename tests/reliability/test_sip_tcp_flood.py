"""SIP-over-TCP abuse against the running service (``secondnum up`` as a process, real sockets, loopback).

The S-CSCF is trusted at 127.0.0.5 and places real calls with SIPp over UDP through the AS while other
loopback addresses attack the AS's TCP listener:

* 127.0.0.2 opens far more connections than ``[as] tcp_max_per_source`` allows: the surplus is closed at
  accept (``secondnum_sip_tcp_refused_total{reason="per_source"}``);
* 127.0.0.10-.19 each open their per-source share: beyond ``tcp_max_connections`` (all untrusted sources
  together) connections are refused with ``reason="total"``, while the trusted S-CSCF still gets TCP
  connections (its own budget) and answers over them;
* 127.0.0.3 trickles a never-ending header section on several connections (slowloris): each is closed after
  ``tcp_header_timeout`` (``secondnum_sip_tcp_read_timeouts_total``);
* 127.0.0.4 sends a message above the maximum size: the connection is closed with a log line.

The SIPp calls from the S-CSCF all complete, the process stays up, no traceback is logged. The media
server's SIP port applies its own ``[media]`` caps (default 8 per untrusted source).
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import time
import typing
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import rel_sipp
import rel_stack as rs

pytestmark = pytest.mark.slow

TRUSTED = rel_sipp.TRUSTED
PER_SOURCE = 4
TOTAL = 30
HEADER_TIMEOUT = 3.0
FLOOD = int(os.environ.get("SECONDNUM_TCP_FLOOD_CONNECTIONS", "50"))
"""Connections the single flooding source opens (raise it for a measurement run)."""


@dataclass
class Stack:
    ports: rs.Ports
    proc: rs.SecondnumProcess
    workdir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    wd = tmp_path_factory.mktemp("tcpflood")
    limits = {"tcp_max_per_source": PER_SOURCE, "tcp_max_connections": TOTAL,
              "tcp_header_timeout": HEADER_TIMEOUT}
    with rs.serving(wd, TRUSTED, limits) as (ports, proc):
        yield Stack(ports, proc, wd)


def _connect(source: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def _closed_by_server(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _refused(socks: list[socket.socket], expected: int, timeout: float = 10.0) -> list[socket.socket]:
    """The sockets the server closed: waits until ``expected`` are (or ``timeout``), then 0.5 s more so that
    a surplus would show too; robust to a slow accept loop on a busy machine."""
    closed: list[socket.socket] = []
    end = time.monotonic() + timeout
    extra_end: float | None = None
    with selectors.DefaultSelector() as sel:  # epoll: select() cannot take descriptors above 1023
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if extra_end is None and len(closed) >= expected:
                extra_end = now + 0.5
            stop = extra_end if extra_end is not None else end
            if now >= stop:
                break
            for key, _ in sel.select(min(0.1, stop - now)):
                sock = typing.cast(socket.socket, key.fileobj)
                sel.unregister(sock)
                if _closed_by_server(sock, 0.01):
                    closed.append(sock)
    return closed


def _options(source: str) -> bytes:
    branch = f"z9hG4bK-{uuid.uuid4().hex}"
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {source}:5099;branch={branch}"
            f"\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{source}>;tag=p1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r'^(secondnum_sip_tcp_\w+?)_total(?:\{reason="(\w+)"\})? ([\d.e+]+)$', text, re.M):
        out[m[1] + (f".{m[2]}" if m[2] else "")] = float(m[3])
    return out


def _trusted_options_over_tcp(port: int) -> bool:
    s = _connect(TRUSTED, port)
    try:
        s.sendall(_options(TRUSTED))
        s.settimeout(10)
        data = b""
        end = time.monotonic() + 10
        while b"\r\n\r\n" not in data and time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"SIP/2.0 200")
    finally:
        s.close()


def test_tcp_abuse_while_scscf_calls_complete(stack: Stack) -> None:
    as_port = stack.ports.as_sip
    before = _metrics(stack.ports.as_http)
    far = rel_sipp.far_end(stack.workdir, stack.ports.scscf).start()
    held: list[socket.socket] = []
    try:
        time.sleep(0.3)
        caller = rel_sipp.caller(stack.workdir, as_port, stack.ports.scscf, did=rs.DID,
                                 caller_number=rs.PSTN_CALLER, rate=1, calls=6, min_ms=2000,
                                 max_ms=3000).start()
        t0 = time.monotonic()
        # 1. One source opens FLOOD connections: PER_SOURCE stay, the rest are closed at accept.
        flood = []
        for _ in range(FLOOD):
            flood.append(_connect("127.0.0.2", as_port))
            held.append(flood[-1])
        t_open = time.monotonic() - t0
        refused = _refused(flood, FLOOD - PER_SOURCE)
        kept = [s for s in flood if s not in refused]
        print(f"\n127.0.0.2: {FLOOD} connections opened in {t_open:.2f} s ({FLOOD / t_open:.0f}/s) -> "
              f"{len(kept)} kept, {len(refused)} refused")
        assert len(kept) == PER_SOURCE
        # 2. Ten more sources, each within its per-source share: the untrusted total is capped.
        many = [_connect(f"127.0.0.{10 + i}", as_port) for i in range(10) for _ in range(PER_SOURCE)]
        held += many
        total_refused = len(_refused(many, len(many) + PER_SOURCE - TOTAL))
        print(f"127.0.0.10-19: {len(many)} connections -> {total_refused} refused (total cap {TOTAL})")
        assert total_refused == len(many) + PER_SOURCE - TOTAL
        # The trusted S-CSCF is not counted in that total: it still connects and is answered over TCP.
        assert _trusted_options_over_tcp(as_port), "the trusted S-CSCF lost TCP service during the flood"
        # Hanging up gives the budget back (the slowloris source below would meet the total cap otherwise).
        for s in flood + many:
            s.close()
        time.sleep(1.0)
        # 3. Slowloris: PER_SOURCE connections from a fresh source trickle a header that never ends.
        slow = [_connect("127.0.0.3", as_port) for _ in range(PER_SOURCE)]
        held += slow
        head = _options("127.0.0.3")[:-4]
        t_slow = time.monotonic()
        open_ = list(slow)
        i = 0
        while open_ and time.monotonic() - t_slow < HEADER_TIMEOUT * 4 + 10:
            for s in list(open_):
                try:
                    s.sendall(head[i % len(head):i % len(head) + 1])
                except OSError:
                    open_.remove(s)
                    continue
                if _closed_by_server(s, 0.05):
                    open_.remove(s)
            i += 1
            time.sleep(0.2)
        slow_secs = time.monotonic() - t_slow
        print(f"127.0.0.3: {len(slow)} slowloris connections closed after {slow_secs:.1f} s "
              f"(header timeout {HEADER_TIMEOUT} s), {len(open_)} still open")
        assert not open_
        assert slow_secs >= HEADER_TIMEOUT - 0.5
        # 4. Oversize: 80 kB of header section (max_message_size 64 KiB by default).
        big = _connect("127.0.0.4", as_port)
        held.append(big)
        with pytest.raises(OSError):  # the server closes mid-send (reset), or the send completes ...
            big.sendall(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 80_000)
            if not _closed_by_server(big, 10):  # ... and the close is seen here
                pytest.fail("oversize message: connection left open")
            raise ConnectionResetError("closed by server")
        rc = caller.wait(120)
    finally:
        for s in held:
            s.close()
        far.stop()
    ok, failed = caller.counter("SuccessfulCall(C)"), caller.counter("FailedCall(C)")
    print(f"S-CSCF calls during the attacks: {ok} ok, {failed} failed (SIPp exit {rc})")
    assert (ok, failed, rc) == (6, 0, 0), caller.errors()
    after = _metrics(stack.ports.as_http)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    print(f"metrics delta: {delta}")
    assert delta["secondnum_sip_tcp_refused.per_source"] >= FLOOD - PER_SOURCE
    assert delta["secondnum_sip_tcp_refused.total"] == total_refused
    assert delta["secondnum_sip_tcp_read_timeouts"] == len(slow)
    log = stack.proc.log_path.read_text(errors="replace")
    for line in ("sip_tcp_connection_refused", "sip_tcp_read_timeout", "sip_stream_oversize"):
        assert line in log, f"no {line} log line"
    assert stack.proc.alive()


def test_media_tcp_caps(stack: Stack) -> None:
    """The media server's SIP port has the same caps ([media] defaults: 8 per untrusted source)."""
    port = stack.ports.media_sip
    conns = [_connect("127.0.0.6", port) for _ in range(20)]
    try:
        refused = _refused(conns, 20 - 8)
        print(f"\nmedia, 127.0.0.6: 20 connections -> {20 - len(refused)} kept, {len(refused)} refused")
        assert len(refused) == 12
        assert _trusted_options_over_tcp(port), "the trusted AS address lost TCP service to media"
    finally:
        for s in conns:
            s.close()
