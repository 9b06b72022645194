"""CI runs k8s/validate.sh through pytest: yamllint, kustomize rendering and schema validation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from k8s_checks import K8S, ROOT

SCRIPT = K8S / "validate.sh"


def run_validate(k8s_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VENV_BIN": str(ROOT / ".venv" / "bin")}
    return subprocess.run(["bash", str(k8s_dir / "validate.sh")], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_validate_script_passes() -> None:
    result = run_validate(K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    for target in ("base", "overlays/lab", "overlays/production"):
        assert f"==> {target}: kubernetes-validate --strict -k 1.30.0" in result.stdout
    assert "validate.sh: all manifests valid" in result.stdout


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "k8s"
    shutil.copytree(K8S, target)
    return target


def test_validate_script_rejects_schema_error(tmp_path: Path) -> None:
    k8s = _copy(tmp_path)
    hss = k8s / "base" / "hss.yaml"
    hss.write_text(hss.read_text().replace("terminationGracePeriodSeconds: 60",
                                           "terminationGracePeriod: 60"))
    result = run_validate(k8s)
    assert result.returncode == 1
    assert "'terminationGracePeriod' was unexpected" in result.stdout + result.stderr
    assert "FAIL overlays/lab: schema validation" in result.stderr


def test_validate_script_rejects_lint_error(tmp_path: Path) -> None:
    k8s = _copy(tmp_path)
    pdb = k8s / "base" / "pdb.yaml"
    pdb.write_text(pdb.read_text().replace("maxUnavailable: 1", "maxUnavailable: 1   ", 1))
    result = run_validate(k8s)
    assert result.returncode == 1
    assert "trailing spaces" in result.stdout


def test_validate_script_rejects_unrenderable_overlay(tmp_path: Path) -> None:
    k8s = _copy(tmp_path)
    (k8s / "overlays" / "lab" / "network-peers.yaml").unlink()
    result = run_validate(k8s)
    assert result.returncode == 1
    assert "FAIL overlays/lab: kustomize could not render it" in result.stderr
