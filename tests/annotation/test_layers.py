"""A rater's request must not load torch: annotation never imports the generation backends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ANNOTATION = Path(__file__).resolve().parents[2] / "annotation"
FORBIDDEN = ("evalhub.generation", "torch", "transformers", "peft", "vllm")


def test_annotation_source_imports_no_generation_backend():
    offenders = []
    for path in ANNOTATION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)
            ]
    assert not offenders


def test_serving_the_rater_pages_does_not_load_torch():
    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'evalhub.settings');"
        "import django; django.setup();"
        "import evalhub.urls, annotation.api, annotation.views, annotation.services, annotation.queue;"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "EVALHUB_DATA_DIR": "/tmp/evalhub-layers-test"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ANNOTATION.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
