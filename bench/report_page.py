"""Benchmark of the report page on the embedded default: a demo-sized run on SQLite, the report
cache in files (settings.CACHES["reports"]), one process, as `make demo` serves it.

Times, through Django's test client as a lead: the first visit (the "building" page), the first
poll of state.json (which builds the report in process, since there is no broker), then the page
and each plot answered from the cache. The baseline in the same run is `report_build` itself,
which every visit paid before the cache (the page, and each of its four plots again).

    .venv/bin/python bench/report_page.py                 # the figures in bench/RESULTS.md
    .venv/bin/python bench/report_page.py --cases 12      # smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PLOTS = ("win-rates", "criteria", "slices", "metric-vs-human")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=36, help="cases per adapter (the demo has 24 + adversarial)")
    p.add_argument("--raters", type=int, default=3, help="ratings per task")
    p.add_argument("--repeat", type=int, default=5, help="cached visits to time")
    p.add_argument("--hash-ratings", type=int, default=100_000, help="ratings for the key's hash at scale")
    return p.parse_args(argv)


def _metric(name: str) -> Callable[[str, int], float]:
    """Values that differ by metric, adapter and case (so deltas and slices differ)."""

    def value(adapter: str, case: int) -> float:
        return 0.2 + 0.01 * ((case * (3 + len(name)) + 7 * ord(adapter[-1])) % 50)

    return value


def populate(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Four adapters (baseline, candidate and two more rated against the baseline), four metrics,
    adversarial checks on every sixth case: the demo's shape."""
    from evalhub.accounts.models import Role
    from evalhub.accounts.services import membership_set, project_create, user_create
    from tests.reports.factories import build_run

    project = project_create(name="Report page bench")
    lead = user_create(username="bench-lead", password="correct-horse-battery")  # noqa: S106  (a throwaway database)
    membership_set(project=project, user=lead, role=Role.LEAD)
    built = build_run(
        project,
        n_cases=args.cases,
        adapters=("v1", "v2", "tone", "bad"),
        n_raters=args.raters,
        preference=lambda i, r: ("candidate", "baseline", "tie", "candidate", "both_bad")[(i + r) % 5],
        scores=lambda i, r: (3 + (i + r) % 3, 2 + (i * 7 + r) % 4),
        hallucination=lambda i, r: ((i + r) % 9 == 0, (i * 5 + r) % 4 == 0),
        metrics={m: _metric(m) for m in ("rouge1", "rougeL", "bleu", "chrf")},
        checks=lambda k, i: (i + len(k)) % 3 != 0,
        categories=lambda i: "jailbreak" if i % 6 == 0 else "",
        gold_cases=2,
    )
    return project, built.run, lead


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="evalhub-report-page-bench-"))
    os.environ["EVALHUB_DATA_DIR"] = str(data)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CACHE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from evalhub.reports.services import report_build, report_key

    call_command("migrate", verbosity=0)
    project, run, lead = populate(args)
    print(
        f"data: {data} · database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} · "
        f"report cache {settings.CACHES['reports']['BACKEND'].rsplit('.', 1)[-1]}"
    )
    web = Client(SERVER_NAME="localhost")
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{run.pk}/report/"

    baseline = [timed(lambda: report_build(run=run))[0] for _ in range(2)]
    first_page, page = timed(lambda: web.get(base))
    assert b"Building the report" in page.content, page.status_code
    # The first request of the process pays Django's warm-up: another key's building page shows
    # the steady cost.
    other_page, page = timed(lambda: web.get(f"{base}?exclude_below=0.5"))
    assert b"Building the report" in page.content, page.status_code
    build, state = timed(lambda: web.get(f"{base}state.json").json())
    assert state["ready"], state
    cached_pages = []
    for _ in range(args.repeat):
        seconds, page = timed(lambda: web.get(base))
        assert page.status_code == 200 and b'id="decision"' in page.content
        cached_pages.append(seconds)
    plots = [timed(lambda n=name: web.get(f"{base}plot/{n}.png"))[0] for name in PLOTS]
    plots_again = [timed(lambda n=name: web.get(f"{base}plot/{n}.png"))[0] for name in PLOTS]
    keying = statistics.median([timed(lambda: report_key(run=run))[0] for _ in range(args.repeat)])
    warm = statistics.median(cached_pages)
    plain = statistics.median(baseline)
    from annotation.models import Rating

    ratings = Rating.objects.filter(task__study__run=run).count()
    print(f"{ratings} ratings over {args.cases} cases, 4 adapters")
    print(
        f"report_build (the old cost of every visit): median {plain:.2f} s ({', '.join(f'{x:.2f}' for x in baseline)})"
    )
    print(
        f"first visit, building page: {first_page * 1000:.0f} ms (first request of the process); "
        f"another report's building page {other_page * 1000:.0f} ms"
    )
    print(f"first poll, builds and caches: {build:.2f} s")
    print(
        f"cached page: median {warm * 1000:.0f} ms over {args.repeat} visits "
        f"({', '.join(f'{x * 1000:.0f}' for x in cached_pages)}); ratio to report_build {plain / warm:.1f}x faster"
    )
    print(f"of which fetching the input rows and hashing them (the cache key): median {keying * 1000:.0f} ms")
    for title, times in (("first drawn", plots), ("cached", plots_again)):
        shown = ", ".join(f"{n} {t * 1000:.0f} ms" for n, t in zip(PLOTS, times, strict=True))
        print(f"plots {title}: {shown}")
    hash_at_scale(run, args.hash_ratings)
    return 0


def hash_at_scale(run: Any, n: int) -> None:
    """The cache key's hash runs on every visit: time it on ``n`` ratings (the demo's tiled, new
    ids), against hashing the snapshot's JSON form of the same rows."""
    import dataclasses

    from evalhub.reports.selectors import RatingColumns
    from evalhub.reports.services import report_input_hash, report_key
    from evalhub.reports.snapshots import content_hash, rows_dump

    inp = report_key(run=run).inp
    dicts = inp.rows.ratings.to_dicts()
    tiled = [{**d, "task": d["task"] + k * 10**6} for k in range(n // len(dicts) + 1) for d in dicts][:n]
    big = dataclasses.replace(
        inp, rows=dataclasses.replace(inp.rows, ratings=RatingColumns.from_dicts(tiled))
    )
    columns, _ = timed(lambda: report_input_hash(big))
    as_json, _ = timed(lambda: content_hash(rows_dump(big.rows)))
    print(
        f"input hash over {n:,} ratings: {columns * 1000:.0f} ms on the columns; the snapshot JSON form "
        f"would take {as_json * 1000:.0f} ms ({as_json / columns:.0f}x)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
