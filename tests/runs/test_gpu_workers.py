"""`manage.py gpu_workers`: the worker plan (one per GPU, pinned; CPU workers splitting the cores) and, with
real Celery workers on PostgreSQL and Redis, two workers started by the command sharing one run exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from evalhub.management.commands.gpu_workers import plan_workers, visible_gpus, worker_command
from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunStatus
from tests.runs.conftest import make_suite_version, words
from tests.runs.test_worker_kill import (
    REPO,
    flush_broker,
    trace,
    wait_for,
    wait_for_other_sessions_to_close,
    worker_env,  # noqa: F401  (a fixture)
)


def test_one_worker_per_gpu_each_pinned_to_its_device() -> None:
    specs = plan_workers(gpus=["0", "1", "3"])
    assert [s.name for s in specs] == ["gpu0", "gpu1", "gpu3"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0", "1", "3"]
    assert all(s.env["EVALHUB_DEVICE"] == "cuda" and s.env["NCCL_NVLS_ENABLE"] == "0" for s in specs)
    command = worker_command(specs[1], queues="gpu", loglevel="INFO", extra=["--without-gossip"])
    assert command[command.index("-Q") + 1] == "gpu" and command[command.index("--concurrency") + 1] == "1"
    assert "gpu1@%h" in command and command[-1] == "--without-gossip"


def test_workers_sharing_a_gpu_and_cpu_workers_splitting_the_cores() -> None:
    shared = plan_workers(gpus=["0"], per_gpu=2)
    assert [s.name for s in shared] == ["gpu0-0", "gpu0-1"]
    assert {s.env["CUDA_VISIBLE_DEVICES"] for s in shared} == {"0"}
    cpu = plan_workers(gpus=[], cpu_workers=2, cores=8)
    assert [s.env["OMP_NUM_THREADS"] for s in cpu] == ["4", "4"]
    assert all(s.env["EVALHUB_DEVICE"] == "cpu" and s.env["CUDA_VISIBLE_DEVICES"] == "" for s in cpu)
    assert plan_workers(gpus=[], cpu_workers=3, cores=2)[0].env["OMP_NUM_THREADS"] == "1"


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus("all") == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus("all") == []
    assert visible_gpus("1, 0") == ["1", "0"]


def test_no_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(CommandError, match="No GPU is visible"):
        call_command("gpu_workers", "--dry-run")
    with pytest.raises(CommandError, match="--per-gpu must be at least 1"):
        call_command("gpu_workers", "--gpus", "0", "--per-gpu", "0", "--dry-run")
    with pytest.raises(CommandError, match="--gpus needs"):
        call_command("gpu_workers", "--gpus", ",", "--dry-run")


def test_dry_run_prints_each_pinned_worker(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("gpu_workers", "--gpus", "0,1", "--dry-run")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gpu0: CUDA_VISIBLE_DEVICES='0'") and "-Q gpu" in lines[0]
    assert lines[1].startswith("gpu1: CUDA_VISIBLE_DEVICES='1'")


CASES = 24


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_two_workers_from_the_command_share_one_run_exactly(
    require_postgres: None, project: Any, tiny: dict[str, Any], worker_env: dict[str, str], tmp_path: Path  # noqa: F811
) -> None:
    make_suite_version(project, [words(i * 7, 18 + i % 5) for i in range(CASES)], name="share-suite")
    flush_broker()
    # A visibility timeout longer than any chunk: with worker_env's 5 s (the kill test's fast redelivery), a
    # worker whose first chunk waited on its cold imports past 5 s on a loaded box saw the other worker take
    # that message again and finish the chunk first, so only one worker ever leased a chunk.
    env = {**worker_env, "EVALHUB_TEST_BATCH_DELAY": "0.3", "CELERY_VISIBILITY_TIMEOUT": "120"}
    log = (tmp_path / "workers.log").open("wb")
    proc = subprocess.Popen([sys.executable, "manage.py", "gpu_workers", "--cpu", "2", "--queues", "gpu,cpu", "--",
                             "--without-heartbeat", "--without-gossip", "--without-mingle"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Both workers must be listening before the chunks are enqueued: on a slow box the first one up would
        # otherwise take every chunk before the second has imported torch, and the test would prove nothing.
        logfile = tmp_path / "workers.log"
        wait_for(lambda: logfile.read_text(errors="replace").count(" ready.") >= 2, 120, "both workers to be ready",
                 tmp_path)
        # The CLI creates the run and enqueues its chunks on the broker (this test process runs tasks eagerly).
        cli = subprocess.run(
            [sys.executable, "manage.py", "run_eval", "--project", project.slug, "--suite", "share-suite",
             "--base-model", "tiny-base", "--adapter", "alpha@1", "--baseline", "beta@1", "--max-new-tokens", "12",
             "--no-wait"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        run = Run.objects.get()
        trace("run started")
        wait_for(lambda: Run.objects.get(pk=run.pk).status != RunStatus.RUNNING, 240, "the run to finish", tmp_path)
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED, run.error
        keys = list(Output.objects.filter(run=run).values_list("adapter_id", "case_id", "sample"))
        assert len(keys) == len(set(keys)) == run.total == 2 * CASES  # one output per (case, adapter)
        assert not RunChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
        # Both workers took chunks of the one run (leased_by is host:pid of the worker process).
        workers = set(RunChunk.objects.filter(run=run).values_list("leased_by", flat=True))
        assert len(workers) == 2, workers
        # SIGTERM to the command stops every worker and the command ends cleanly.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, (tmp_path / "workers.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        flush_broker()
        wait_for_other_sessions_to_close()
