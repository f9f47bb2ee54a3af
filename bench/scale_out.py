"""Generation scale-out: one run of 4 LoRA adapters mixed, timed on 1 worker and on N workers, one after the other.

Workers are real Celery workers started by `manage.py gpu_workers` (the command the README documents),
on a real broker (CELERY_BROKER_URL, Redis) and a PostgreSQL database this script creates and drops
(`--db`, default evalhub_scale). Each measurement is a fresh run with `force_regenerate`, so nothing is
reused from the one before. Printed per worker count:

- tokens/s over the whole run (start to the last output, model loading included) and in steady state
  (between the first and the last saved output, after every worker has loaded its model);
- scaling efficiency: N-worker rate / (N x 1-worker rate), for both rates;
- integrity: exactly one output per (case, adapter), none missing, no chunk left unfinished.

Where the workers run:
    --device gpu            one worker per GPU (CUDA_VISIBLE_DEVICES pinned), counts up to the GPUs visible
    --device shared-gpu     N workers on the one GPU (recorded as such: not a scale-out set-up)
    --device cpu            N workers on the CPU, the cores split between them

    .venv/bin/python bench/scale_out.py --device cpu --workers 1,2 --cases 120
    python bench/scale_out.py --device gpu --workers 1,2,4 --model /models/llama-1.1b --adapters a,b,c,d

The model is the fixture family by default (fixtures/models: base + 4 adapters). Targets (issue #22):
efficiency >= 0.9 on 2 GPUs and >= 0.85 on 4; the script exits 1 if integrity fails, never on a target.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pgdb import recreate_database  # noqa: E402  (bench/ is on sys.path: the script's folder)
from procs import stop_group  # noqa: E402

FIXTURE_ADAPTERS = ("summariser-v1", "summariser-v2", "tone-v1", "synthetic-bad")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("gpu", "shared-gpu", "cpu"), default="cpu")
    p.add_argument("--workers", default="1,2", help="worker counts to time, e.g. 1,2,4 (1 always comes first)")
    p.add_argument("--cases", type=int, default=300, help="cases in the suite (the fixture suite, cycled)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--chunk-size", type=int, default=32, help="EVALHUB_GENERATION_CHUNK_SIZE (outputs per chunk)")
    p.add_argument("--model", type=Path, default=REPO / "fixtures" / "models" / "base")
    p.add_argument("--adapters", default=",".join(str(REPO / "fixtures" / "models" / a) for a in FIXTURE_ADAPTERS),
                   help="comma-separated adapter folders (4 for the issue's figure)")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--db", default="evalhub_scale")
    p.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13"))
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds one measurement may take")
    p.add_argument("--json", type=Path, default=None, help="write the figures here too")
    return p.parse_args(argv)


def environment(args: argparse.Namespace, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="evalhub.settings", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(40),
        DATABASE_URL=f"{args.pg}/{args.db}", CELERY_BROKER_URL=args.broker,
        EVALHUB_GENERATION_CHUNK_SIZE=str(args.chunk_size), EVALHUB_SCORE_ON_COMPLETE="false",
        EVALHUB_DATA_DIR=str(data), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
    )
    return env


def build_data(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Migrate, then register the base model, the adapters and a suite of `--cases` cases."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from evalhub.accounts.models import Project
    from evalhub.catalog.services import adapter_register, base_model_register
    from evalhub.suites.services import suite_import_file

    call_command("migrate", verbosity=0)
    actor = get_user_model().objects.create_user("bench", password=secrets.token_urlsafe(16))
    project = Project.objects.create(slug="scale", name="scale-out bench")
    base = base_model_register(project=project, name="base", folder=str(args.model), actor=actor)
    adapters = [adapter_register(project=project, base_model=base, folder=folder_, actor=actor)
                for folder_ in args.adapters.split(",")]
    rows = [json.loads(line) for line in (REPO / "fixtures" / "suites" / "summaries.jsonl").read_text().splitlines()]
    suite = folder / "scale.jsonl"
    with suite.open("w") as out:
        for i in range(args.cases):
            row = rows[i % len(rows)]
            copy = i // len(rows)
            out.write(json.dumps({"id": f"{row['id']}-{copy}", "input": row["input"] + (f" (copy {copy})" if copy else ""),
                                  "reference": row["reference"]}) + "\n")
    version = suite_import_file(project=project, name="scale", path=suite, actor=actor, pii_action="keep",
                                pii_justification="Fixture data generated by fixtures/corpus.py.",
                                data_source="fixtures/corpus.py", consent_statement="Generated text.")
    return {"project": project, "base": base, "adapters": adapters, "version": version, "actor": actor}


def start_workers(args: argparse.Namespace, env: dict[str, str], n: int, logs: Path) -> subprocess.Popen[bytes]:
    placement = {"cpu": ["--cpu", str(n)], "gpu": ["--gpus", ",".join(str(i) for i in range(n))],
                 "shared-gpu": ["--gpus", "0", "--per-gpu", str(n)]}[args.device]
    log = (logs / f"workers-{n}.log").open("wb")
    return subprocess.Popen([sys.executable, "manage.py", "gpu_workers", *placement, "--loglevel", "WARNING",
                             "--", "--without-heartbeat", "--without-gossip", "--without-mingle"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def measure(args: argparse.Namespace, setup: dict[str, Any], env: dict[str, str], n: int, logs: Path) -> dict[str, Any]:
    from django.db.models import Count, Max, Min, Sum

    from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunStatus
    from evalhub.runs.services import run_create, run_start

    workers = start_workers(args, env, n, logs)
    try:
        run = run_create(project=setup["project"], suite_version=setup["version"], base_model=setup["base"],
                         adapters=setup["adapters"], generation_config={"max_new_tokens": args.max_new_tokens},
                         force_regenerate=True, name=f"scale-out {n}", actor=setup["actor"])
        started = time.time()
        run_start(run=run, actor=setup["actor"])
        deadline = time.monotonic() + args.timeout
        while Run.objects.get(pk=run.pk).status == RunStatus.RUNNING:
            if time.monotonic() > deadline or workers.poll() is not None:
                tail = (logs / f"workers-{n}.log").read_text()[-3000:]
                raise SystemExit(f"run {run.pk} did not finish with {n} workers\n{tail}")
            time.sleep(0.2)
        run.refresh_from_db()
    finally:
        stop_group(workers, timeout=60)
    outputs = Output.objects.filter(run=run)
    agg = outputs.aggregate(tokens=Sum("output_tokens"), first=Min("created_at"), last=Max("created_at"))
    expected = setup["version"].case_count * len(setup["adapters"])
    keys = outputs.values("adapter_id", "case_id", "sample").annotate(c=Count("id"))
    doubled = sum(1 for k in keys if k["c"] > 1)
    leased_by = set(RunChunk.objects.filter(run=run).values_list("leased_by", flat=True))
    wall = agg["last"].timestamp() - started
    steady = (agg["last"] - agg["first"]).total_seconds()
    tokens = int(agg["tokens"] or 0)
    return {
        "workers": n, "status": run.status, "outputs": outputs.count(), "expected": expected, "doubled": doubled,
        "unfinished_chunks": RunChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).count(),
        "worker_processes_seen": len(leased_by), "tokens": tokens, "wall_s": round(wall, 2),
        "tok_s": round(tokens / wall, 1), "steady_tok_s": round(tokens / steady, 1) if steady > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = sorted({1, *(int(c) for c in args.workers.split(","))})
    recreate_database(args.pg, args.db)
    folder = Path(tempfile.mkdtemp(prefix="evalhub-scale-"))
    env = environment(args, folder / "data")
    os.environ.update(env)
    import django

    django.setup()
    try:
        setup = build_data(args, folder)
        from django.db import connections

        print(f"{args.device}: {setup['version'].case_count} cases x {len(setup['adapters'])} adapters, "
              f"{args.max_new_tokens} new tokens, chunks of {args.chunk_size} outputs; logs in {folder}")
        rows = []
        for n in counts:
            connections.close_all()
            rows.append(measure(args, setup, env, n, folder))
            print(json.dumps(rows[-1]), flush=True)
        one = rows[0]
        print(f"\n{'workers':>7} {'tok/s':>9} {'steady':>9} {'eff':>6} {'eff(steady)':>11}  integrity")
        ok = True
        for row in rows:
            n = row["workers"]
            row["efficiency"] = round(row["tok_s"] / (n * one["tok_s"]), 3)
            row["steady_efficiency"] = (round(row["steady_tok_s"] / (n * one["steady_tok_s"]), 3)
                                        if row["steady_tok_s"] and one["steady_tok_s"] else None)
            intact = (row["status"] == "completed" and row["outputs"] == row["expected"] and not row["doubled"]
                      and not row["unfinished_chunks"])
            ok = ok and intact
            print(f"{n:>7} {row['tok_s']:>9.1f} {row['steady_tok_s'] or 0:>9.1f} {row['efficiency']:>6.3f} "
                  f"{row['steady_efficiency'] or 0:>11.3f}  "
                  + (f"{row['outputs']}/{row['expected']} outputs, one per (case, adapter), none missing"
                     if intact else f"FAILED: {row}"))
        if args.json:
            args.json.write_text(json.dumps({"device": args.device, "rows": rows}, indent=1))
        return 0 if ok else 1
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(args.pg, args.db, drop_only=True)


if __name__ == "__main__":
    sys.exit(main())
