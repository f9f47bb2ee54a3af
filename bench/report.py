"""Benchmark of the go/no-go report on PostgreSQL: 10k cases, 3 adapters, 100k ratings.

It creates its own database (default `evalhub_reportbench`), migrates it, bulk-inserts a run with
outputs and metric scores for every (adapter, case), a pairwise study (candidate and a third adapter
each against the baseline) rated 5 times per task, then times `report_build` against a plain
aggregate query over the same rows (win/tie/loss counts and metric means), in the same process.

    .venv/bin/python bench/report.py                     # the figures in bench/RESULTS.md
    .venv/bin/python bench/report.py --cases 500 --raters 5   # smoke
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pgdb import recreate_database  # noqa: E402  (bench/ is on sys.path: the script's folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--raters", type=int, default=20)
    p.add_argument("--per-task", type=int, default=5, help="ratings per task (2 tasks per case)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="evalhub_reportbench")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--reuse-db",
        action="store_true",
        help="time the report on a database kept by an earlier --keep-db run (no populate; kept after)",
    )
    return p.parse_args(argv)


def populate(args: argparse.Namespace) -> Any:
    """The rows, built in bulk from the tests' shared factories (tests/factories.py)."""
    from django.utils import timezone

    from annotation.models import Assignment, Rating, Task
    from evalhub.accounts.models import Role
    from evalhub.accounts.services import membership_set, project_create, user_create
    from evalhub.runs.models import AdapterRole, MetricScore, Output
    from evalhub.suites.models import Case
    from tests.factories import (
        AdapterFactory,
        AssignmentFactory,
        BaseModelFactory,
        CaseFactory,
        MetricScoreFactory,
        OutputFactory,
        RatingFactory,
        RunAdapterFactory,
        RunFactory,
        StudyFactory,
        SuiteFactory,
        SuiteVersionFactory,
        TaskFactory,
    )

    rng = random.Random(0)
    project = project_create(name="Report bench")
    base_model = BaseModelFactory(project=project, name="base")
    adapters = [
        AdapterFactory(project=project, base_model=base_model, name=name)
        for name in ("baseline", "candidate", "challenger")
    ]
    version = SuiteVersionFactory(suite=SuiteFactory(project=project, name="bench"))
    tags = ["finance", "clinic", "legal", "support"]
    cases = Case.objects.bulk_create(
        [
            CaseFactory.build(
                version=version,
                position=i,
                tags=[tags[i % 4]],
                origin="synthetic" if i % 3 == 0 else "real",
                split="heldout" if i % 10 == 0 else "eval",
                category="jailbreak" if i % 50 == 0 else "",
                expected=[{"type": "must_refuse"}] if i % 50 == 0 else [],
            )
            for i in range(args.cases)
        ],
        batch_size=2000,
    )
    run = RunFactory(project=project, name="bench", suite_version=version, base_model=base_model)
    for i, adapter in enumerate(adapters):
        RunAdapterFactory(
            run=run, adapter=adapter, role=AdapterRole.BASELINE if i == 0 else AdapterRole.CANDIDATE
        )
    outputs = Output.objects.bulk_create(
        [
            OutputFactory.build(
                run=run,
                adapter=adapter,
                case=case,
                text=("## Summary\n" if k == 2 and i % 2 else "")
                + " ".join(["word"] * (30 + (i * 7 + k * 13) % 60)),
                output_tokens=30 + (i * 7 + k * 13) % 60,
                cache_key=f"{k}-{i}",
            )
            for k, adapter in enumerate(adapters)
            for i, case in enumerate(cases)
        ],
        batch_size=2000,
    )
    out = {(o.adapter_id, o.case_id): o for o in outputs}
    scores = []
    for k, adapter in enumerate(adapters):
        for case in cases:
            o = out[(adapter.pk, case.pk)]
            for metric in ("rougeL", "bleu", "chrf", "embedding_similarity"):
                scores.append(
                    MetricScoreFactory.build(
                        run=run,
                        adapter=adapter,
                        case=case,
                        output=o,
                        metric=metric,
                        value=rng.random() * 0.5 + 0.05 * k,
                    )
                )
            if case.category:
                scores.append(
                    MetricScoreFactory.build(
                        run=run,
                        adapter=adapter,
                        case=case,
                        output=o,
                        metric="checks",
                        passed=rng.random() < 0.9,
                    )
                )
    MetricScore.objects.bulk_create(scores, batch_size=5000)
    raters = []
    for r in range(args.raters):
        user = user_create(username=f"rater{r}", password="correct-horse-battery")  # noqa: S106 - throwaway bench database
        membership_set(project=project, user=user, role=Role.RATER)
        raters.append(user)
    study = StudyFactory(project=project, run=run, name="bench", baseline=adapters[0])
    tasks = []
    for i, case in enumerate(cases):
        for j, other in enumerate(adapters[1:]):
            a, b = out[(adapters[0].pk, case.pk)], out[(other.pk, case.pk)]
            if (i + j) % 2:
                a, b = b, a
            tasks.append(
                TaskFactory.build(
                    study=study,
                    case=case,
                    output_a=a,
                    output_b=b,
                    required_ratings=args.per_task,
                    rating_count=args.per_task,
                    order_key=f"{i:08d}{j}",
                )
            )
    tasks = Task.objects.bulk_create(tasks, batch_size=2000)
    now = timezone.now()
    assignments, ratings = [], []
    for t in tasks:
        for rater in rng.sample(raters, args.per_task):
            pref = rng.choices(["A", "B", "tie", "both_bad"], weights=[4, 5, 2, 1])[0]
            assignments.append(AssignmentFactory.build(task=t, study=study, rater=rater, leased_at=now))
            ratings.append(
                {
                    "task": t,
                    "rater": rater,
                    "preference": pref,
                    "scores": {
                        c: {"A": rng.randint(2, 5), "B": rng.randint(2, 5)}
                        for c in ("factual_accuracy", "completeness", "conciseness")
                    },
                    "hallucination": {
                        "A": {"flagged": rng.random() < 0.1, "spans": []},
                        "B": {"flagged": rng.random() < 0.08, "spans": []},
                    },
                }
            )
    made = Assignment.objects.bulk_create(assignments, batch_size=5000)
    Rating.objects.bulk_create(
        [
            RatingFactory.build(assignment=a, time_on_task_ms=30000, **r)
            for a, r in zip(made, ratings, strict=True)
        ],
        batch_size=5000,
    )
    return run, adapters, len(ratings)


def plain_aggregate(run: Any) -> Any:
    """What a hand-written dashboard query would do: counts of preferences and metric means."""
    from django.db.models import Avg, Count

    from annotation.models import Rating
    from evalhub.runs.models import MetricScore

    prefs = list(Rating.objects.filter(task__study__run=run).values("preference").annotate(n=Count("pk")))
    means = list(
        MetricScore.objects.filter(run=run).values("adapter_id", "metric").annotate(mean=Avg("value"))
    )
    return prefs, means


def mc_summary(document: Any) -> str:
    """How the report's bootstrap intervals stand against the Monte-Carlo bound (schema mc_se_*)."""
    found: list[tuple[float, float, float]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "mc_se_low" in node and node.get("ci_low") is not None and node.get("ci_high") is not None:
                found.append(
                    (node["ci_high"] - node["ci_low"], node["mc_se_low"] or 0.0, node["mc_se_high"] or 0.0)
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    if not found:
        return "no interval reports a Monte-Carlo error"
    ratios = sorted(max(lo, hi) / width for width, lo, hi in found if width > 0)
    within = sum(r <= 0.01 for r in ratios)
    return (
        f"{len(found)} intervals report a Monte-Carlo error; {within} of {len(ratios)} with a width are "
        f"within 1% of it, worst {ratios[-1]:.1%}, median {ratios[len(ratios) // 2]:.2%}"
    )


@contextmanager
def bench_rows(args: argparse.Namespace) -> Iterator[tuple[Any, list[Any], int]]:
    """The benchmark's rows in a migrated database of their own, for the length of the block: the run,
    its adapters (baseline, candidate, challenger) and how many ratings were inserted (0 when
    ``--reuse-db`` times a database kept by an earlier ``--keep-db`` run). The database is dropped
    afterwards unless kept. Shared by bench/report.py and bench/rater_quality.py."""
    if not args.reuse_db:
        recreate_database(args.pg, args.db)
    os.environ["DATABASE_URL"] = f"{args.pg}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django

    django.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        if args.reuse_db:
            from evalhub.catalog.models import Adapter
            from evalhub.runs.models import Run

            run = Run.objects.get(name="bench")
            adapters = [Adapter.objects.get(name=name) for name in ("baseline", "candidate", "challenger")]
            n_ratings = 0
        else:
            run, adapters, n_ratings = populate(args)
            print(
                f"populated {args.cases} cases x 3 adapters, {n_ratings} ratings in "
                f"{time.perf_counter() - started:.1f} s"
            )
        yield run, adapters, n_ratings
    finally:
        if not args.keep_db and not args.reuse_db:
            from django.db import connections

            connections.close_all()
            recreate_database(args.pg, args.db, drop_only=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bench_rows(args) as (run, adapters, _):
        from evalhub.reports.services import report_build

        report_times, plain_times, report_cpu = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            plain_aggregate(run)
            plain_times.append(time.perf_counter() - t)
            t, cpu = time.perf_counter(), time.process_time()
            report = report_build(run=run, candidate=adapters[1], baseline=adapters[0])
            report_times.append(time.perf_counter() - t)
            # This process's CPU time: less disturbed than wall time when the box is shared.
            report_cpu.append(time.process_time() - cpu)
        print(
            f"report_build: median {statistics.median(report_times):.2f} s (runs: "
            f"{', '.join(f'{x:.2f}' for x in report_times)}); plain aggregate: median "
            f"{statistics.median(plain_times):.3f} s; ratio {statistics.median(report_times) / statistics.median(plain_times):.1f}x"
        )
        print(
            f"report_build CPU time of this process: median {statistics.median(report_cpu):.2f} s "
            f"(runs: {', '.join(f'{x:.2f}' for x in report_cpu)})"
        )
        print(
            f"report: {report.counts.pair_ratings} candidate-vs-baseline ratings, win rate (ties half) "
            f"{report.win_rate.ties_as_half.rate:.3f}, {len(report.metrics)} metrics, "
            f"{len(report.win_rate_by_slice)} slices, leaderboard "
            f"{'yes' if report.leaderboard.bradley_terry is not None else 'no'}"
        )
        print(mc_summary(report.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
