"""`manage.py gpu_workers`: one Celery `gpu` worker per visible GPU, each pinned to its device.

A run is split into chunks (`EVALHUB_GENERATION_CHUNK_SIZE` cases each), and every chunk is its own
`generate_chunk` message on the `gpu` queue. Workers that listen on that queue take chunks as they
free up (`--prefetch-multiplier 1`, acks late), so N workers share one run with no coordination
beyond the broker and the chunk lease in the database (docs/scale.md).

This command only starts and supervises the worker processes: each is `celery -A evalhub worker -Q gpu
--concurrency 1` with `CUDA_VISIBLE_DEVICES` set to its GPU, so the worker's torch sees exactly one
device as `cuda:0`. SIGINT/SIGTERM are passed on to every worker (a warm shutdown: the chunk in flight
finishes or, acked late, goes back to the queue); if one worker exits by itself the others are
stopped too and the command exits non-zero, so a process supervisor (systemd, Kubernetes) restarts
the set as a whole.

`--cpu N` starts N workers on the CPU instead (for hosts with no GPU and for the scale-out benchmark
on CPU), each limited to its share of the cores. `--per-gpu K` starts K workers on each GPU (workers
sharing a GPU: measured in bench/RESULTS.md, not a recommended set-up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: its Celery node name and the environment it differs in."""

    name: str
    env: dict[str, str] = field(default_factory=dict)


def visible_gpus(spec: str) -> list[str]:
    """The GPU ids to use: `all` (what CUDA_VISIBLE_DEVICES or torch shows), or a comma list like `0,2`."""
    if spec != "all":
        ids = [part.strip() for part in spec.split(",") if part.strip()]
        if not ids:
            raise CommandError("--gpus needs 'all' or a comma-separated list of GPU ids, e.g. --gpus 0,1.")
        return ids
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [part.strip() for part in declared.split(",") if part.strip() and part.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def plan_workers(*, gpus: list[str], per_gpu: int = 1, cpu_workers: int = 0, cores: int | None = None,
                 prefix: str = "gpu") -> list[WorkerSpec]:
    """The worker processes to start. GPU workers see one device each; CPU workers split the cores."""
    if per_gpu < 1:
        raise CommandError("--per-gpu must be at least 1.")
    if cpu_workers:
        threads = max(1, (cores or os.cpu_count() or 1) // cpu_workers)
        return [
            WorkerSpec(f"{prefix}-cpu{i}", {"EVALHUB_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "",
                                            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
            for i in range(cpu_workers)
        ]
    if not gpus:
        raise CommandError(
            "No GPU is visible (CUDA_VISIBLE_DEVICES is empty or torch sees none). "
            "Use --gpus 0,1 to name them, or --cpu N for CPU workers."
        )
    return [
        WorkerSpec(f"{prefix}{gpu}" + (f"-{k}" if per_gpu > 1 else ""),
                   {"CUDA_VISIBLE_DEVICES": gpu, "EVALHUB_DEVICE": "cuda",
                    # Multi-GPU hosts here must keep NCCL's NVLink multicast off (no collective is used,
                    # but a library that initialises NCCL would otherwise try it).
                    "NCCL_NVLS_ENABLE": "0"})
        for gpu in gpus for k in range(per_gpu)
    ]


def worker_command(spec: WorkerSpec, *, queues: str, loglevel: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "evalhub", "worker", "-Q", queues, "--concurrency", "1",
            "--prefetch-multiplier", "1", "--hostname", f"{spec.name}@%h", "--loglevel", loglevel, *extra]


class Command(BaseCommand):
    help = "Start one Celery gpu worker per visible GPU (pinned with CUDA_VISIBLE_DEVICES) and supervise them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gpus", default="all", help="'all' (default) or GPU ids, e.g. 0,1")
        parser.add_argument("--per-gpu", type=int, default=1, help="workers per GPU (default 1)")
        parser.add_argument("--cpu", type=int, default=0, metavar="N", help="start N CPU workers instead")
        parser.add_argument("--queues", default="gpu", help="queues to consume (default gpu)")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--dry-run", action="store_true", help="print the worker commands and exit")
        parser.add_argument("celery_args", nargs="*", help="extra arguments for every worker (after --)")

    def handle(self, *args: Any, **options: Any) -> None:
        specs = plan_workers(gpus=[] if options["cpu"] else visible_gpus(options["gpus"]),
                             per_gpu=options["per_gpu"], cpu_workers=options["cpu"])
        commands = [worker_command(s, queues=options["queues"], loglevel=options["loglevel"],
                                   extra=options["celery_args"]) for s in specs]
        for spec, command in zip(specs, commands, strict=True):
            pinned = " ".join(f"{k}={v!r}" for k, v in spec.env.items())
            self.stdout.write(f"{spec.name}: {pinned} {' '.join(command[1:])}")
        if options["dry_run"]:
            return
        procs = [subprocess.Popen(command, env={**os.environ, **spec.env})
                 for spec, command in zip(specs, commands, strict=True)]
        asked_to_stop = False

        def forward(signum: int) -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

        def on_signal(signum: int, _frame: Any) -> None:
            nonlocal asked_to_stop
            asked_to_stop = True
            forward(signum)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not asked_to_stop and all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        if not asked_to_stop:  # one worker died on its own: stop the set so the supervisor restarts it whole
            dead = [s.name for s, p in zip(specs, procs, strict=True) if p.poll() is not None]
            self.stderr.write(f"worker {', '.join(dead)} exited; stopping the others")
            forward(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not asked_to_stop or any(p.returncode not in (0, -signal.SIGTERM, -signal.SIGINT) for p in procs):
            raise CommandError("a worker exited with an error (see its log above)")
