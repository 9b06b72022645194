"""secondnum/memory.py: live-versus-kept memory figures and returning freed heap memory (malloc_trim(3))."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from secondnum import memory
from secondnum.cli import RunSettings
from secondnum.config import ConfigError, load_section

ROOT = Path(__file__).resolve().parents[3]

needs_glibc = pytest.mark.skipif(memory.malloc_stats() is None, reason="no glibc mallinfo2 (not Debian)")


def _in_fresh_process(code: str) -> str:
    """Run ``code`` in its own interpreter: the heap figures of this pytest process are not ours to shape."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


@needs_glibc
def test_a_receded_burst_is_given_back_to_the_os() -> None:
    # 2,000-byte objects live in glibc's heap (pymalloc takes <= 512 bytes); freeing a contiguous run of
    # them leaves whole free pages that only malloc_trim returns.
    out = _in_fresh_process("""
        from secondnum import memory
        burst = [bytes(2000) for _ in range(60_000)]
        keep = [bytes(2000) for _ in range(1_000)]
        peak = memory.rss_bytes()
        del burst
        free_before = memory.malloc_stats()[1]
        after_free = memory.rss_bytes()
        returned = memory.trim(threshold=16 << 20)
        print(peak, after_free, returned, memory.rss_bytes(), free_before, len(keep))
    """)
    peak, after_free, returned, after_trim, free_before, _ = (int(x) for x in out.split())
    assert free_before > 100 << 20  # the burst's memory is free inside the heap ...
    assert after_free > peak - (20 << 20)  # ... yet still resident: RSS did not fall by itself
    assert returned > 100 << 20  # trim gave it back ...
    assert after_trim < after_free - (100 << 20)  # ... and RSS shows it


@needs_glibc
def test_no_trim_below_the_threshold() -> None:
    out = _in_fresh_process("""
        from secondnum import memory
        burst = [bytes(2000) for _ in range(5_000)]  # ~10 MiB
        del burst
        print(memory.trim(threshold=64 << 20), memory.TRIMMED._value.get())
    """)
    assert out.split() == ["0", "0.0"]


def test_the_collector_exports_live_and_kept_memory() -> None:
    memory.register()
    memory.register()  # idempotent: a second registration would raise in prometheus_client
    text = generate_latest().decode()
    blocks = [ln for ln in text.splitlines() if ln.startswith("secondnum_python_allocated_blocks ")]
    assert blocks and float(blocks[0].split()[1]) > 10_000
    if memory.malloc_stats() is not None:
        in_use = [ln for ln in text.splitlines() if ln.startswith("secondnum_malloc_in_use_bytes ")]
        assert in_use and float(in_use[0].split()[1]) > 1 << 20
        assert any(ln.startswith("secondnum_malloc_free_bytes ") for ln in text.splitlines())


@pytest.mark.parametrize("key", ["memory_trim_interval", "memory_trim_threshold_mib", "drain_limit"])
def test_negative_run_settings_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="must be >= 0"):
        load_section(RunSettings, {"run": {key: -1}}, "run", {})


def test_trim_can_be_turned_off() -> None:
    run = load_section(RunSettings, {"run": {"memory_trim_interval": 0}}, "run", {})
    assert run.memory_trim_interval == 0


def test_census_names_the_line_that_grew_under_tracemalloc() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import json
            from secondnum import memory
            memory.object_census(5)
            kept = [str(i) * 20 for i in range(50_000)]  # GROWING-LINE: strings, untracked by the collector
            print(json.dumps(memory.object_census(5)))
        """)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "PYTHONTRACEMALLOC": "1"})
    census = json.loads(done.stdout)
    top = census["growth"][0]
    assert "<string>:5" in top["where"] and top["blocks"] >= 50_000 and top["bytes"] > 50_000 * 40


def test_census_without_tracemalloc_has_no_allocation_figures() -> None:
    census = memory.object_census(3)
    assert len(census["types"]) == 3 and "allocations" not in census and "growth" not in census


def test_mapping_census_names_the_few_objects_that_keep_a_burst_resident() -> None:
    # The shape seen after an overload: a burst fills fresh pymalloc arenas, nearly all of it is freed,
    # and a few survivors (one per 1,000) keep those arenas, so RSS stays up while live counts fall back.
    out = _in_fresh_process("""
        import gc
        import json
        from secondnum import memory

        class Survivor:
            pass

        class Keeper:
            def __init__(self, kept):
                self.kept = kept

        burst = [Survivor() for _ in range(200_000)]
        keeper = Keeper(burst[::1000])
        del burst
        gc.freeze()  # as secondnum/gctune.py does with the start-up heap: hidden from gc.get_objects
        print(json.dumps(memory.mapping_census(top=10_000, min_resident=0)))
    """)
    mappings = json.loads(out)
    found = [t["count"] for m in mappings for t in m["types"] if t["type"] == "__main__.Survivor"]
    assert sum(found) == 200  # every survivor, each in exactly one mapping
    holding = [m for m in mappings if any(t["type"] == "__main__.Survivor" for t in m["types"])]
    assert all(m["resident_bytes"] > 0 and m["size_bytes"] >= m["resident_bytes"] for m in holding)
    # ... held through the keeper's list (frozen or not, the walk starts at the modules).
    paths = {h["path"] for m in holding for h in m["holders"] if h["path"].startswith("__main__.Survivor")}
    assert paths == {"__main__.Survivor < builtins.list < __main__.Keeper"}
    # The burst's own arenas hold nothing but survivors, and far more resident memory than they occupy.
    pinned = [m for m in holding if [t["type"] for t in m["types"]] == ["__main__.Survivor"]]
    assert sum(m["objects"] for m in pinned) >= 100
    assert sum(m["resident_bytes"] for m in pinned) > 100 * sum(m["object_bytes"] for m in pinned)


def test_mapping_census_lists_only_mappings_above_the_resident_floor() -> None:
    mappings = memory.mapping_census(top=3)
    assert mappings and all(m["resident_bytes"] >= 1 << 20 for m in mappings)
    assert [m["resident_bytes"] for m in mappings] == sorted((m["resident_bytes"] for m in mappings),
                                                             reverse=True)
    assert all(len(m["types"]) <= 3 and int(m["start"], 16) > 0 for m in mappings)
    samples = [x for m in mappings for x in m["numeric_samples"]]
    assert samples and all(re.fullmatch(r"([-+0-9.e(), ]|inf|nan)+", x) for x in samples), samples  # no text


def test_mapping_census_credits_objects_held_only_by_c_code_to_their_real_root() -> None:
    # A tuple of ints reachable from no module or frame, only from a tracked object nothing else refers to
    # (how an event loop's timer handle holds its arguments): the path starts at that holder.
    out = _in_fresh_process("""
        import ctypes
        import json
        from secondnum import memory

        class Handle:
            def __init__(self, args):
                self.args = args

        for i in range(3000):
            h = Handle((40_000 + i, [7_000_000 + i]))  # a tracked tuple, created before its holder
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(h))  # a reference only C code knows of
        del h
        print(json.dumps(memory.mapping_census(top=10_000, min_resident=0)))
    """)
    paths: collections.Counter[str] = collections.Counter()
    for m in json.loads(out):
        paths.update({h["path"]: h["count"] for h in m["holders"]})
    assert paths.get("builtins.tuple < __main__.Handle < root") == 3000
    assert paths.get("__main__.Handle < root") == 3000
