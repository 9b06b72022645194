"""Per-call CPU cost of the AS's session timers (RFC 4028) on the common path: a call whose parties never
mention timers. Run: ``.venv/bin/python -m benchmarks.as_session_timer`` (a few seconds, one core).

What a plain forwarded call now pays, each in µs per call (best of 5 timeit runs):

* ``gate``: the check ``answer_caller`` makes before negotiating (the whole cost when ``session_expires=0``);
* ``request_headers``: the Session-Expires/Min-SE of the forwarded INVITE (``[as] session_expires=1800``);
* ``negotiate``: who refreshes each leg, from the caller's INVITE, our INVITE and the far 2xx;
* ``arm+cancel``: ``CallTimers`` with both legs (two ``SessionTimer``, one ``loop.call_at``) and its cancel
  at teardown;
* ``encode +2 headers``: serialising the forwarded INVITE with the two extra header fields, minus without.

Anchor, same run: parsing the caller's INVITE once (``parse_message``), which every call pays anyway.
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Callable
from typing import Any

from appserver.session_timer import CallTimers
from appserver.side import Role, Side
from secondnum.sip import Dialog, SipEndpoint, SipRequest, SipResponse, SipURI, parse_message
from secondnum.sip.session_timer import LegTimer, Mode, TimerConfig, negotiate, request_headers

INVITE = (
    b"INVITE tel:+42027777100 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1;rport\r\n"
    b"Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5080;lr;odi=odi-1>\r\nMax-Forwards: 68\r\n"
    b"From: <tel:+42075553333>;tag=1\r\nTo: <tel:+42027777100>\r\nCall-ID: abc@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\nContact: <sip:42075553333@127.0.0.1:5080>\r\n"
    b"P-Asserted-Identity: <tel:+42075553333>\r\nP-Served-User: <tel:+42027777100>;sescase=term\r\n"
    b"P-Charging-Vector: icid-value=icid-1;orig-ioi=ims.example.net\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-2\r\n"
    b"From: <tel:+42027777100>;tag=2\r\nTo: <tel:+42073723123>;tag=3\r\nCall-ID: def@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\nContact: <sip:127.0.0.1:5080>\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def best(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


async def main() -> None:
    config = TimerConfig(1800, 90)
    caller = parse_message(INVITE)
    far = parse_message(OK)
    assert isinstance(caller, SipRequest) and isinstance(far, SipResponse)
    far_request = parse_message(INVITE)
    assert isinstance(far_request, SipRequest)
    for name, value in request_headers(caller, config):
        far_request.add_header(name, value)
    plain = parse_message(INVITE)
    assert isinstance(plain, SipRequest)

    def gate() -> bool:
        return bool(0 or "session-expires" in caller.headers or "session-expires" in far.headers)

    def nego() -> object:
        return negotiate(caller, far_request, far, config)

    ep = SipEndpoint(lambda inc: None)  # type: ignore[arg-type, return-value]
    dialog = Dialog.from_uac(far_request, far, SipURI("sip", None, "127.0.0.1", 5060))
    a = Side(ep, dialog, "udp", Role.CALLER)
    b = Side(ep, dialog, "udp", Role.FORWARD)
    leg = LegTimer(Mode.LOCAL, 1800)

    def arm() -> None:
        timers = CallTimers(None)  # type: ignore[arg-type]
        timers.add(a, leg, peer_allows_update=True)
        timers.add(b, leg, peer_allows_update=True)
        timers.start()
        timers.cancel()

    n = 20000
    anchor = best(lambda: parse_message(INVITE), n)
    rows = [
        ("gate (session_expires=0: all it costs)", best(gate, n * 10)),
        ("request_headers (forwarded INVITE)", best(lambda: request_headers(caller, config), n)),
        ("negotiate (answer)", best(nego, n)),
        ("arm+cancel (CallTimers, 2 legs)", best(arm, n)),
        ("encode +2 headers", best(lambda: bytes(far_request), n) - best(lambda: bytes(plain), n)),
    ]
    print(f"anchor: parse_message(caller INVITE) {anchor:8.2f} µs")
    total = 0.0
    for label, us in rows:
        total += us if not label.startswith("gate") else 0.0
        print(f"{label:42s} {us:8.2f} µs  ({us / anchor * 100:5.1f} % of the anchor)")
    print(f"{'per call with session_expires=1800':42s} {total:8.2f} µs  ({total / anchor * 100:5.1f} %)")


if __name__ == "__main__":
    asyncio.run(main())
