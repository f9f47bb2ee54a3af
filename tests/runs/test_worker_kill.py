"""A real Celery worker on PostgreSQL and Redis, SIGKILLed mid-run: the run still completes exactly.

What guarantees completion: chunk tasks are acks_late, so the chunk a killed worker was running
stays unacknowledged in Redis; once the broker's visibility timeout has passed (5 s here, through
CELERY_VISIBILITY_TIMEOUT) a worker's sweep for abandoned messages puts it back on its queue
(every second here, see worker_settings.py; about every 100 s with kombu's defaults) and the next
worker receives it again. The chunk then generates only the
outputs its run lacks (the unique (run, adapter, case, sample) constraint backs this up), so the
redelivery duplicates nothing and the run ends with exactly one output per (adapter, case, sample).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunStatus
from tests.runs.conftest import make_suite_version, words

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 11
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
CASES = 24


def database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


PREFIX = f"evalhub-kill-test-{uuid.uuid4().hex[:12]}:"


def flush_broker() -> None:
    """Delete this session's broker keys only (other sessions may share the Redis database)."""
    import redis

    client = redis.Redis.from_url(BROKER)
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.runs.worker_settings",
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=BROKER,
        CELERY_VISIBILITY_TIMEOUT="5",
        EVALHUB_TEST_BROKER_PREFIX=PREFIX,
        EVALHUB_TEST_BATCH_DELAY="1.0",
        EVALHUB_GENERATION_CHUNK_SIZE="4",
        EVALHUB_DATA_DIR=str(tmp_path / "data"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env


class Workers:
    """Celery worker subprocesses, each in its own process group so a kill takes the pool child too."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "evalhub", "worker", "-Q", "gpu,cpu",
             "--concurrency", "1", "--pool", "prefork", "-n", f"{name}@%h", "--loglevel", "INFO",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(proc, signal.SIGKILL)


def trace(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(predicate: Any, timeout: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_loses_at_most_its_chunk_and_the_run_completes_exactly(
    require_postgres: None, project: Any, tiny: dict[str, Any], worker_env: dict[str, str], tmp_path: Path
) -> None:
    make_suite_version(project, [words(i * 11, 20 + i % 7) for i in range(CASES)], name="kill-suite")
    flush_broker()
    workers = Workers(worker_env, tmp_path)
    cli: subprocess.Popen[str] | None = None
    try:
        trace("start")
        first = workers.start("w1")
        # The CLI creates and starts the run, then follows it by polling until it ends.
        cli = subprocess.Popen(
            [sys.executable, "manage.py", "run_eval", "--project", project.slug, "--suite", "kill-suite",
             "--base-model", "tiny-base", "--adapter", "alpha@1", "--baseline", "beta@1",
             "--max-new-tokens", "16"],
            cwd=REPO, env=worker_env, stdout=(tmp_path / "cli.out").open("w"),
            stderr=(tmp_path / "cli.err").open("w"), text=True,
        )
        wait_for(lambda: Run.objects.exists() and RunChunk.objects.exists(), 120, "the run's chunks", tmp_path)
        trace("run started from the CLI")
        run = Run.objects.get()
        expected = {(a, c, 0) for a in (tiny["alpha"].pk, tiny["beta"].pk)
                    for c in run.suite_version.cases.values_list("pk", flat=True)}
        assert len(expected) == 2 * CASES

        # Kill once some outputs exist, with a chunk in flight.
        def mid_run() -> bool:
            done = Output.objects.filter(run=run).count()
            # A chunk leased within the last half second is still in its batch's 1 s delay, so it cannot
            # finish before the kill lands even on a loaded box (one leased earlier may be about to).
            recent = timezone.now() - timedelta(seconds=0.5)
            return 8 <= done < 2 * CASES - 16 and RunChunk.objects.filter(
                run=run, status=ChunkStatus.RUNNING, leased_at__gte=recent).exists()

        wait_for(mid_run, 120, "outputs from the first worker", tmp_path)
        workers.kill(first)
        # Read after the kill: a chunk still marked running is one the dead worker never finished.
        in_flight = set(RunChunk.objects.filter(run=run, status=ChunkStatus.RUNNING).values_list("index", flat=True))
        trace(f"killed w1 with chunks {sorted(in_flight)} in flight")
        assert in_flight, "the worker finished its chunk just before the kill; nothing was in flight"
        done_at_kill = Output.objects.filter(run=run).count()
        assert 0 < done_at_kill < len(expected)
        assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

        workers.start("w2")
        trace("started w2")
        wait_for(lambda: Run.objects.get(pk=run.pk).status != RunStatus.RUNNING, 120,
                 "the run to finish on the second worker", tmp_path)

        trace("run finished")
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED, run.error
        keys = list(Output.objects.filter(run=run).values_list("adapter_id", "case_id", "sample"))
        assert len(keys) == len(set(keys)) == run.total == run.done == len(expected)  # no duplicate
        assert set(keys) == expected  # none missing
        assert not RunChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
        # The chunk in flight at the kill was delivered again and finished by the second worker.
        for chunk in RunChunk.objects.filter(run=run, index__in=in_flight):
            assert chunk.attempts >= 2 and chunk.leased_by != "", chunk
        # The CLI followed the run through the kill to its end.
        cli.wait(timeout=30)
        out, err = (tmp_path / "cli.out").read_text(), (tmp_path / "cli.err").read_text()
        assert cli.returncode == 0, err
        assert f"Run {run.pk} completed: {len(expected)}/{len(expected)} outputs" in out
        assert f"{len(expected)}/{len(expected)}" in err  # the progress bar
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
        workers.stop_all()
        flush_broker()
        wait_for_other_sessions_to_close()


def wait_for_other_sessions_to_close() -> None:
    """The killed workers' database sessions linger a moment; the test database is dropped after."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.2)
