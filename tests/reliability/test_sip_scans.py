"""Scanner traffic against the running service (``secondnum up`` as a process, real sockets, 127.0.0.1 only).

The S-CSCF is trusted at 127.0.0.5 (media trusts only 127.0.0.5 too), so everything sent from 127.0.0.1 is
an untrusted source, as a scanner on the Internet side of a misconfigured firewall would be.

* sipvicious ``svmap`` / ``svwar`` / ``svcrack`` run against the AS and media SIP ports: no crash, nothing
  enumerated or cracked, both processes still answer afterwards.
* No user enumeration: untrusted INVITEs for the provisioned DID, its alias and unknown numbers get the same
  answer (status, reason, header set).
* Noisy sources: a flood from an untrusted source must not starve the trusted S-CSCF; the AS answers an
  untrusted source with one stateless 403 per request up to ``[as] untrusted_rate``/``untrusted_burst`` and
  drops the rest, and never retransmits that 403 (no reflection amplification).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import rel_sip as rsip
import rel_stack as rs

pytestmark = pytest.mark.slow

TRUSTED = "127.0.0.5"
SV = rs.VENV_BIN


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.Ports]:
    with rs.serving(tmp_path_factory.mktemp("scan"), TRUSTED) as (ports, _):
        yield ports


def _alive(port: int) -> bool:
    peer = rsip.UdpPeer(TRUSTED)
    try:
        data, branch = rsip.options(peer.addr)
        peer.send(data, port)
        peer.collect(10, {branch})
        return branch in peer.finals and peer.finals[branch].status == 200
    finally:
        peer.close()


def _sv(tool: str, *args: str, timeout: float = 120) -> str:
    """Run a sipvicious tool (callers pass -P <free port>: 5060 may belong to someone else here)."""
    try:
        proc = subprocess.run([str(SV / tool), *args], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:  # a rate-limited scanner waits for answers that never come
        partial = (exc.stdout or b"") + (exc.stderr or b"")
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else str(partial)
        return text + "\n(scanner timed out: no answers)"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["as", "media"])
def test_svmap_sees_the_service_and_it_survives(stack: rs.Ports, which: str) -> None:
    port = stack.as_sip if which == "as" else stack.media_sip
    out = _sv("sipvicious_svmap", "127.0.0.1", "-p", str(port), "-P", str(rs.free_port()))
    print(out[-600:])
    assert f"127.0.0.1:{port}" in out  # OPTIONS are answered (fingerprinting is possible; see RELIABILITY.md)
    assert _alive(port)


@pytest.mark.parametrize("method", ["INVITE", "REGISTER", "OPTIONS"])
@pytest.mark.parametrize("which", ["as", "media"])
def test_svwar_enumerates_no_extension(stack: rs.Ports, tmp_path: Path, which: str, method: str) -> None:
    port = stack.as_sip if which == "as" else stack.media_sip
    words = tmp_path / "ext.txt"
    words.write_text("\n".join([rs.DID, rs.MOBILE, "42027777101", "vm-access", "vm-deposit", "100", "1000",
                                "admin", "+42027777100"]) + "\n")
    out = _sv("sipvicious_svwar", "--force", "-m", method, "-d", str(words), "-P", str(rs.free_port()),
              "127.0.0.1", "-p", str(port))
    print(out[-1200:])
    assert "found nothing" in out, out[-2000:]
    assert "| Extension" not in out, out[-2000:]  # svwar's result table
    assert _alive(port)


def _refill() -> None:
    """Every test here scans from 127.0.0.1: give that source's rate bucket (20/s, burst 40) time to refill,
    so a test sees answers rather than the previous test's throttling."""
    time.sleep(3.0)


def test_svcrack_cracks_nothing(stack: rs.Ports) -> None:
    _refill()
    # Within the source's burst: every guess gets its answer, so "found nothing" means nothing was guessed.
    out = _sv("sipvicious_svcrack", "-u", rs.DID, "-r", "1000-1030", "-P", str(rs.free_port()), "127.0.0.1",
              "-p", str(stack.as_sip))
    print(out[-800:])
    assert "found nothing" in out or "timed out" in out, out[-2000:]
    assert "| Password" not in out, out[-2000:]  # svcrack's result table
    assert _alive(stack.as_sip)


@pytest.mark.parametrize("which", ["as", "media"])
def test_untrusted_answer_does_not_reveal_accounts(stack: rs.Ports, which: str) -> None:
    port = stack.as_sip if which == "as" else stack.media_sip
    _refill()
    peer = rsip.UdpPeer("127.0.0.1")
    try:
        shapes: dict[str, tuple[int, str, tuple[str, ...]]] = {}
        for label, did in (("provisioned DID", rs.DID), ("alias number", rs.MOBILE),
                           ("unknown number", "42027777999"), ("not a number", "abc")):
            data, branch = rsip.invite(port, did, rs.PSTN_CALLER, peer.addr)
            if which == "media":
                data = data.replace(f"INVITE tel:+{did}".encode(),
                                    f"INVITE sip:vm-access@127.0.0.1:{port};mailbox={did}".encode(), 1)
            peer.send(data, port)
            peer.collect(10, {branch})
            assert branch in peer.finals, f"no answer for {label}"
            reply = peer.finals[branch]
            peer.ack_non2xx(reply, port)
            shapes[label] = reply.shape()
        print(shapes)
        assert len(set(shapes.values())) == 1, shapes
        assert next(iter(shapes.values()))[0] == 403
    finally:
        peer.close()


def _flood(port: int, count: int) -> tuple[Counter[int], int, float, bool]:
    """``count`` untrusted INVITEs as fast as possible while the trusted S-CSCF sends OPTIONS."""
    flood = rsip.UdpPeer("127.0.0.1")
    branches: set[str] = set()
    trusted_ok = True
    try:
        t0 = time.monotonic()
        for i in range(count):
            data, branch = rsip.invite(port, rs.DID if i % 2 else f"42027{i:06d}", rs.PSTN_CALLER, flood.addr)
            flood.send(data, port)
            branches.add(branch)
            if i % 500 == 250:
                trusted_ok = trusted_ok and _alive(port)
        elapsed = time.monotonic() - t0
        flood.collect(15, branches)
        trusted_ok = trusted_ok and _alive(port)
        statuses = Counter(r.status for r in flood.finals.values())
        return statuses, count - len(flood.finals), count / elapsed, trusted_ok
    finally:
        flood.close()


def test_untrusted_flood_does_not_starve_the_scscf(stack: rs.Ports) -> None:
    statuses, unanswered, rate, trusted_ok = _flood(stack.as_sip, 3000)
    print(f"\nuntrusted flood: 3000 INVITEs at {rate:.0f}/s -> finals {dict(statuses)}, "
          f"unanswered {unanswered}")
    assert trusted_ok, "the trusted S-CSCF's OPTIONS went unanswered during the flood"
    assert not (set(statuses) - {403, 503}), statuses


def test_noisy_untrusted_source_is_throttled(stack: rs.Ports) -> None:
    statuses, _unanswered, rate, _ = _flood(stack.as_sip, 2000)
    # [as] untrusted_rate/untrusted_burst defaults: 20/s, burst 40. Far above that: dropped or 503.
    allowed = 40 + 20 * (2000 / rate) + 20
    assert statuses[403] <= allowed, f"{statuses[403]} answered 403 to one source flooding at {rate:.0f}/s"


def test_untrusted_invite_is_not_amplified(stack: rs.Ports) -> None:
    _refill()  # these 20 must be answered, once each
    peer = rsip.UdpPeer("127.0.0.1")
    try:
        sent = 0
        for _ in range(20):
            data, _branch = rsip.invite(stack.as_sip, rs.DID, rs.PSTN_CALLER, peer.addr)
            peer.send(data, stack.as_sip)
            sent += len(data)
        got = 0
        received = 0
        peer.sock.settimeout(0.2)
        end = time.monotonic() + 5.0  # Timer G: 0.5 s, 1 s, 2 s -> three retransmissions within 5 s
        while time.monotonic() < end:
            try:
                received += len(peer.sock.recv(65535))
                got += 1
            except TimeoutError:
                pass
        print(f"\n20 untrusted INVITEs ({sent} B) -> {got} datagrams ({received} B) within 5 s, no ACK sent")
        assert 1 <= got <= 20, f"{got} datagrams for 20 requests"
    finally:
        peer.close()
