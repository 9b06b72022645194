"""Static checks of the Containerfile (no container engine here to build it) and of its fit with the
Kubernetes manifests: pinned base, non-root user, the prompt cache paths, what gets copied in."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from k8s_checks import K8S, ROOT, containers, pod_spec, render

from media.prompts.cache import PromptCache
from media.prompts.catalog import all_texts
from media.service import make_engine
from media.settings import MediaSettings
from secondnum.service import Config

CONTAINERFILE = ROOT / "Containerfile"
PINNED_PYTHON = re.compile(
    r"^(docker\.io/library/)?python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        elif keyword == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], parts[0])
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image, alias))
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(CONTAINERFILE.read_text())[1]


def test_base_images_pinned(stages: list[Stage]) -> None:
    aliases = {s.alias for s in stages if s.alias}
    external = [s.base for s in stages if s.base not in aliases]
    assert external, "no FROM found"
    for image in external:
        assert PINNED_PYTHON.match(image), f"base image {image} is not python:3.11.<patch>-slim-bookworm"
        assert ":latest" not in image


def test_runtime_stage_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    users = [rest for kw, rest in final.instructions if kw == "USER"]
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root"), users
    # Nothing after the last USER runs as root, and the uid is the one the manifests enforce.
    last_user = max(i for i, (kw, _) in enumerate(final.instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in final.instructions[last_user:])
    assert user == "10001"


def test_runtime_stage_installs_espeak_and_tini(stages: list[Stage]) -> None:
    runs = " ".join(rest for kw, rest in stages[-1].instructions if kw == "RUN")
    assert re.search(r"apt-get install -y --no-install-recommends [^&]*\bespeak-ng\b", runs)
    assert re.search(r"apt-get install [^&]*\btini\b", runs)
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_entrypoint_is_secondnum_under_tini(stages: list[Stage]) -> None:
    entry = [rest for kw, rest in stages[-1].instructions if kw == "ENTRYPOINT"][-1]
    assert entry.startswith("["), "ENTRYPOINT must be exec form (signals reach the process)"
    assert shlex.split(entry.strip("[]").replace(",", " ")) == ["/usr/bin/tini", "--", "secondnum"]


def test_every_package_is_copied(stages: list[Stage]) -> None:
    copied = {rest.split()[0] for kw, rest in stages[0].instructions if kw == "COPY" and "--from" not in rest}
    setup = (ROOT / "setup.py").read_text()
    top_level = re.search(r"TOP_LEVEL = \[(.*?)\]", setup)
    assert top_level
    packages = set(re.findall(r'"(\w+)"', top_level[1])) | {"as"}
    assert packages <= copied, packages - copied
    for path in copied:
        assert (ROOT / path).exists(), path
    assert {"pyproject.toml", "setup.py", "README.md"} <= set(
        next(rest for kw, rest in stages[0].instructions if kw == "COPY").split()[:-1])


def test_copied_files_build_the_package(stages: list[Stage], tmp_path: Path) -> None:
    """What the build stage copies is enough to build every component (setuptools, offline)."""
    context = tmp_path / "src"
    context.mkdir()
    for kw, rest in stages[0].instructions:
        if kw != "COPY" or "--from" in rest:
            continue
        *sources, _dest = rest.split()
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, context / source)
    command = [sys.executable, "setup.py", "-q", "build", "--build-base", str(tmp_path / "build")]
    result = subprocess.run(command, cwd=context, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    lib = tmp_path / "build" / "lib"
    assert sorted(p.name for p in lib.iterdir()) == ["appserver", "charging", "hss_adapter", "media",
                                                     "secondnum"]
    for module in ("appserver/service.py", "charging/service.py", "hss_adapter/service.py",
                   "media/service.py", "secondnum/cli.py", "secondnum/py.typed"):
        assert (lib / module).exists(), module


def test_prompts_rendered_where_the_media_pod_copies_them_from(stages: list[Stage]) -> None:
    runs = [rest for kw, rest in stages[-1].instructions if kw == "RUN"]
    render_step = next((r for r in runs if "prompt" in r.lower()), None)
    assert render_step and "/opt/secondnum/prompts" in render_step
    for overlay in ("lab", "production"):
        docs = render(f"overlays/{overlay}")
        media = next(d for d in docs
                     if d["kind"] == "Deployment" and d["metadata"]["name"] == "secondnum-media")
        init = pod_spec(media)["initContainers"][0]
        cache_mount = next(m["mountPath"] for c in containers(media, init=False) for m in c["volumeMounts"]
                           if m["name"] == "cache")
        assert next(m["mountPath"] for m in init["volumeMounts"] if m["name"] == "cache") == cache_mount
        assert init["command"] == ["cp", "-R", "/opt/secondnum/prompts", cache_mount + "/"]
        cm = next(d for d in docs
                  if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("secondnum-config"))
        media_conf = tomllib.loads(cm["data"]["secondnum.toml"])["media"]
        assert media_conf["prompt_dir"] == cache_mount + "/prompts"


@pytest.mark.slow
def test_prompt_render_step_fills_the_media_cache(stages: list[Stage], tmp_path: Path) -> None:
    """Run the image's render step (espeak-ng, into a temporary folder instead of /opt/secondnum/prompts):
    every catalogue prompt lands there, readable by the pod's user, under the keys the media server
    computes from the shipped configuration."""
    step = next(rest for kw, rest in stages[-1].instructions if kw == "RUN" and "media.prompts" in rest)
    target = tmp_path / "prompts"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["sh", "-c", step.replace("/opt/secondnum/prompts", str(target))], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    files = list(target.iterdir())
    assert len(files) == len(set(all_texts()))
    assert all(f.stat().st_mode & 0o004 for f in files), "prompts not readable by other users"
    for overlay in ("lab", "production"):
        docs = render(f"overlays/{overlay}")
        cm = next(d for d in docs
                  if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("secondnum-config"))
        settings = Config(tomllib.loads(cm["data"]["secondnum.toml"]), {}).section(MediaSettings, "media")
        cache = PromptCache(target, make_engine(settings))
        missing = [t for t in all_texts() if cache.cached(t) is None]
        assert not missing, f"{overlay}: {len(missing)} prompts would be rendered again at start"


def test_containerignore_keeps_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".containerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", "tests", "k8s"} <= ignored


def test_parser_sees_a_bad_containerfile() -> None:
    """The checks above read what they should: a root, unpinned file is recognised as such."""
    _, bad = parse("ARG IMG=python:3.11-slim\nFROM ${IMG} AS build\nRUN true\nFROM python:latest\n"
                   "USER root\nENTRYPOINT secondnum\n")
    assert bad[0].base == "python:3.11-slim" and bad[0].alias == "build"
    assert not PINNED_PYTHON.match(bad[0].base) and not PINNED_PYTHON.match(bad[1].base)
    assert bad[1].instructions[0] == ("USER", "root")
    assert (K8S / "validate.sh").exists()
