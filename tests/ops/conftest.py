"""A real server (gunicorn) on a PostgreSQL of the test's own, for the tests that stop that PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import REPO
from tests.own_services import OwnPostgres, binaries_available, free_port, own_postgres, wait_for_port


@dataclass
class LiveServer:
    url: str
    postgres: OwnPostgres


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "evalhub.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "true",
        "EVALHUB_DATA_DIR": tempfile.mkdtemp(prefix="evalhub-own-data-"),
        "PYTHONPATH": str(REPO),
        **extra,
    }


@pytest.fixture(scope="module")
def server_on_own_postgres() -> Iterator[LiveServer]:
    if not binaries_available("initdb", "pg_ctl"):
        pytest.skip("initdb and pg_ctl are needed to run a server on its own PostgreSQL")
    with own_postgres() as postgres:
        env = server_env(postgres.url)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
        port = free_port()
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "evalhub.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
             "--timeout", "60"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, timeout=60)
            yield LiveServer(url=f"http://127.0.0.1:{port}", postgres=postgres)
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=20)


from tests.runs.conftest import suite_version, tiny, tiny_folders  # noqa: E402,F401  (the runs' tiny family)
