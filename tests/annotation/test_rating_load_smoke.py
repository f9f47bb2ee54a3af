"""The load benchmark runs end to end with a tiny configuration and its integrity checks pass.

It starts gunicorn and uses its own PostgreSQL database, so it runs only against PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.django_db
def test_rating_load_bench_smoke():
    if connection.vendor != "postgresql":
        pytest.skip("the load bench needs PostgreSQL: run with DATABASE_URL=postgres://...")
    settings = connection.settings_dict
    server = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    result = subprocess.run(
        [
            sys.executable,
            "bench/rating_load.py",
            "--raters",
            "6",
            "--rounds",
            "3",
            "--rate",
            "10",
            "--open-seconds",
            "1",
            "--workers",
            "2",
            "--pg",
            server,
            "--db",
            "evalhub_bench_smoke",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "integrity: " in result.stdout and "(a) closed loop" in result.stdout
