"""secondnum/memory.py: live-versus-kept memory figures and returning freed heap memory (malloc_trim(3))."""

from __future__ import annotations

import json
import os
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
