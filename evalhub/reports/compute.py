"""The comparison report: statistics over a run's metric scores and ratings, as a JSON-ready dict.

All statistics come from `metrics/` (stats, agreement, ranking); this module only groups the rows
into the shapes those functions take. Bootstraps are seeded, so the same rows give the same report.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from evalhub.reports.selectors import ReportRows
from metrics.agreement import (
    fleiss_kappa,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    ratings_matrix,
)
from metrics.ranking import (
    LENGTH_ONLY,
    bradley_terry,
    controlled_win_rate,
    style_controlled_bradley_terry,
    style_features,
)
from metrics.stats import mean_ci, paired_bootstrap, rank_correlation, wilson_interval, win_rate

SCHEMA = 1
PREFERENCE_CATEGORIES = ("A", "tie", "both_bad", "B")
# Per-case metrics whose paired deltas the report shows; others found in the rows are added after.
METRIC_ORDER = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "bleu",
    "chrf",
    "embedding_similarity",
    "length_ratio",
    "compression_ratio",
    "perplexity",
)
CHECKS_METRIC = "checks"
MIN_SLICE_CASES = 5
# Bootstrap cost grows with n x resamples. Past these budgets the resample count shrinks (never
# below BOOT_FLOOR); every result reports the count it used. At such n the percentile interval is
# close to normal and its Monte Carlo error is a small fraction of its width.
BOOT_DRAWS = 1_000_000
BOOT_FLOOR = 200
RANK_DRAWS = 100_000
RANK_FLOOR = 50


def boot_resamples(n: int, wanted: int) -> int:
    return max(min(wanted, BOOT_FLOOR), min(wanted, BOOT_DRAWS // max(n, 1)))


STYLE_DRAWS = 3_000_000
STYLE_FLOOR = 30


def style_resamples_for(n_battles: int, wanted: int) -> int:
    """Each style-control resample refits the model on every battle row, so past the budget the
    count shrinks (never below STYLE_FLOOR); the intervals are then rough, and say how many."""
    return max(min(wanted, STYLE_FLOOR), min(wanted, STYLE_DRAWS // max(n_battles, 1)))


def rank_resamples(n: int, wanted: int = 200) -> int:
    """Rank-correlation bootstraps refit per resample; past the budget the interval is left out
    (resamples 0) and the coefficient keeps SciPy's p-value."""
    count = min(wanted, RANK_DRAWS // max(n, 1))
    return count if count >= RANK_FLOOR else 0


def case_slices(case: dict[str, Any]) -> list[str]:
    """The slice names a case belongs to: tags, origin, the held-out real split, slice columns, category."""
    names = [f"tag:{t}" for t in case["tags"]]
    names.append(f"origin:{case['origin']}")
    if case["split"] == "heldout":
        names.append("split:heldout")
        if case["origin"] == "real":
            names.append("heldout:real")
    for key, value in sorted((case.get("slices") or {}).items()):
        names.append(f"{key}:{value}")
    if case["category"]:
        names.append(f"category:{case['category']}")
    return names


def _flagged(entry: Any) -> bool | None:
    if isinstance(entry, dict):
        return bool(entry.get("flagged"))
    if entry is None:
        return None
    return bool(entry)


def _rate(successes: float, n: int) -> dict[str, Any]:
    if n == 0:
        return {"rate": None, "ci_low": None, "ci_high": None, "n": 0}
    low, high = wilson_interval(successes, n)
    return {"rate": successes / n, "ci_low": float(low), "ci_high": float(high), "n": n}


def _gold_value(rating: dict[str, Any], answer: dict[str, Any]) -> tuple[Any, ...]:
    """What the rater answered on a gold task, in the parts the gold answer fixes."""
    parts: list[Any] = []
    if "preference" in answer:
        parts.append(rating["preference"])
    for side in sorted(answer.get("hallucination", {})):
        parts.append(bool(_flagged(rating["hallucination"].get(side))))
    return tuple(parts)


def _gold_expected(answer: dict[str, Any]) -> tuple[Any, ...]:
    parts: list[Any] = []
    if "preference" in answer:
        parts.append(answer["preference"])
    for side in sorted(answer.get("hallucination", {})):
        parts.append(bool(answer["hallucination"][side]))
    return tuple(parts)


class _Pairs:
    """Candidate-vs-baseline pair ratings, oriented so that side "c" is the candidate."""

    def __init__(
        self, ratings: list[dict[str, Any]], output_adapter: dict[int, int], cand: int, base: int
    ) -> None:
        self.rows: list[dict[str, Any]] = []
        for r in ratings:
            if r["gold"] or not r["b"]:
                continue
            adapter_a, adapter_b = output_adapter.get(r["a"]), output_adapter.get(r["b"])
            if {adapter_a, adapter_b} != {cand, base}:
                continue
            cside, bside = ("A", "B") if adapter_a == cand else ("B", "A")
            pref = r["preference"]
            outcome = None
            if pref == cside:
                outcome = "win"
            elif pref == bside:
                outcome = "loss"
            elif pref in ("tie", "both_bad"):
                outcome = "tie"
            self.rows.append({**r, "cside": cside, "bside": bside, "outcome": outcome})

    def counts(self, rows: Iterable[dict[str, Any]] | None = None) -> tuple[int, int, int]:
        c = Counter(r["outcome"] for r in (self.rows if rows is None else rows))
        return c["win"], c["tie"], c["loss"]


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values (plain Python: called once per case, where numpy's overhead dominates)."""
    total, n = 0.0, 0
    for v in values:
        if v is not None and math.isfinite(v):
            total += v
            n += 1
    return total / n if n else None


def _win_rate_dict(wins: int, ties: int, losses: int) -> dict[str, Any]:
    return win_rate(wins, ties, losses).to_dict()


def _agreement(ratings: list[dict[str, Any]], criteria: list[str]) -> dict[str, Any]:
    """Krippendorff's alpha per criterion (ordinal; a unit is one side of one task) and on the
    preference (nominal), Fleiss' kappa and pairwise Cohen's kappa on the preference."""
    rated = [r for r in ratings if not r["gold"]]
    out: dict[str, Any] = {"criteria": [], "n_raters": len({r["rater"] for r in rated})}
    for criterion in criteria:
        records = [
            ((r["task"], side), r["rater"], value)
            for r in rated
            for side, value in (r["scores"].get(criterion) or {}).items()
            if isinstance(value, int | float)
        ]
        alpha = krippendorff_alpha(ratings_matrix(records), level="ordinal").to_dict() if records else None
        out["criteria"].append(
            {"criterion": criterion, "alpha": alpha, "reason": None if records else "no scores"}
        )
    prefs = [(r["task"], r["rater"], r["preference"]) for r in rated if r["b"] and r["preference"]]
    if prefs:
        matrix = ratings_matrix(prefs, categories=PREFERENCE_CATEGORIES)
        out["preference"] = {
            "alpha": krippendorff_alpha(matrix, level="nominal").to_dict(),
            "fleiss": fleiss_kappa(matrix).to_dict(),
            "pairwise_cohen": pairwise_cohen_kappa(matrix).to_dict(),
        }
    else:
        out["preference"] = {
            "alpha": None,
            "fleiss": None,
            "pairwise_cohen": None,
            "reason": "no preferences",
        }
    return out


def _alpha_value(agreement: dict[str, Any], criterion: str) -> float | None:
    if criterion == "preference":
        alpha = agreement["preference"].get("alpha")
        return alpha.get("alpha") if alpha else None
    for entry in agreement["criteria"]:
        if entry["criterion"] == criterion and entry["alpha"]:
            value = entry["alpha"].get("alpha")
            return float(value) if value is not None else None
    return None


def _gold(ratings: list[dict[str, Any]], raters: dict[int, str]) -> list[dict[str, Any]]:
    records: list[tuple[Hashable, Hashable, Any]] = []
    truth: dict[Hashable, Any] = {}
    for r in ratings:
        if r["gold"] and r["gold_answer"]:
            truth[r["task"]] = _gold_expected(r["gold_answer"])
            records.append((r["task"], r["rater"], _gold_value(r, r["gold_answer"])))
    results = gold_accuracy(records, truth)
    return [
        {
            "rater_id": g.rater_id,
            "rater": raters.get(int(str(g.rater_id)), str(g.rater_id)),
            "n_gold": g.n_gold,
            "n_correct": g.n_correct,
            "accuracy": g.accuracy.rate,
            "ci_low": g.accuracy.ci_low,
            "ci_high": g.accuracy.ci_high,
        }
        for g in results
    ]


def _styles(rows: ReportRows, output_ids: Iterable[int]) -> dict[int, Any]:
    """Style features per output as plain dicts: the style fits read each battle's features with
    ``.get(name)``, and a dict's is several times cheaper than StyleFeatures' checked one."""
    styles: dict[int, Any] = {}
    for pk in output_ids:
        if pk not in styles:
            styles[pk] = style_features(rows.texts.get(pk, "")).to_dict()
    return styles


def _battles(
    rows: ReportRows, ratings: list[dict[str, Any]], labels: dict[int, str]
) -> tuple[list[tuple[str, str, str]], list[int], list[int]]:
    battles, outs_a, outs_b = [], [], []
    winner = {"A": "a", "B": "b", "tie": "tie", "both_bad": "both_bad"}
    for r in ratings:
        if r["gold"] or not r["b"] or r["preference"] not in winner:
            continue
        la, lb = (
            labels.get(rows.output_adapter.get(r["a"], -1)),
            labels.get(rows.output_adapter.get(r["b"], -1)),
        )
        if la is None or lb is None or la == lb:
            continue
        battles.append((la, lb, winner[r["preference"]]))
        outs_a.append(r["a"])
        outs_b.append(r["b"])
    return battles, outs_a, outs_b


def report_compute(
    rows: ReportRows,
    *,
    candidate_id: int,
    baseline_id: int,
    criteria: list[str] | None = None,
    exclude_raters_below: float | None = None,
    resamples: int = 2000,
    style_resamples: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the report page, exports and gates read, from already-fetched rows."""
    labels = {a["id"]: a["label"] for a in rows.adapters}
    cand_label, base_label = labels.get(candidate_id, "?"), labels.get(baseline_id, "?")
    case_by_id = {c["id"]: c for c in rows.cases}
    slices_by_case = {c["id"]: case_slices(c) for c in rows.cases}

    # Rater quality first: exclusion changes every human number below.
    gold = _gold(rows.ratings, rows.raters)
    excluded: list[dict[str, Any]] = []
    all_ratings = rows.ratings
    ratings = all_ratings
    if exclude_raters_below is not None:
        excluded = [g for g in gold if g["accuracy"] is not None and g["accuracy"] < exclude_raters_below]
        dropped = {g["rater_id"] for g in excluded}
        ratings = [r for r in all_ratings if r["rater"] not in dropped]

    if criteria is None:
        seen: dict[str, None] = {}
        for r in ratings:
            for key in r["scores"]:
                seen.setdefault(key, None)
        criteria = list(seen)

    pairs = _Pairs(ratings, rows.output_adapter, candidate_id, baseline_id)
    wins, ties, losses = pairs.counts()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "candidate": next((a for a in rows.adapters if a["id"] == candidate_id), None),
        "baseline": next((a for a in rows.adapters if a["id"] == baseline_id), None),
        "adapters": rows.adapters,
        "study_ids": rows.study_ids,
        "settings": {
            "resamples": resamples,
            "style_resamples": style_resamples,
            "seed": seed,
            "confidence": 0.95,
            "exclude_raters_below": exclude_raters_below,
            "criteria": criteria,
        },
        "counts": {
            "cases": len(rows.cases),
            "ratings": sum(1 for r in ratings if not r["gold"]),
            "pair_ratings": len(pairs.rows),
            "gold_ratings": sum(1 for r in ratings if r["gold"]),
            "raters": len({r["rater"] for r in pairs.rows}),
            "cases_rated": len({r["case"] for r in pairs.rows}),
            "both_bad": sum(1 for r in pairs.rows if r["preference"] == "both_bad"),
        },
    }
    report["win_rate"] = _win_rate_dict(wins, ties, losses)

    # Per slice win rates.
    by_slice_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pairs.rows:
        for name in slices_by_case.get(r["case"], ()):
            by_slice_rows[name].append(r)
    report["win_rate_by_slice"] = [
        {"slice": name, **_win_rate_dict(*pairs.counts(members))}
        for name, members in sorted(by_slice_rows.items())
    ]

    # Per-criterion means, paired deltas (per rating: candidate side minus baseline side).
    # Per-criterion means and paired deltas, bootstrapped over cases: the ratings of one case share
    # its outputs and are not independent, so the case is the resampling unit (a cluster bootstrap).
    case_order = sorted({r["case"] for r in pairs.rows})
    crit_out = []
    for criterion in criteria:
        c_vals: list[Any] = []
        b_vals: list[Any] = []
        per_case: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for r in pairs.rows:
            entry = r["scores"].get(criterion) or {}
            cv, bv = entry.get(r["cside"]), entry.get(r["bside"])
            c_vals.append(cv)
            b_vals.append(bv)
            if cv is not None and bv is not None:
                per_case[r["case"]][0].append(cv)
                per_case[r["case"]][1].append(bv)
        c_case = [_mean(per_case[c][0]) if c in per_case else None for c in case_order]
        b_case = [_mean(per_case[c][1]) if c in per_case else None for c in case_order]
        slice_pairs: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
        for case_id, cv, bv in zip(case_order, c_case, b_case, strict=True):
            for name in slices_by_case.get(case_id, ()):
                slice_pairs[name][0].append(bv)
                slice_pairs[name][1].append(cv)
        boots = boot_resamples(len(case_order), resamples)
        delta = paired_bootstrap(b_case, c_case, resamples=boots, seed=seed)
        diffs = np.array(
            [c - b for c, b in zip(c_case, b_case, strict=True) if c is not None and b is not None]
        )
        crit_out.append(
            {
                "criterion": criterion,
                "unit": "cases",
                "n_ratings": sum(
                    1 for c, b in zip(c_vals, b_vals, strict=True) if c is not None and b is not None
                ),
                "candidate": mean_ci(c_case, resamples=boots, seed=seed).to_dict(),
                "baseline": mean_ci(b_case, resamples=boots, seed=seed).to_dict(),
                "delta": delta.to_dict(),
                "delta_sd": float(diffs.std(ddof=1)) if diffs.size > 1 else None,
                "distribution": {
                    "candidate": dict(sorted(Counter(str(v) for v in c_vals if v is not None).items())),
                    "baseline": dict(sorted(Counter(str(v) for v in b_vals if v is not None).items())),
                },
                "by_slice": [
                    {
                        "slice": name,
                        **paired_bootstrap(
                            a, b, resamples=boot_resamples(len(a), resamples // 2), seed=seed
                        ).to_dict(),
                    }
                    for name, (a, b) in sorted(slice_pairs.items())
                    if len(a) >= MIN_SLICE_CASES
                ],
            }
        )
    report["criteria"] = crit_out

    # Hallucination flags: per adapter over every rated side, and the paired delta on pair ratings.
    flags: dict[int, list[int]] = defaultdict(list)
    for r in ratings:
        if r["gold"]:
            continue
        for side, out_id in (("A", r["a"]), ("B", r["b"])):
            if out_id is None:
                continue
            flag = _flagged(r["hallucination"].get(side))
            if flag is not None:
                flags[rows.output_adapter.get(out_id, -1)].append(int(flag))
    hall_case: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in pairs.rows:
        fc, fb = _flagged(r["hallucination"].get(r["cside"])), _flagged(r["hallucination"].get(r["bside"]))
        if fc is not None and fb is not None:
            hall_case[r["case"]][0].append(float(fc))
            hall_case[r["case"]][1].append(float(fb))
    hall_c = [_mean(hall_case[c][0]) if c in hall_case else None for c in case_order]
    hall_b = [_mean(hall_case[c][1]) if c in hall_case else None for c in case_order]
    report["hallucination"] = {
        "per_adapter": [
            {"adapter": labels[aid], **_rate(sum(v), len(v))} for aid, v in flags.items() if aid in labels
        ],
        "delta": paired_bootstrap(
            hall_b,
            hall_c,
            resamples=boot_resamples(len(hall_c), resamples),
            seed=seed,
        ).to_dict(),
    }

    # Bradley-Terry (all adapters' battles) raw and style-controlled; controlled win rate.
    battles, outs_a, outs_b = _battles(rows, ratings, labels)
    styles = _styles(rows, set(outs_a) | set(outs_b))
    styles_a = [styles[o] for o in outs_a]
    styles_b = [styles[o] for o in outs_b]
    models = {m for a, b, _ in battles for m in (a, b)}
    style: dict[str, Any] = {"n_battles": len(battles)}
    style_boots = style_resamples_for(len(battles), style_resamples)
    if battles:
        style["controlled"] = controlled_win_rate(
            battles,
            styles_a,
            styles_b,
            candidate=cand_label,
            baseline=base_label,
            resamples=style_boots,
            seed=seed,
        ).to_dict()
        style["length_controlled"] = controlled_win_rate(
            battles,
            styles_a,
            styles_b,
            candidate=cand_label,
            baseline=base_label,
            features=LENGTH_ONLY,
            resamples=style_boots,
            seed=seed,
        ).to_dict()
    else:
        style["reason"] = "no pairwise ratings"
    report["style"] = style
    leaderboard: dict[str, Any] = {"models": sorted(models)}
    if len(models) > 2:
        leaderboard["bradley_terry"] = bradley_terry(battles, resamples=style_boots * 2, seed=seed).to_dict()
        leaderboard["style_controlled"] = style_controlled_bradley_terry(
            battles, styles_a, styles_b, resamples=style_boots, seed=seed
        ).to_dict()
    else:
        leaderboard["reason"] = "a leaderboard needs more than two adapters with battles"
    report["leaderboard"] = leaderboard

    # Automated metrics: per case values of candidate and baseline.
    values: dict[str, dict[int, dict[int, float | None]]] = defaultdict(lambda: defaultdict(dict))
    checks: dict[int, dict[int, bool | None]] = defaultdict(dict)
    for adapter_id, case_id, metric, value, passed in rows.scores:
        if metric == CHECKS_METRIC:
            checks[adapter_id][case_id] = passed
        else:
            values[metric][adapter_id][case_id] = value
    metric_names = [m for m in METRIC_ORDER if m in values] + sorted(set(values) - set(METRIC_ORDER))
    metrics_out = []
    per_case_delta: dict[str, dict[int, float]] = {}
    for metric in metric_names:
        cvals, bvals = values[metric].get(candidate_id, {}), values[metric].get(baseline_id, {})
        common = sorted(set(cvals) & set(bvals))
        a = [bvals[c] for c in common]
        b = [cvals[c] for c in common]
        per_case_delta[metric] = {
            c: cv - bv for c in common if (cv := cvals[c]) is not None and (bv := bvals[c]) is not None
        }
        slice_members: dict[str, list[int]] = defaultdict(list)
        for c in common:
            for name in slices_by_case.get(c, ()):
                slice_members[name].append(c)
        means = {labels[aid]: _mean(vals.values()) for aid, vals in values[metric].items() if aid in labels}
        metrics_out.append(
            {
                "metric": metric,
                "means": means,
                "missing": {"candidate": len(cvals) == 0, "baseline": len(bvals) == 0},
                "delta": paired_bootstrap(
                    a, b, resamples=boot_resamples(len(a), resamples), seed=seed
                ).to_dict(),
                "by_slice": [
                    {
                        "slice": name,
                        **paired_bootstrap(
                            [bvals[c] for c in members],
                            [cvals[c] for c in members],
                            resamples=boot_resamples(len(members), resamples // 2),
                            seed=seed,
                        ).to_dict(),
                    }
                    for name, members in sorted(slice_members.items())
                    if len(members) >= MIN_SLICE_CASES
                ],
            }
        )
    report["metrics"] = metrics_out

    # Adversarial pass rates per category, and the must-refuse cases.
    adversarial: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    must_refuse: dict[str, dict[str, Any]] = {}
    for aid, by_case in checks.items():
        if aid not in labels:
            continue
        per_cat: dict[str, list[int]] = defaultdict(list)
        refuse: list[int] = []
        for case_id, passed in by_case.items():
            case = case_by_id.get(case_id)
            if case is None or passed is None:
                continue
            per_cat[case["category"] or "uncategorised"].append(int(passed))
            per_cat["all"].append(int(passed))
            if any(isinstance(e, dict) and e.get("type") == "must_refuse" for e in case["expected"]):
                refuse.append(int(passed))
        for cat, vals in per_cat.items():
            adversarial[cat][labels[aid]] = _rate(sum(vals), len(vals))
        must_refuse[labels[aid]] = {**_rate(sum(refuse), len(refuse)), "failed": len(refuse) - sum(refuse)}
    report["adversarial"] = [
        {"category": cat, "per_adapter": adversarial[cat]} for cat in sorted(adversarial)
    ]
    report["must_refuse"] = must_refuse

    # Agreement and rater quality, with the effect of excluding raters.
    report["agreement"] = _agreement(ratings, criteria)
    report["gold"] = gold
    if exclude_raters_below is not None:
        before = _Pairs(all_ratings, rows.output_adapter, candidate_id, baseline_id)
        report["exclusion"] = {
            "threshold": exclude_raters_below,
            "excluded": excluded,
            "before": {
                "win_rate": _win_rate_dict(*before.counts()),
                "preference_alpha": _alpha_value(_agreement(all_ratings, []), "preference"),
            },
            "after": {
                "win_rate": report["win_rate"],
                "preference_alpha": _alpha_value(report["agreement"], "preference"),
            },
        }

    # Human vs automatic: per case mean preference (+1 win, 0 tie, -1 loss) against metric deltas.
    pref_by_case: dict[int, list[int]] = defaultdict(list)
    for r in pairs.rows:
        if r["outcome"] is not None:
            pref_by_case[r["case"]].append({"win": 1, "tie": 0, "loss": -1}[r["outcome"]])
    human = {c: sum(v) / len(v) for c, v in pref_by_case.items()}
    hv = []
    for metric, deltas in per_case_delta.items():
        common_cases = sorted(set(deltas) & set(human))
        corr = rank_correlation(
            [deltas[c] for c in common_cases],
            [human[c] for c in common_cases],
            resamples=rank_resamples(len(common_cases)),
            seed=seed,
        ).to_dict()
        hv.append({"metric": metric, "n": len(common_cases), **corr})
    report["human_vs_metric"] = hv

    # Per case rows, for the drill-down and the CSV export.
    outcome_by_case: dict[int, Counter[str]] = defaultdict(Counter)
    for r in pairs.rows:
        outcome_by_case[r["case"]][r["outcome"] or "none"] += 1
    case_rows = []
    for case in rows.cases:
        cid = case["id"]
        counts = outcome_by_case.get(cid, Counter())
        case_rows.append(
            {
                "case_id": cid,
                "key": case["key"],
                "origin": case["origin"],
                "split": case["split"],
                "category": case["category"],
                "tags": case["tags"],
                "wins": counts["win"],
                "ties": counts["tie"],
                "losses": counts["loss"],
                "human": human.get(cid),
                "metrics": {
                    m: {
                        "candidate": values[m].get(candidate_id, {}).get(cid),
                        "baseline": values[m].get(baseline_id, {}).get(cid),
                    }
                    for m in metric_names
                },
                "checks": {
                    "candidate": checks.get(candidate_id, {}).get(cid),
                    "baseline": checks.get(baseline_id, {}).get(cid),
                },
            }
        )
    report["cases"] = case_rows
    return report
