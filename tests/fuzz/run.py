"""Offline fuzz run: ``.venv/bin/python tests/fuzz/run.py --examples 20000 [--seconds 120] [--target NAME]``.

Runs every target of ``fuzz_targets.TARGETS`` on seeded mutations of real IMS messages (and some pure
garbage), outside hypothesis so that hundreds of thousands of inputs fit in minutes. Prints, per target, the
number of inputs, the outcome mix and every distinct finding (exception type and message) with a
reproducing seed; exits 1 when there is a finding not in ``KNOWN``.

(``python -m tests.fuzz.run`` cannot work here: the dev extra ``sippy`` installs a top-level ``tests``
package into site-packages, which shadows this folder. Run the file.)
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

import fuzz_targets as ft

# Findings already reported to the owning area (signature prefix -> where it is written up).
KNOWN: dict[str, str] = {
    # "ExceptionType: message with numbers as N": "where it is reported",
}


def _signature(exc: BaseException) -> str:
    """Exception type and message with numbers blanked, so one bug is one finding."""
    return re.sub(r"\d+", "N", f"{type(exc).__name__}: {str(exc)[:120]}")


def run_target(name: str, examples: int, seconds: float,
               seed: int) -> tuple[int, Counter[str], dict[str, str]]:
    target = {**ft.TARGETS, **ft.OPT_IN}[name]
    outcomes: Counter[str] = Counter()
    findings: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    n = 0
    while n < examples and time.monotonic() < deadline:
        case_seed = seed * 1_000_003 + n
        try:
            outcomes[target(random.Random(case_seed))] += 1
        except Exception as exc:
            sig = _signature(exc)
            outcomes["FINDING"] += 1
            if sig not in findings:
                findings[sig] = f"seed={case_seed}\n{traceback.format_exc(limit=6)}"
        n += 1
    return n, outcomes, findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=600.0, help="time limit per target")
    parser.add_argument("--target", action="append", choices=sorted({**ft.TARGETS, **ft.OPT_IN}),
                        help="default: all but the opt-in ones")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", type=int, help="run one case seed of one --target and show the error")
    args = parser.parse_args(argv)
    names = args.target or list(ft.TARGETS)
    if args.replay is not None:
        print({**ft.TARGETS, **ft.OPT_IN}[names[0]](random.Random(args.replay)))
        return 0
    total = 0
    new = 0
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        n, outcomes, findings = run_target(name, args.examples, args.seconds, args.seed)
        total += n
        mix = ", ".join(f"{k}={v}" for k, v in outcomes.most_common(8))
        print(f"{name:18} {n:>9,} inputs in {time.monotonic() - t0:7.1f} s   {mix}", flush=True)
        for sig, detail in findings.items():
            known = next((v for k, v in KNOWN.items() if sig.startswith(k)), None)
            if known is None:
                new += 1
            print(f"  {'KNOWN' if known else 'NEW'} finding: {sig}" + (f"  [{known}]" if known else ""))
            if known is None:
                print("    " + detail.replace("\n", "\n    "))
    print(f"total {total:,} inputs in {time.monotonic() - started:.1f} s; new findings: {new}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
