"""Random identifiers (SIP tags, branches, Call-IDs, ICIDs) from a buffered pool of kernel randomness.

RFC 3261 §19.3 wants tags and Call-IDs cryptographically random, so they come from ``os.urandom`` — but one
``getrandom`` system call per identifier (six or more per call through the AS) was a measurable share of the
call path. The pool reads 4 KiB at a time and hands out slices: the same source, one system call per ~400
identifiers. Each byte is handed out once; the pool is emptied in a forked child so parent and child never
share bytes.
"""

from __future__ import annotations

import os
import threading

_POOL_SIZE = 4096

_lock = threading.Lock()
_pool = b""
_pos = 0


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the kernel's CSPRNG (``os.urandom``), each byte used once."""
    global _pool, _pos
    if n > _POOL_SIZE // 4:
        return os.urandom(n)
    with _lock:
        end = _pos + n
        if end > len(_pool):
            _pool, _pos, end = os.urandom(_POOL_SIZE), 0, n
        chunk = _pool[_pos:end]
        _pos = end
        return chunk


def random_hex(n: int) -> str:
    """``2n`` lower-case hex digits of :func:`random_bytes` (the ``secrets.token_hex`` format)."""
    return random_bytes(n).hex()


def _reset_after_fork() -> None:
    global _pool, _pos
    _pool, _pos = b"", 0


os.register_at_fork(after_in_child=_reset_after_fork)
