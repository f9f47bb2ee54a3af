"""tools/cached_venv.py: a venv is built once per definition, reused by fresh clones, rebuilt when it changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Slow (each build makes a venv with pip), and it touches no database: the PostgreSQL run is enough.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "cached_venv.py"
# The "packages" of the cached venv: one module in its site-packages, and a line per build in a log.
BUILD = (
    '{cache}/bin/python -c "import sysconfig, pathlib; '
    "pathlib.Path(sysconfig.get_paths()['purelib'], 'cachedmark.py').write_text('VALUE = 42'); "
    "open('BUILDS', 'a').write('built\\n')\""
)


def link(clone: Path, cache: Path, build: str = BUILD) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--kind", "t", "--venv", ".venv", "--define", "deps.txt",
         "--build", build, "--cache-dir", str(cache)],
        cwd=clone, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def clone_with(tmp_path: Path, name: str, deps: str) -> Path:
    clone = tmp_path / name
    clone.mkdir()
    (clone / "deps.txt").write_text(deps)
    (clone / "projectmod.py").write_text(f"WHERE = {name!r}")
    return clone


def run_in(clone: Path, code: str) -> str:
    venv_python = clone / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(venv_python), "-c", code], cwd="/", capture_output=True, text=True, check=True
    ).stdout.strip()


def builds(clone: Path) -> int:
    log = clone / "BUILDS"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_second_clone_reuses_the_cached_packages_and_imports_its_own_code(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = clone_with(tmp_path, "first", "torch==1\n"), clone_with(tmp_path, "second", "torch==1\n")
    assert link(first, cache).returncode == 0
    result = link(second, cache)
    assert result.returncode == 0, result.stderr
    assert "reusing" in result.stdout
    assert (builds(first), builds(second)) == (1, 0)
    assert run_in(second, "import cachedmark, projectmod; print(cachedmark.VALUE, projectmod.WHERE)") == "42 second"
    assert run_in(first, "import projectmod; print(projectmod.WHERE)") == "first"


def test_a_changed_definition_builds_a_new_venv(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    clone = clone_with(tmp_path, "clone", "torch==1\n")
    assert link(clone, cache).returncode == 0
    (clone / "deps.txt").write_text("torch==2\n")
    assert link(clone, cache).returncode == 0
    assert builds(clone) == 2
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_a_failed_build_leaves_nothing_to_reuse(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    clone = clone_with(tmp_path, "clone", "torch==1\n")
    result = link(clone, cache, build="exit 3")
    assert result.returncode != 0 and "failed (exit 3)" in result.stderr
    assert not [p for p in cache.iterdir() if p.is_dir()]
    assert link(clone, cache).returncode == 0 and builds(clone) == 1
