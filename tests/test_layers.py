"""The layers in pyproject.toml's import-linter contracts hold, and hold at run time too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold() -> None:
    # `make lint` runs the same command; running it here keeps a plain `pytest` honest as well.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_serving_the_rater_pages_does_not_load_torch() -> None:
    # The contracts see imports in source; this also catches an app's ready() or a setting that loads torch.
    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'evalhub.settings');"
        "import django; django.setup();"
        "import evalhub.urls, annotation.api, annotation.views, annotation.services, annotation.queue;"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "EVALHUB_DATA_DIR": "/tmp/evalhub-layers-test"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
