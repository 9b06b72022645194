"""RTP flooder for the media flood test: ``python rtp_flood_peer.py SOURCE SECONDS RATE PORT [PORT ...]``.

Stops after ``SECONDS`` or at SIGTERM, whichever comes first.

Sends from ``SOURCE`` (a loopback address) to each ``127.0.0.1:PORT`` in turn, alternating random junk and
valid-looking PCMU RTP (its own SSRC, sequence and timestamp), at up to ``RATE`` datagrams per second in
total for ``SECONDS``; prints ``{"sent": N, "seconds": S}``. A separate process, so that the flood competes
with the media server for the CPU as a real attacker's traffic would, not inside its event loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time


def main() -> None:
    source, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    ports = [int(p) for p in sys.argv[4:]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    junk = [os.urandom(n) for n in (1, 12, 40, 172, 400)]
    batch = max(1, int(rate / 100))  # paced in 10 ms batches
    sent = seq = 0
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    start = time.monotonic()
    while not stop and time.monotonic() - start < seconds:
        for i in range(batch):
            seq += 1
            if i % 2:
                head = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, 0xBAD)
                data = head + b"\x7f" * 160
            else:
                data = junk[seq % len(junk)]
            try:
                sock.sendto(data, ("127.0.0.1", ports[seq % len(ports)]))
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
        delay = start + (sent / rate) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3)}))


if __name__ == "__main__":
    main()
