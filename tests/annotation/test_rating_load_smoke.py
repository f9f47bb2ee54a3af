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


TINY = ["--raters", "6", "--rounds", "3", "--rate", "10", "--open-seconds", "1", "--workers", "2"]


def _bench(*extra: str) -> subprocess.CompletedProcess[str]:
    settings = connection.settings_dict
    server = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "bench/rating_load.py", *TINY, "--pg", server, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.django_db
def test_rating_load_bench_smoke():
    if connection.vendor != "postgresql":
        pytest.skip("the load bench needs PostgreSQL: run with DATABASE_URL=postgres://...")
    result = _bench("--db", "evalhub_bench_smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "integrity: " in result.stdout and "(a) closed loop" in result.stdout


@pytest.mark.django_db
def test_rating_load_bench_measures_a_baseline_ref_in_the_same_run():
    if connection.vendor != "postgresql":
        pytest.skip("the load bench needs PostgreSQL: run with DATABASE_URL=postgres://...")
    result = _bench("--db", "evalhub_bench_smoke_cmp", "--baseline", "HEAD")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("acknowledged ratings stored exactly once") == 2
    assert (
        "| working tree |" in result.stdout
        and "working tree / baseline, closed-loop rate per turn:" in result.stdout
    )
