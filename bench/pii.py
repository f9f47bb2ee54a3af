"""PII screening quality: per-class precision and recall on the labelled set in tests/data/pii/.

Runs `metrics.pii.detect_pii_batch` (the screening suites use, default entities and threshold) over
every row of `tests/data/pii/pii_eval.jsonl`, resolves overlapping findings as redaction does, and
scores them against the labelled spans:

- a finding is a true positive when it overlaps a labelled span of the same class;
- a labelled span is found when a finding of its class overlaps it;
- a finding of any class over unlabelled text (or over a span of another class) is a false positive.

Presidio's entity names are folded into evalhub's screening classes by `metrics.pii.screening_class`
(US_SSN, UK_NHS, UK_NINO, ... are NATIONAL_ID). Prints the table, the targets of issue #18 (recall
>= 0.95 for e-mail, phone, date of birth and card number; precision >= 0.9 overall), and every miss
and false positive with --verbose.

    .venv/bin/python bench/pii.py [--verbose] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics.pii import detect_pii_batch, resolve_overlaps, screening_class

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii" / "pii_eval.jsonl"
RECALL_TARGETS = {"EMAIL_ADDRESS": 0.95, "PHONE_NUMBER": 0.95, "DATE_OF_BIRTH": 0.95, "CREDIT_CARD": 0.95}
PRECISION_TARGET = 0.9


def _overlaps(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def score(rows: list[dict], findings: list[list]) -> dict:
    """Per-class counts and the lists of misses and false positives."""
    tp, fp, found, gold = Counter(), Counter(), Counter(), Counter()
    misses, false_pos = [], []
    for row, row_findings in zip(rows, findings, strict=True):
        preds = [
            {"start": f.start, "end": f.end, "label": screening_class(f.entity_type), "score": f.score}
            for f in resolve_overlaps(row_findings)
        ]
        for p in preds:
            if any(_overlaps(p, s) and s["label"] == p["label"] for s in row["spans"]):
                tp[p["label"]] += 1
            else:
                fp[p["label"]] += 1
                false_pos.append((row["id"], p["label"], row["text"][p["start"]:p["end"]], round(p["score"], 2)))
        for s in row["spans"]:
            gold[s["label"]] += 1
            if any(_overlaps(p, s) and s["label"] == p["label"] for p in preds):
                found[s["label"]] += 1
            else:
                misses.append((row["id"], s["label"], row["text"][s["start"]:s["end"]], row["text"]))
    classes = sorted(set(gold) | set(tp) | set(fp))
    table = {
        c: {
            "labelled": gold[c],
            "found": found[c],
            "recall": found[c] / gold[c] if gold[c] else None,
            "predicted": tp[c] + fp[c],
            "precision": tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else None,
        }
        for c in classes
    }
    all_pred = sum(tp.values()) + sum(fp.values())
    overall = {
        "precision": sum(tp.values()) / all_pred if all_pred else None,
        "recall": sum(found.values()) / sum(gold.values()),
    }
    return {"classes": table, "overall": overall, "misses": misses, "false_positives": false_pos}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="list every miss and false positive")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    detect_pii_batch(["warm up the analyzer: Jane Doe"])
    started = time.perf_counter()
    findings = detect_pii_batch([row["text"] for row in rows])
    elapsed = time.perf_counter() - started
    result = score(rows, findings)
    fmt = lambda x: "   -  " if x is None else f"{x:6.3f}"  # noqa: E731
    print(f"{len(rows)} rows, {sum(len(r['spans']) for r in rows)} labelled spans, screened in {elapsed:.1f} s")
    print(f"{'class':<15}{'labelled':>9}{'found':>7}{'recall':>8}{'predicted':>10}{'precision':>10}")
    for c, v in result["classes"].items():
        print(f"{c:<15}{v['labelled']:>9}{v['found']:>7}{fmt(v['recall']):>8}{v['predicted']:>10}{fmt(v['precision']):>10}")
    o = result["overall"]
    print(f"{'overall':<15}{'':>9}{'':>7}{fmt(o['recall']):>8}{'':>10}{fmt(o['precision']):>10}")
    failed = [
        f"recall {c} {result['classes'].get(c, {}).get('recall')} < {t}"
        for c, t in RECALL_TARGETS.items()
        if (result["classes"].get(c, {}).get("recall") or 0) < t
    ]
    if (o["precision"] or 0) < PRECISION_TARGET:
        failed.append(f"precision overall {o['precision']:.3f} < {PRECISION_TARGET}")
    print("targets: " + ("all met" if not failed else "NOT met: " + "; ".join(failed)))
    if args.verbose:
        for m in result["misses"]:
            print("MISS", m)
        for f in result["false_positives"]:
            print("FP  ", f)
    if args.json:
        args.json.write_text(json.dumps({k: result[k] for k in ("classes", "overall")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
