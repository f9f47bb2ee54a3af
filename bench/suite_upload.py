"""Suite upload benchmark: peak memory of stage+validate against file size, and PII-scan throughput.

Generates CSV and JSONL suites of 10, 50 and 100 MB, then scans each in a fresh process (the same
`scan_file` pass the web preview, API and CLI use; PII scan off so that the parse itself is measured)
and reports the peak RSS above an idle process's (the baseline, measured in the same run), the ratio
to the file size, and rows/s. A naive reader that loads the whole file is measured for comparison.
PII-scan throughput is measured separately on a fixture suite: the full spaCy pipeline (the baseline),
without the parser (metrics.pii.SPACY_EXCLUDE), and trimmed (also lemmas only where context words
are looked for, metrics.pii.LEMMA_PIPES), with a check that all three find the same.

    .venv/bin/python bench/suite_upload.py [--sizes 10,50,100] [--pii-rows 300] [--keep]
    .venv/bin/python bench/suite_upload.py --pii-only   # the PII screening comparison alone
    .venv/bin/python bench/suite_upload.py --web-rss    # a web process's RSS after staging, by mode
    .venv/bin/python bench/suite_upload.py --hostile    # issue 14's resource cases in the sandbox
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = [
    "revenue",
    "margin",
    "quarter",
    "guidance",
    "customer",
    "patient",
    "visit",
    "dose",
    "follow-up",
    "operating",
    "board",
    "dividend",
    "analysts",
    "demand",
    "region",
    "pressure",
    "supply",
    "costs",
    "outlook",
    "headcount",
    "review",
    "prescribed",
    "vitals",
]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # production-like: no SQL kept per query
    settings.EVALHUB_SUITE_MAX_ROWS = 10_000_000
    if os.environ.get("EVALHUB_SUITE_BENCH_NO_PII"):
        settings.EVALHUB_SUITE_PII_SCAN = False
    settings.EVALHUB_SUITE_MAX_FILE_BYTES = 1 << 40


def make_case(i: int, rng: random.Random) -> dict[str, object]:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120)))
    return {
        "id": f"case-{i:08d}",
        "input": f"Notes {i}: {text}.",
        "reference": " ".join(rng.choice(WORDS) for _ in range(25)),
        "tags": ["finance", "earnings"] if i % 2 else ["clinical"],
        "origin": "synthetic" if i % 10 == 0 else "real",
        "generator": "template-v1" if i % 10 == 0 else "",
        "split": "heldout" if i % 5 == 1 else "eval",
        "slices": {"domain": "finance" if i % 2 else "clinical", "length": "short"},
        "category": "",
        "expected": [{"type": "max_length", "value": 600}] if i % 7 == 0 else [],
    }


def generate(folder: Path, megabytes: int) -> dict[str, Path]:
    rng = random.Random(megabytes)
    target = megabytes * 1_000_000
    csv_path = folder / f"suite_{megabytes}mb.csv"
    jsonl_path = folder / f"suite_{megabytes}mb.jsonl"
    with csv_path.open("w", newline="", encoding="utf-8") as c, jsonl_path.open("w", encoding="utf-8") as j:
        writer = csv.writer(c)
        writer.writerow(
            [
                "id",
                "input",
                "reference",
                "tags",
                "origin",
                "generator",
                "split",
                "slices",
                "category",
                "expected",
            ]
        )
        i = 0
        while c.tell() < target:
            case = make_case(i, rng)
            writer.writerow(
                [
                    case["id"],
                    case["input"],
                    case["reference"],
                    ";".join(case["tags"]),
                    case["origin"],  # type: ignore[arg-type]
                    case["generator"],
                    case["split"],
                    json.dumps(case["slices"]),
                    case["category"],
                    json.dumps(case["expected"]) if case["expected"] else "",
                ]
            )
            j.write(json.dumps(case) + "\n")
            i += 1
    return {"csv": csv_path, "jsonl": jsonl_path}


def child(mode: str, path: str) -> None:
    """Run in a fresh process; print one JSON line."""
    setup_django()
    started = time.perf_counter()
    rows = 0
    if mode == "idle":
        import evalhub.suites.services  # noqa: F401  (the same modules loaded as a scan)
    elif mode == "scan":
        from evalhub.suites.services import scan_file

        report = scan_file(path=Path(path), pii="off")
        rows = report.valid_rows
        assert report.problem_count == 0, report.problems[:3]
    elif mode == "import":
        # The whole write path (validate, bulk insert in batches, diff, audit) into a scratch SQLite file.
        from django.core.management import call_command

        from evalhub.accounts.services import project_create
        from evalhub.suites.services import suite_import_file

        call_command("migrate", verbosity=0)
        project = project_create(name="Bench")
        started = time.perf_counter()
        version = suite_import_file(project=project, name="bench", path=path)
        rows = version.case_count
    elif mode == "stage":
        # What a web request does when a file is staged: the preview's pass (screening its first
        # rows for PII only where tasks run in process: the embedded mode).
        from evalhub.suites.services.uploads import ImportOptions, _preview_scan, screening_in_process

        report = _preview_scan(path=Path(path), filename=Path(path).name, options=ImportOptions())
        rows = report.valid_rows
        print(
            json.dumps(
                {"screened_here": screening_in_process(), "presidio": "presidio_analyzer" in sys.modules}
            ),
            file=sys.stderr,
        )
    elif mode == "naive":
        # What a non-streaming importer does: read the whole file, then parse it into a list.
        data = Path(path).read_bytes().decode("utf-8")
        if path.endswith(".csv"):
            records = list(csv.DictReader(data.splitlines()))
        else:
            records = [json.loads(line) for line in data.splitlines() if line]
        rows = len(records)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_kb / 1024}))


def run_child(mode: str, path: Path | str, env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "EVALHUB_SUITE_BENCH_NO_PII": "1", **(env or {})},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def web_rss(fixture: Path) -> None:
    """Peak RSS of a fresh process staging a file with personal data: the embedded mode (tasks in
    process, which is what every web request did before screening moved to workers) against a
    deployment with workers (CELERY_BROKER_URL set), in the same run."""
    with tempfile.TemporaryDirectory(prefix="evalhub-web-rss-") as media:
        path = Path(media) / "pii.jsonl"
        path.write_text("".join(fixture.read_text(encoding="utf-8").splitlines(keepends=True)[:200]))
        env = {"EVALHUB_SUITE_BENCH_NO_PII": "", "EVALHUB_MEDIA_DIR": media}
        idle = run_child("idle", "-", env=env)
        embedded = run_child("stage", path, env={**env, "CELERY_BROKER_URL": ""})
        workers = run_child("stage", path, env={**env, "CELERY_BROKER_URL": "memory://"})
    print("| web process | peak RSS MB | above an idle process MB |")
    print("|---|---:|---:|")
    for label, result in (
        ("idle (Django set up)", idle),
        ("embedded mode: screens in the request", embedded),
        ("with workers: screening queued", workers),
    ):
        print(f"| {label} | {result['peak_mb']:.0f} | {max(result['peak_mb'] - idle['peak_mb'], 0.0):.0f} |")


def hostile() -> None:
    """Each resource case of issue 14 read in the sandbox: its outcome, CPU seconds and peak memory."""
    setup_django()
    from django.conf import settings

    from evalhub.suites.services import scan_file
    from tests.data import make_files

    settings.EVALHUB_SUITE_SANDBOX_BYTES = 0
    settings.EVALHUB_SUITE_MAX_ROWS = 100_000
    cases = {
        "2 MB of blank lines (.jsonl)": ("blank.jsonl", make_files.blank_lines),
        "10 MB YAML, 5M scalars": ("scalars.yaml", make_files.many_yaml_scalars),
        "XLSX, 1.1M shared strings": ("strings.xlsx", make_files.many_shared_strings),
        "XLSX, a case at row 1,000,000": ("sparse.xlsx", make_files.sparse_rows),
    }
    print("| case | outcome | CPU s | peak MB above start | wall s |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="evalhub-hostile-") as folder:
        settings.MEDIA_ROOT = settings.EVALHUB_SCRATCH_DIR = Path(folder)
        for label, (name, build) in cases.items():
            path = Path(folder) / name
            path.write_bytes(build())
            started = time.perf_counter()
            report = scan_file(path=path, pii="off")
            outcome = report.problems[0].problem[:70] if report.problems else f"{report.valid_rows} rows"
            print(
                f"| {label} | {outcome} | {report.cpu_seconds:.2f} | {report.peak_memory_bytes / 2**20:.0f} "
                f"| {time.perf_counter() - started:.1f} |",
                flush=True,
            )


def pii_throughput(rows: int, fixture: Path, rounds: int = 2) -> dict[str, float]:
    """Screen `rows` rows of `fixture` (input and reference, cycled) with the full spaCy pipeline (the
    baseline: what metrics/pii.py ran before), without the parser, and trimmed (what production runs);
    all in this process, each after a warm-up. Their findings must be identical."""
    setup_django()
    from metrics.pii import SPACY_EXCLUDE, build_analyzer, detect_pii_batch

    source = [json.loads(line) for line in fixture.open(encoding="utf-8")]
    texts = [
        text
        for i in range(rows)
        for text in (source[i % len(source)]["input"], source[i % len(source)]["reference"])
    ]
    chars = sum(len(t) for t in texts)
    out: dict[str, float] = {"rows": rows, "texts": len(texts)}
    findings = {}
    analyzers = {}
    variants = {"full": ((), False), "no parser": (SPACY_EXCLUDE, False), "trimmed": (SPACY_EXCLUDE, True)}
    for label, (exclude, lazy) in variants.items():
        started = time.perf_counter()
        analyzers[label] = build_analyzer(spacy_exclude=exclude, lazy_lemmas=lazy)
        detect_pii_batch(texts[:20], analyzer=analyzers[label])  # load spaCy's weights and warm up
        out[f"{label}_load_s"] = time.perf_counter() - started
    # The machine is shared: alternate the two, keep each one's best round, and report CPU seconds
    # (this process's, all threads) beside the wall clock, which other jobs inflate.
    for _round in range(rounds):
        for label, analyzer in analyzers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            found = detect_pii_batch(texts, analyzer=analyzer, batch_size=64)  # as _pii_screen calls it
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if wall < out.get(f"{label}_seconds", float("inf")):
                out[f"{label}_seconds"] = wall
                out[f"{label}_rows_per_s"] = rows / wall
                out[f"{label}_kb_per_s"] = chars / wall / 1e3
            out[f"{label}_cpu_rows_per_s"] = max(out.get(f"{label}_cpu_rows_per_s", 0.0), rows / cpu)
            findings[label] = [
                [(f.entity_type, f.start, f.end, round(f.score, 6)) for f in fs] for fs in found
            ]
    out["identical"] = float(findings["full"] == findings["trimmed"] == findings["no parser"])
    out["rows_with_pii"] = float(
        sum(1 for i in range(rows) if findings["trimmed"][2 * i] or findings["trimmed"][2 * i + 1])
    )
    out["findings"] = float(sum(len(fs) for fs in findings["trimmed"]))
    return out


def print_pii(pii: dict[str, float], fixture: Path) -> None:
    print(
        f"PII screening, {fixture.name}: {pii['rows']:.0f} rows ({pii['texts']:.0f} texts), batches of 64 texts"
    )
    print()
    print("| spaCy pipeline | load s | screen s (best) | rows/s | kB/s of text | rows per CPU second |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in ("full", "no parser", "trimmed"):
        print(
            f"| {label} | {pii[f'{label}_load_s']:.1f} | {pii[f'{label}_seconds']:.1f} "
            f"| {pii[f'{label}_rows_per_s']:.1f} | {pii[f'{label}_kb_per_s']:.1f} "
            f"| {pii[f'{label}_cpu_rows_per_s']:.1f} |"
        )
    print()
    print(
        f"trimmed / full: {pii['trimmed_rows_per_s'] / pii['full_rows_per_s']:.2f}x wall, "
        f"{pii['trimmed_cpu_rows_per_s'] / pii['full_cpu_rows_per_s']:.2f}x CPU; findings identical: "
        f"{'yes' if pii['identical'] else 'NO'} ({pii['findings']:.0f} findings in {pii['rows_with_pii']:.0f} rows); "
        f"100,000 such rows: about {100_000 / pii['trimmed_rows_per_s'] / 60:.0f} min."
    )


def mb_of(path: Path) -> float:
    return path.stat().st_size / 1e6


def import_into_scratch_db(folder: Path, path: Path) -> dict[str, float]:
    db = folder / "scratch.sqlite3"
    try:
        return run_child(
            "import", path, env={"DATABASE_URL": f"sqlite:///{db}", "EVALHUB_DATA_DIR": str(folder)}
        )
    finally:
        for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(folder / "media", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100", help="File sizes in MB.")
    parser.add_argument("--pii-rows", type=int, default=300)
    parser.add_argument(
        "--pii-fixture",
        default=str(REPO / "fixtures" / "suites" / "summaries.jsonl"),
        help="JSONL rows to screen.",
    )
    parser.add_argument("--pii-only", action="store_true", help="Only the PII screening comparison.")
    parser.add_argument("--no-naive", action="store_true", help="Skip the whole-file reader comparison.")
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    parser.add_argument(
        "--web-rss",
        action="store_true",
        help="Only the web process's RSS after staging a file with PII: embedded mode vs with workers.",
    )
    parser.add_argument("--hostile", action="store_true", help="Only the hostile resource cases, sandboxed.")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.web_rss:
        web_rss(Path(args.pii_fixture))
        return
    if args.hostile:
        hostile()
        return
    if args.pii_only:
        print_pii(pii_throughput(args.pii_rows, Path(args.pii_fixture)), Path(args.pii_fixture))
        return

    folder = Path(tempfile.mkdtemp(prefix="evalhub-suite-bench-"))
    try:
        baseline = run_child("idle", "-")
        imports: list[tuple[int, float, dict[str, float]]] = []
        print(f"baseline: an idle process with Django set up peaks at {baseline['peak_mb']:.0f} MB RSS")
        print()
        print(
            "| format | file MB | rows | scan s | rows/s | peak RSS MB | above baseline MB | ratio to file | whole-file reader above baseline MB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in [int(s) for s in args.sizes.split(",")]:
            files = generate(folder, size)
            for fmt, path in files.items():
                mb = path.stat().st_size / 1e6
                scan = run_child("scan", path)
                above = max(scan["peak_mb"] - baseline["peak_mb"], 0.0)
                naive = (
                    ""
                    if args.no_naive
                    else f"{run_child('naive', path)['peak_mb'] - baseline['peak_mb']:.0f}"
                )
                print(
                    f"| {fmt} | {mb:.1f} | {scan['rows']:,} | {scan['seconds']:.1f} | {scan['rows'] / scan['seconds']:,.0f} "
                    f"| {scan['peak_mb']:.0f} | {above:.0f} | {above / mb:.2f} | {naive} |",
                    flush=True,
                )
            imports.append((size, mb_of(files["csv"]), import_into_scratch_db(folder, files["csv"])))
            for path in files.values():
                if not args.keep:
                    path.unlink()
        print()
        print(
            "Full import (validate + bulk insert in batches of 500 + diff + audit) of the CSV into a scratch SQLite file:"
        )
        print()
        print("| file MB | rows | import s | rows/s | peak RSS above baseline MB |")
        print("|---:|---:|---:|---:|---:|")
        for _size, mb, result in imports:
            print(
                f"| {mb:.1f} | {result['rows']:,} | {result['seconds']:.1f} | {result['rows'] / result['seconds']:,.0f} "
                f"| {result['peak_mb'] - baseline['peak_mb']:.0f} |"
            )
        print()
        print_pii(pii_throughput(args.pii_rows, Path(args.pii_fixture)), Path(args.pii_fixture))
    finally:
        if args.keep:
            print(f"files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
