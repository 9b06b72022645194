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
import bisect
import collections
import ctypes
import ctypes.util
import gc
import os
import re
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


_SMAPS_HEAD = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")


def _anonymous_mappings() -> list[tuple[int, int, int]]:
    """(start, end, resident bytes) of this process's anonymous and heap mappings, by address
    (``/proc/self/smaps``, proc(5)); empty where there is no procfs."""
    out: list[tuple[int, int, int]] = []
    current: tuple[int, int] | None = None
    try:
        with open("/proc/self/smaps", "rb") as fh:
            for line in fh:
                head = _SMAPS_HEAD.match(line)
                if head is not None:
                    path = head.group(3).strip()
                    anonymous = not path or path == b"[heap]"
                    current = (int(head.group(1), 16), int(head.group(2), 16)) if anonymous else None
                elif current is not None and line.startswith(b"Rss:"):
                    out.append((*current, int(line.split()[1]) * 1024))
                    current = None
    except OSError:
        return []
    return sorted(out)


def _type_name(o: object) -> str:
    return f"{type(o).__module__}.{type(o).__qualname__}"


def mapping_census(top: int = 10, min_resident: int = 1 << 20) -> list[dict[str, Any]]:
    """Which live objects sit in each anonymous mapping of at least ``min_resident`` resident bytes, and
    what holds them, largest mapping first.

    pymalloc returns a 1 MiB arena to the OS only when every block in it is free, so a handful of
    long-lived objects allocated during a burst keeps whole arenas resident although live blocks are back
    at their baseline. Adjacent arenas merge into one mapping; a mapping that appeared with a burst and
    holds few objects is such a case: ``types`` names the objects that pin it and ``holders`` what refers
    to them (``child < parent < grandparent``); ``numeric_samples`` shows a few of the numbers and
    tuples of numbers in it (ports, timestamps and identifiers look different; subscriber data is never
    shown).

    Every object reachable from the modules, the running frames and the collector's lists is visited once,
    frozen ones included (``gc.freeze`` hides those from ``gc.get_objects``; secondnum/gctune.py freezes the
    start-up heap). Seconds per million objects: a diagnostic, not for a hot path."""
    maps = _anonymous_mappings()
    if not maps:
        return []
    starts = [m[0] for m in maps]
    counts: list[collections.Counter[str]] = [collections.Counter() for _ in maps]
    holders: list[collections.Counter[str]] = [collections.Counter() for _ in maps]
    sizes = [0] * len(maps)
    samples: list[list[str]] = [[] for _ in maps]
    seen: set[int] = set()
    queue: collections.deque[tuple[object, str]] = collections.deque()
    here = sys._getframe()
    frames = [f.f_back if f is here else f for f in sys._current_frames().values()]
    # The census's own working set is not what it measures.
    seen.update(map(id, (here, seen, queue, counts, holders, sizes, samples, maps, starts, frames, *counts,
                         *holders, *samples)))
    tracked: list[object] = []
    del here  # a frame referring to itself is a cycle that would keep all of this until the next collection
    # Breadth first from the modules and the running frames, so each object is credited to a short path;
    # then from what the collector tracks and nothing tracked refers to (held by C code: an event loop's
    # handles, a transport's protocol), which reaches whatever those two did not.
    # Last, in case of cycles only C code holds, anything tracked not yet reached.
    for phase in range(3):
        if phase == 0:
            roots: list[object] = [sys.modules, *frames]
        elif phase == 1:
            tracked = gc.get_objects()
            referred = {id(r) for o in tracked for r in gc.get_referents(o)}
            roots = [o for o in tracked if id(o) not in referred]
            del referred
        else:
            roots, tracked = tracked, []
        queue.extend((r, "root") for r in roots if id(r) not in seen)
        del roots
        while queue:
            o, via = queue.popleft()
            addr = id(o)
            if addr in seen:
                continue
            seen.add(addr)
            name = _type_name(o)
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and addr < maps[i][1]:
                counts[i][name] += 1
                holders[i][f"{name} < {via}"] += 1
                sizes[i] += sys.getsizeof(o, 0)
                if len(samples[i]) < _SAMPLES and _numeric(o):
                    samples[i].append(repr(o)[:80])
            parent = f"{name} < {via.split(' < ', 1)[0]}"
            queue.extend((r, parent) for r in gc.get_referents(o) if id(r) not in seen)
    seen.clear()
    order = sorted((i for i, m in enumerate(maps) if m[2] >= min_resident), key=lambda i: -maps[i][2])
    return [{"start": f"{maps[i][0]:#x}", "size_bytes": maps[i][1] - maps[i][0], "resident_bytes": maps[i][2],
             "objects": sum(counts[i].values()), "object_bytes": sizes[i],
             "types": [{"type": name, "count": n} for name, n in counts[i].most_common(top)],
             "holders": [{"path": path, "count": n} for path, n in holders[i].most_common(top)],
             "numeric_samples": samples[i]}
            for i in order]


_SAMPLES = 12


def _numeric(o: object) -> bool:
    """Numbers, and tuples of numbers: their values tell ports from timestamps from identifiers, and they
    carry no subscriber data (identities, SIP text), so the census may show them."""
    if type(o) in (int, float):
        return True
    return type(o) is tuple and 0 < len(o) <= 8 and all(type(x) in (int, float) for x in o)


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
