"""A short coverage-guided campaign (atheris/libFuzzer) per target of ``fuzz_targets.BYTE_TARGETS``.

Each target runs ``atheris_run.py`` in a subprocess (libFuzzer owns its process) for a bounded number of
inputs; any exception the target does not document, a timeout or a crash fails the test. The planted-bug
target shows that a finding is reported and turns the exit status to 1. Longer runs: see RELIABILITY.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import fuzz_targets as ft
import pytest
from fuzz_strategies import RUNS

pytest.importorskip("atheris", reason="atheris is in the test extra (pip install -e '.[test]')")

RUNNER = Path(__file__).resolve().parent / "atheris_run.py"
INPUTS = int(os.environ.get("SECONDNUM_ATHERIS_RUNS", "3000"))
_LINE = re.compile(r"^(\S+)\s+([\d,]+) inputs in .* cov\s+(\d+)\s+ft\s+(\d+)\s+corpus\s+(\d+)\s+"
                   r"findings (\d+)$", re.M)


def _run(*targets: str, runs: int, artifacts: Path) -> tuple[int, str, dict[str, tuple[int, int, int]]]:
    args = [sys.executable, str(RUNNER), "--runs", str(runs), "--seconds", "120",
            "--artifacts", str(artifacts)]
    for t in targets:
        args += ["--target", t]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    rows = {m[1]: (int(m[2].replace(",", "")), int(m[4]), int(m[6])) for m in _LINE.finditer(out)}
    return proc.returncode, out, rows


@pytest.mark.timeout(900)
def test_atheris_campaign_finds_nothing(tmp_path: Path) -> None:
    code, out, rows = _run(*ft.BYTE_TARGETS, runs=INPUTS, artifacts=tmp_path)
    assert set(rows) == set(ft.BYTE_TARGETS), out
    for name, (inputs, features, findings) in rows.items():
        RUNS[f"atheris.{name}"] += inputs
        assert findings == 0, out
        assert inputs >= INPUTS, f"{name}: only {inputs} inputs ran\n{out}"
        assert features > 0, f"{name}: no coverage feature: instrumentation is not active\n{out}"
    assert code == 0, out


@pytest.mark.timeout(300)
def test_atheris_reports_a_planted_bug(tmp_path: Path) -> None:
    code, out, rows = _run("selftest_finding", runs=200, artifacts=tmp_path)
    assert code == 1, out
    assert rows["selftest_finding"][2] >= 1, out
    assert "KeyError: 'planted'" in out
    assert any(tmp_path.glob("selftest_finding-*")), "the failing input was not saved"
