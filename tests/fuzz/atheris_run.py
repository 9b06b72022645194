"""Coverage-guided fuzzing with atheris (libFuzzer) of the targets in ``fuzz_targets.BYTE_TARGETS``.

``.venv/bin/python tests/fuzz/atheris_run.py [--target NAME ...] [--runs N] [--seconds S]``

Each target runs in its own child process (libFuzzer ends the process when it is done): the protocol code
it drives (``--deep``: every package) is imported under atheris' bytecode instrumentation,
the seed corpus is the call flows' own messages (``fuzz_corpus``, in the target's byte layout) and the
mutation engine's grammar tokens are the libFuzzer dictionary. Any exception other than the ones the target
itself returns as an outcome (its documented error types) is a finding: the child records its signature,
count and first input, and goes on fuzzing. Per target it prints inputs executed, coverage (libFuzzer's
``cov`` edges and ``ft`` features), corpus size and findings; exit status 1 when there is a finding or a
child failed (timeout, out of memory: those stop libFuzzer and are findings too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INSTRUMENTED: dict[str, list[str]] = {
    "sip_parser": ["secondnum.sip"], "sip_stream": ["secondnum.sip"], "sip_transactions": ["secondnum.sip"],
    "sdp": ["secondnum.sdp"], "rtp_dtmf": ["media.rtp"], "rtcp": ["media.rtp"],
    "diameter_codec": ["secondnum.diameter"], "diameter_peer": ["secondnum.diameter"],
    "selftest_finding": ["secondnum.sip"],
}
"""Packages whose bytecode gets coverage counters, per target: the code it exercises (``diameter`` is
python-diameter, our codec's base). Instrumenting is the slow part of a child's start (seconds for all
packages), so each target instruments only its own; ``--deep`` instruments :data:`DEEP` for every target."""
DEEP = ["secondnum", "media", "charging", "hss_adapter", "diameter", "fuzz_targets", "fuzz_corpus"]
"""Everything, python-diameter included (~5 s more per child): what the long runs in RELIABILITY.md used."""
SELFTEST = "selftest_finding"
"""A target with a planted bug (raises on a seed): shows that a finding is detected and reported."""


def _signature(exc: BaseException) -> str:
    return re.sub(r"\d+", "N", f"{type(exc).__name__}: {str(exc)[:120]}")


def _child(name: str, runs: int, seconds: float, findings_path: Path, artifacts: Path, deep: bool) -> None:
    """Fuzz one target in this process until libFuzzer's ``-runs``/``-max_total_time`` ends it; its corpus and
    dictionary go next to ``findings_path`` (the parent's temporary folder: libFuzzer exits the process)."""
    import atheris  # type: ignore[import-untyped]

    sys.path[:0] = [str(HERE), str(ROOT)]
    with atheris.instrument_imports(include=DEEP if deep else INSTRUMENTED.get(name, ["secondnum"])):
        import fuzz_targets as ft
    target = ft.BYTE_TARGETS[name] if name != SELFTEST else _planted_bug
    findings: dict[str, dict[str, object]] = {}

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except Exception as exc:  # every escaping exception is a finding
            sig = _signature(exc)
            entry = findings.setdefault(sig, {"count": 0})
            entry["count"] = int(str(entry["count"])) + 1
            if "input" not in entry:
                entry["input"] = data.hex()
                entry["traceback"] = traceback.format_exc(limit=8)
                (artifacts / f"{name}-{len(findings)}.bin").write_bytes(data)
            findings_path.write_text(json.dumps(findings))

    work = findings_path.parent
    corpus_dir = work / "corpus"
    corpus_dir.mkdir()
    layout = name if name != SELFTEST else "sip_parser"
    for i, seed in enumerate(ft.byte_seeds(layout)):
        (corpus_dir / f"seed{i}").write_bytes(seed)
    dictionary = work / "tokens.dict"
    dictionary.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in tok) + '"\n'
                                  for tok in ft.byte_tokens(layout) if tok))
    args = [sys.argv[0], f"-runs={runs}", f"-max_total_time={max(1, int(seconds))}", "-max_len=4096",
            "-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1", f"-dict={dictionary}", "-seed=1",
            f"-artifact_prefix={artifacts}/{name}-", str(corpus_dir)]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def _planted_bug(data: bytes) -> str:
    import fuzz_targets as ft

    if b"CANCEL" in data:
        raise KeyError("planted")
    return ft.sip_message(data)


@dataclass
class Result:
    name: str
    inputs: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    seconds: float = 0.0
    exit: int = 0
    findings: dict[str, dict[str, object]] = field(default_factory=dict)
    tail: str = ""

    @property
    def finding_count(self) -> int:
        crashed = 0 if self.exit == 0 else 1
        return sum(int(str(f["count"])) for f in self.findings.values()) + crashed


_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def run_target(name: str, runs: int, seconds: float, artifacts: Path, deep: bool = False) -> Result:
    """One child process; parses libFuzzer's status lines and final stats."""
    with tempfile.TemporaryDirectory() as tmp:
        findings_path = Path(tmp) / "findings.json"
        started = time.monotonic()
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--runs", str(runs), "--seconds", str(seconds),
             "--findings", str(findings_path), "--artifacts", str(artifacts), *(["--deep"] if deep else [])],
            capture_output=True, text=True, errors="replace", env=env, cwd=ROOT,
            timeout=seconds * 3 + 120, check=False)
        result = Result(name, seconds=time.monotonic() - started, exit=proc.returncode)
        out = proc.stderr + proc.stdout
        for m in _STATUS.finditer(out):  # the last status line is the final one
            result.inputs, result.cov, result.ft, result.corpus = map(int, m.groups())
        executed = re.search(r"stat::number_of_executed_units: (\d+)", out)
        if executed:
            result.inputs = int(executed.group(1))
        if findings_path.exists():
            result.findings = json.loads(findings_path.read_text())
        if proc.returncode != 0:
            result.tail = "\n".join(out.splitlines()[-40:])
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", action="append", help="default: every target")
    parser.add_argument("--runs", type=int, default=20_000, help="inputs per target (libFuzzer -runs)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per target")
    parser.add_argument("--artifacts", type=Path, default=None, help="where failing inputs are written")
    parser.add_argument("--deep", action="store_true",
                        help="instrument every package (python-diameter included), not only the target's own")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--findings", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    artifacts = args.artifacts or Path(tempfile.gettempdir()) / f"atheris-artifacts-{os.getpid()}"
    artifacts.mkdir(parents=True, exist_ok=True)
    if args.child:  # before anything imports the code under test: it must load instrumented
        _child(args.child, args.runs, args.seconds, args.findings, artifacts, args.deep)
        return 0
    import fuzz_targets as ft

    unknown = set(args.target or ()) - set(ft.BYTE_TARGETS) - {SELFTEST}
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {sorted(ft.BYTE_TARGETS)}")
    total = found = 0
    for name in args.target or list(ft.BYTE_TARGETS):
        r = run_target(name, args.runs, args.seconds, artifacts, args.deep)
        total += r.inputs
        found += r.finding_count
        print(f"{name:17} {r.inputs:>9,} inputs in {r.seconds:6.1f} s   cov {r.cov:>5}  ft {r.ft:>6}  "
              f"corpus {r.corpus:>5}  findings {r.finding_count}", flush=True)
        for sig, f in r.findings.items():
            print(f"  finding x{f['count']}: {sig}\n    input {str(f['input'])[:200]}\n    "
                  + str(f["traceback"]).replace("\n", "\n    "))
        if r.exit != 0:
            print(f"  libFuzzer stopped with exit status {r.exit} (crash, timeout or OOM):\n    "
                  + r.tail.replace("\n", "\n    "))
    with contextlib.suppress(OSError):
        artifacts.rmdir()  # only when empty: failing inputs stay
    where = f"; failing inputs in {artifacts}" if found else ""
    print(f"total {total:,} inputs; findings: {found}{where}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.path[:0] = [str(HERE), str(ROOT)]
    sys.exit(main())
