"""A tiny raw SIP-over-UDP client for reliability tests: build requests, send from a chosen source address,
collect responses by branch. Deliberately independent of ``secondnum.sip`` (it plays the outside world)."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def invite(target_port: int, did: str, caller: str, src: tuple[str, int], branch: str | None = None,
           served: bool = True) -> tuple[bytes, str]:
    """An ISC-style initial INVITE (Route to the AS, P-Served-User, PAI) as the S-CSCF would send it."""
    branch = branch or f"z9hG4bK-{uuid.uuid4().hex[:16]}"
    call_id = uuid.uuid4().hex
    lines = [
        f"INVITE tel:+{did} SIP/2.0",
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"Route: <sip:127.0.0.1:{target_port};lr>, <sip:{src[0]}:{src[1]};lr;odi=x1>",
        f"From: <tel:+{caller}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <tel:+{did}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:{caller}@{src[0]}:{src[1]}>",
        f"P-Asserted-Identity: <tel:+{caller}>",
    ]
    if served:
        lines.append(f"P-Served-User: <tel:+{did}>;sescase=term;regstate=unreg")
    lines += ["Content-Type: application/sdp", f"Content-Length: {len(SDP)}", "", SDP]
    return "\r\n".join(lines).encode(), branch


def options(src: tuple[str, int], branch: str | None = None) -> tuple[bytes, str]:
    branch = branch or f"z9hG4bK-{uuid.uuid4().hex[:16]}"
    msg = (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src[0]}:{src[1]};branch={branch};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:probe@{src[0]}>;tag=p1\r\nTo: <sip:127.0.0.1>\r\n"
           f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    return msg.encode(), branch


_BRANCH = re.compile(rb"branch=([^;\r\n,]+)")


@dataclass
class Reply:
    status: int
    data: bytes

    def header(self, name: str) -> str | None:
        m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":\s*(.*?)\r$", self.data)
        return m.group(1).decode(errors="replace") if m else None

    def shape(self) -> tuple[int, str, tuple[str, ...]]:
        """Status, reason and header names: what an enumerating scanner can compare."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
        reason = head[0].split(" ", 2)[2] if head[0].count(" ") >= 2 else ""
        names = tuple(sorted(line.split(":", 1)[0].lower() for line in head[1:] if ":" in line))
        return self.status, reason, names


class UdpPeer:
    """A UDP socket bound to ``host`` (any 127.0.0.0/8 address works on Linux) that collects responses."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind((host, 0))
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.finals: dict[str, Reply] = {}
        self.provisional: Counter[int] = Counter()

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def ack_non2xx(self, reply: Reply, port: int) -> None:
        """ACK a non-2xx final response (RFC 3261 §17.1.1.3) so the server's Timer G stops."""
        head = reply.data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
        keep = {h.split(":", 1)[0].lower(): h for h in head[1:] if ":" in h}
        via = keep.get("via", "")
        m = re.search(r"tel:\+\d+", keep.get("to", ""))
        uri = m.group(0) if m else "sip:127.0.0.1"
        cseq = keep.get("cseq", "CSeq: 1 INVITE").split(":", 1)[1].strip().split()[0]
        lines = [f"ACK {uri} SIP/2.0", via.split(";received")[0].replace(";rport=", ";rport_="),
                 "Max-Forwards: 70", keep.get("from", ""), keep.get("to", ""), keep.get("call-id", ""),
                 f"CSeq: {cseq} ACK", "Content-Length: 0", "", ""]
        self.send("\r\n".join(lines).encode(), port)

    def collect(self, seconds: float, until: set[str] | None = None) -> None:
        """Read responses for up to ``seconds`` (or until every branch in ``until`` has a final)."""
        end = time.monotonic() + seconds
        self.sock.settimeout(0.05)
        while time.monotonic() < end:
            if until is not None and until <= self.finals.keys():
                return
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, BlockingIOError):
                continue
            if not data.startswith(b"SIP/2.0 "):
                continue
            status = int(data[8:11])
            m = _BRANCH.search(data)
            if m is None:
                continue
            branch = m.group(1).decode()
            if status < 200:
                self.provisional[status] += 1
            elif branch not in self.finals:
                self.finals[branch] = Reply(status, data)

    def close(self) -> None:
        self.sock.close()
