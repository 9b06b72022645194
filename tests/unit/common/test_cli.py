"""The `secondnum` command: configuration errors name the key and exit 2, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secondnum.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_unknown_section_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[bogus]\nx = 1\n")
    r = _run("-c", str(cfg), "check-config")
    assert r.returncode == 2
    assert "'bogus'" in r.stderr and "Traceback" not in r.stderr


def test_bad_value_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[log]\nlevel = "loud"\n')
    r = _run("-c", str(cfg), "check-config")
    assert r.returncode == 2 and "'log.level'" in r.stderr


def test_help_lists_components() -> None:
    r = _run("--help")
    assert r.returncode == 0
    for name in ("up", "as", "media", "ocs", "hss", "check-config"):
        assert name in r.stdout
