"""Process memory: what is live, what the allocator merely keeps, and giving the kept part back.

After a burst (an overload, a drain) a long-running CPython process keeps memory it no longer uses: glibc's
``malloc`` keeps freed chunks in its heap for reuse (objects above pymalloc's 512 bytes: message buffers,
large dicts, bytes), and pymalloc frees an arena only when all of it is empty. RSS then stays at the peak
although nothing leaked, and an operator cannot tell the two apart. This module exports both sides
(Prometheus, read at scrape time):

* ``secondnum_python_allocated_blocks``: blocks held by live Python objects (``sys.getallocatedblocks``);
  back at its baseline after a burst means the burst left no objects behind.
* ``secondnum_malloc_in_use_bytes`` / ``secondnum_malloc_free_bytes``: glibc's view (``mallinfo2(3)``),
  in use (including mmapped chunks) versus free but still held by the heap.

and :func:`trim_loop` periodically calls ``malloc_trim(3)`` when the heap holds more than a threshold of
free memory, so RSS follows the load down again. ``malloc_trim(0)`` walks the heap's free lists (about a
millisecond per hundred MiB here) and only runs when there is something to return. Without glibc (musl,
macOS) the malloc figures are absent and trimming is a no-op.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import gc
import os
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from secondnum.log import get_logger

log = get_logger(__name__)

TRIMMED = Counter("secondnum_malloc_trimmed_bytes", "Free heap memory returned to the OS by malloc_trim")


class _Mallinfo2(ctypes.Structure):
    """``struct mallinfo2`` (glibc >= 2.33), all fields ``size_t``."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _load_libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def malloc_stats() -> tuple[int, int] | None:
    """(bytes in use, bytes free but held) of glibc's main heap and mmapped chunks; None without glibc."""
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return int(info.uordblks + info.hblkhd), int(info.fordblks)


def rss_bytes() -> int:
    """Resident set size of this process (``/proc/self/statm``); 0 where there is no procfs."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def trim(threshold: int = 0) -> int:
    """Return free heap memory to the OS if more than ``threshold`` bytes are free; the RSS it gave back.

    ``malloc_trim`` releases whole free pages with ``madvise`` and leaves glibc's accounting (``fordblks``)
    as it was, so what was returned is measured on RSS."""
    stats = malloc_stats()
    if stats is None or stats[1] <= threshold:
        return 0
    before = rss_bytes()
    _LIBC.malloc_trim(0)  # type: ignore[union-attr]
    returned = max(0, before - rss_bytes())
    TRIMMED.inc(returned)
    return returned


class MemoryCollector(Collector):
    """Scrape-time gauges of live Python blocks and of glibc's in-use/free heap."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("secondnum_python_allocated_blocks",
                                "Memory blocks held by live Python objects (sys.getallocatedblocks)",
                                value=sys.getallocatedblocks())
        stats = malloc_stats()
        if stats is not None:
            yield GaugeMetricFamily("secondnum_malloc_in_use_bytes", "glibc malloc: bytes in use (mallinfo2)",
                                    value=stats[0])
            yield GaugeMetricFamily("secondnum_malloc_free_bytes",
                                    "glibc malloc: bytes free but still held by the heap (mallinfo2)",
                                    value=stats[1])


_registered = False


def register() -> None:
    """Add :class:`MemoryCollector` to the default registry (every component's /metrics). Idempotent."""
    global _registered
    if not _registered:
        REGISTRY.register(MemoryCollector())
        _registered = True


_last_snapshot: tracemalloc.Snapshot | None = None


def object_census(top: int = 30) -> dict[str, Any]:
    """Counts of the objects the cyclic collector tracks, by type, largest first: what grew, when live blocks
    grew. Walks every tracked object (~0.1 s per million): a diagnostic, not for a hot path.

    Strings, bytes and numbers are not tracked by the collector; for them, start the process with
    ``PYTHONTRACEMALLOC=1`` (tracemalloc, several times slower): then ``allocations`` lists the source lines
    holding the most memory and ``growth`` what each line gained since the previous census."""
    global _last_snapshot
    objects = gc.get_objects()
    counts: collections.Counter[str] = collections.Counter(
        f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    total = len(objects)
    del objects
    out: dict[str, Any] = {
        "tracked_objects": total, "python_allocated_blocks": sys.getallocatedblocks(),
        "types": [{"type": name, "count": n} for name, n in counts.most_common(max(1, top))]}
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        out["allocations"] = [{"where": str(st.traceback), "bytes": st.size, "blocks": st.count}
                              for st in snap.statistics("lineno")[:top]]
        if _last_snapshot is not None:
            out["growth"] = [{"where": str(st.traceback), "bytes": st.size_diff, "blocks": st.count_diff}
                             for st in snap.compare_to(_last_snapshot, "lineno")[:top] if st.size_diff > 0]
        _last_snapshot = snap
    return out


async def trim_loop(interval: float, threshold: int) -> None:
    """Every ``interval`` seconds, :func:`trim` when more than ``threshold`` bytes are free in the heap."""
    while True:
        await asyncio.sleep(interval)
        try:
            returned = trim(threshold)
        except Exception:  # ctypes/ABI surprises must not stop the service
            log.exception("malloc_trim_failed")
            return
        if returned:
            log.debug("malloc_trimmed", returned_bytes=returned)
