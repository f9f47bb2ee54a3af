"""Benchmark of the report's rater quality section on PostgreSQL, on bench/report.py's rows
(10k cases, 3 adapters, 100k ratings from 20 raters).

The rows are fetched once; then, in the same process, it times the whole report computed from them
(`report_from_input`, the baseline), the rater quality measures alone (`compute._quality`), and the
report re-run without flagged raters (`exclude_flagged=True`), and prints each as a share of the
baseline.

    .venv/bin/python bench/rater_quality.py                      # 100k ratings
    .venv/bin/python bench/rater_quality.py --cases 500 --raters 5   # smoke
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from report import bench_rows, parse_args  # noqa: E402  (bench/ is on sys.path: the script's folder)


def _median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.db = args.db.replace("reportbench", "raterqbench")
    with bench_rows(args) as (run, adapters, _):
        from evalhub.reports import compute
        from evalhub.reports.services import _report_input
        from metrics.rater_quality import QualityRules

        inp = _report_input(
            run=run,
            candidate=adapters[1],
            baseline=adapters[0],
            study=None,
            exclude_raters_below=None,
            resamples=2000,
        )
        rc = inp.rows.ratings
        gold = compute._gold(rc, inp.rows.raters)
        report_s, report_runs = _median_time(lambda: compute.report_from_input(inp), args.repeat)
        quality_s, _ = _median_time(lambda: compute._quality(rc, gold, QualityRules()), max(args.repeat, 5))
        excluded = dataclasses.replace(inp, exclude_flagged=True)
        rerun_s, _ = _median_time(lambda: compute.report_from_input(excluded), args.repeat)
        report = compute.report_from_input(inp)
        flagged = [r.rater for r in report.rater_quality.flagged] if report.rater_quality else []
        print(
            f"report_from_input: median {report_s:.2f} s (runs: {', '.join(f'{x:.2f}' for x in report_runs)})\n"
            f"rater quality measures alone: median {quality_s * 1000:.1f} ms = {quality_s / report_s:.1%} of the report\n"
            f"report with exclude_flagged: median {rerun_s:.2f} s = {rerun_s / report_s:.2f}x the report "
            f"({len(flagged)} of {len(report.rater_quality.raters) if report.rater_quality else 0} raters flagged)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
