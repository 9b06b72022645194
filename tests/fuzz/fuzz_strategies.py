"""Hypothesis strategies over the shared mutation engine (``fuzz_targets.apply_ops``), settings, counts."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

from fuzz_targets import N_OPS, apply_ops
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

RUNS: Counter[str] = Counter()
"""Inputs run per property, printed at the end of the session (``conftest.pytest_terminal_summary``)."""


def fuzz_settings(default: int) -> settings:
    """Bounded for CI (the whole suite < 60 s); ``SECONDNUM_FUZZ_EXAMPLES`` sets the count for big runs."""
    value = os.environ.get("SECONDNUM_FUZZ_EXAMPLES")
    return settings(max_examples=int(value) if value else default, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


ops = st.lists(st.tuples(st.integers(0, N_OPS - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**24 - 1)),
               min_size=1, max_size=8)


def mutated(seeds: Sequence[bytes], tokens: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A real message with one to eight mutations (byte, token, line and number level)."""
    return st.builds(lambda seed, o: apply_ops(seed, o, seeds, tokens), st.sampled_from(list(seeds)), ops)
