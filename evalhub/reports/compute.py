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

from annotation.rubric import gold_expected
from evalhub.reports.selectors import PREFERENCES, SIDES, RatingColumns, ReportRows
from metrics.agreement import (
    fleiss_kappa,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    ratings_matrix_from_arrays,
)
from metrics.ranking import (
    LENGTH_ONLY,
    STYLE_FEATURES,
    BattleArrays,
    battle_arrays,
    bradley_terry,
    controlled_win_rate,
    style_controlled_bradley_terry,
    style_feature_table,
)
from metrics.registry import CHECKS_METRIC, PERPLEXITY_METRIC, TEXT_METRICS
from metrics.stats import (
    mean_ci,
    paired_bootstrap,
    rank_correlation,
    reuse_resamples,
    wilson_interval,
    win_rate,
)

SCHEMA = 1
PREFERENCE_CATEGORIES = ("A", "tie", "both_bad", "B")
# Per-case metrics whose paired deltas the report shows; others found in the rows are added after.
METRIC_ORDER = (*TEXT_METRICS, PERPLEXITY_METRIC)
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


def _rate(successes: float, n: int) -> dict[str, Any]:
    if n == 0:
        return {"rate": None, "ci_low": None, "ci_high": None, "n": 0}
    low, high = wilson_interval(successes, n)
    return {"rate": successes / n, "ci_low": float(low), "ci_high": float(high), "n": n}


# Preference codes of RatingColumns (PREFERENCES): "" 0, "A" 1, "B" 2, "tie" 3, "both_bad" 4, None 5.
PREF_A, PREF_B, PREF_TIE, PREF_BOTH_BAD = 1, 2, 3, 4
# Outcome codes of a candidate-vs-baseline rating, for bincount.
WIN, TIE, LOSS, NO_OUTCOME = 0, 1, 2, 3


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: int = -1) -> np.ndarray:
    """``values[keys == q]`` for each q (keys sorted and distinct), ``missing`` where absent."""
    if keys.size == 0:
        return np.full(query.shape, missing, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return np.where(keys[pos] == query, values[pos], missing)


def _group_mean(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the mean of the finite values (NaN for none): bincount adds in row order, so
    the sums are the ones a Python loop over the rows gives."""
    ok = np.isfinite(values)
    total = np.bincount(groups[ok], values[ok], minlength=n_groups)
    n = np.bincount(groups[ok], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _floats_or_none(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def _distribution(values: np.ndarray, is_int: np.ndarray) -> dict[str, int]:
    """Counts of the values by their text, as ``str()`` writes the ints and floats of the ratings."""
    ok = ~np.isnan(values)
    counts: Counter[str] = Counter()
    for integral in (True, False):
        chosen = ok & (is_int == integral)
        distinct, n = np.unique(values[chosen], return_counts=True)
        for value, count in zip(distinct.tolist(), n.tolist(), strict=True):
            counts[str(int(value)) if integral else str(value)] += count
    return dict(sorted(counts.items()))


class _Adapters:
    """Output id -> adapter id, as arrays for lookups over many ratings."""

    def __init__(self, output_adapter: dict[int, int]) -> None:
        ids = np.array(sorted(output_adapter), dtype=np.int64)
        self.ids = ids
        self.adapters = np.array([output_adapter[o] for o in ids.tolist()], dtype=np.int64)

    def of(self, outputs: np.ndarray) -> np.ndarray:
        return _lookup(self.ids, self.adapters, outputs)


class _Pairs:
    """Candidate-vs-baseline pair ratings (row indices into the rating columns), with the side
    the candidate was shown on and the outcome for the candidate."""

    def __init__(
        self,
        rc: RatingColumns,
        keep: np.ndarray,
        adapter_a: np.ndarray,
        adapter_b: np.ndarray,
        cand: int,
        base: int,
    ) -> None:
        mine = ((adapter_a == cand) & (adapter_b == base)) | ((adapter_a == base) & (adapter_b == cand))
        self.idx = np.flatnonzero(keep & ~rc.gold & (rc.b != 0) & mine)
        self.c_is_a = adapter_a[self.idx] == cand
        pref = rc.preference[self.idx]
        c_pref = np.where(self.c_is_a, PREF_A, PREF_B)
        b_pref = np.where(self.c_is_a, PREF_B, PREF_A)
        self.outcome = np.full(self.idx.size, NO_OUTCOME, dtype=np.int64)
        self.outcome[(pref == PREF_TIE) | (pref == PREF_BOTH_BAD)] = TIE
        self.outcome[pref == c_pref] = WIN
        self.outcome[pref == b_pref] = LOSS
        self.case = rc.case[self.idx]
        self.preference = pref

    def __len__(self) -> int:
        return int(self.idx.size)

    def counts(self, members: np.ndarray | None = None) -> tuple[int, int, int]:
        outcome = self.outcome if members is None else self.outcome[members]
        c = np.bincount(outcome, minlength=4).tolist()
        return c[WIN], c[TIE], c[LOSS]

    def sides(self, side_a: np.ndarray, side_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A per-rating column pair (A side, B side) as (candidate side, baseline side)."""
        a, b = side_a[self.idx], side_b[self.idx]
        return np.where(self.c_is_a, a, b), np.where(self.c_is_a, b, a)


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


_PREF_CATEGORY = np.array([-1, 0, 3, 1, 2, -1])  # preference code -> index in PREFERENCE_CATEGORIES


def _agreement(rc: RatingColumns, keep: np.ndarray, criteria: list[str]) -> dict[str, Any]:
    """Krippendorff's alpha per criterion (ordinal; a unit is one side of one task) and on the
    preference (nominal), Fleiss' kappa and pairwise Cohen's kappa on the preference."""
    rated = keep & ~rc.gold
    out: dict[str, Any] = {"criteria": [], "n_raters": int(np.unique(rc.rater[rated]).size)}
    task, rater = rc.task[rated], rc.rater[rated]
    # Records in row order, side A before side B within a rating (as the rating dicts list them).
    units = np.column_stack([task * 2, task * 2 + 1])
    raters = np.column_stack([rater, rater])
    for criterion in criteria:
        col = rc.scores.get(criterion)
        records = False
        alpha = None
        if col is not None:
            values = np.column_stack([col.a[rated], col.b[rated]])
            ok = ~np.isnan(values)
            records = bool(ok.any())
            if records:
                matrix = ratings_matrix_from_arrays(units[ok], raters[ok], values[ok])
                alpha = krippendorff_alpha(matrix, level="ordinal").to_dict()
        out["criteria"].append(
            {"criterion": criterion, "alpha": alpha, "reason": None if records else "no scores"}
        )
    prefs = rated & (rc.b != 0) & (_PREF_CATEGORY[rc.preference] >= 0)
    if prefs.any():
        matrix = ratings_matrix_from_arrays(
            rc.task[prefs],
            rc.rater[prefs],
            _PREF_CATEGORY[rc.preference[prefs]].astype(float),
            categories=PREFERENCE_CATEGORIES,
        )
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


def _gold_value(rc: RatingColumns, k: int, answer: dict[str, Any]) -> tuple[Any, ...]:
    """What the rater answered on a gold task, in the parts the gold answer fixes."""
    parts: list[Any] = []
    if "preference" in answer:
        parts.append(PREFERENCES[int(rc.preference[k])])
    for side in sorted(answer.get("hallucination", {})):
        flag = int(rc.hall(SIDES.index(side))[k]) if side in SIDES else -1
        parts.append(flag == 1)
    return tuple(parts)


def _gold(rc: RatingColumns, raters: dict[int, str]) -> list[dict[str, Any]]:
    records: list[tuple[Hashable, Hashable, Any]] = []
    truth: dict[Hashable, Any] = {}
    for k in sorted(rc.gold_answers):
        answer = rc.gold_answers[k]
        if rc.gold[k] and answer:
            task, rater = int(rc.task[k]), int(rc.rater[k])
            truth[task] = gold_expected(answer)
            records.append((task, rater, _gold_value(rc, k, answer)))
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


def _style_table(rows: ReportRows, outputs: np.ndarray) -> np.ndarray:
    """Raw style features (columns in STYLE_FEATURES order) of each output, computed once per
    distinct output."""
    distinct, inverse = np.unique(outputs, return_inverse=True)
    table = style_feature_table([rows.texts.get(pk, "") for pk in distinct.tolist()])
    return table[inverse.reshape(-1)]


def _battles(
    rc: RatingColumns, keep: np.ndarray, adapter_a: np.ndarray, adapter_b: np.ndarray, labels: dict[int, str]
) -> tuple[BattleArrays, np.ndarray, np.ndarray]:
    """Every pairwise rating between two differently labelled adapters, as battles, with the
    rows' output ids on each side."""
    names = list(dict.fromkeys(labels.values()))
    ids = np.array(sorted(labels), dtype=np.int64)
    codes = np.array([names.index(labels[i]) for i in ids.tolist()], dtype=np.int64)
    la, lb = _lookup(ids, codes, adapter_a), _lookup(ids, codes, adapter_b)
    winner = np.array([-1, 0, 1, 2, 3, -1])[rc.preference]  # "", A, B, tie, both_bad, None
    rows = keep & ~rc.gold & (rc.b != 0) & (winner >= 0) & (la >= 0) & (lb >= 0) & (la != lb)
    return battle_arrays(names, la[rows], lb[rows], winner[rows]), rc.a[rows], rc.b[rows]


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
    # Dozens of bootstraps run over the same cases with one seed: they share their draws.
    with reuse_resamples():
        return _report_compute(
            rows,
            candidate_id=candidate_id,
            baseline_id=baseline_id,
            criteria=criteria,
            exclude_raters_below=exclude_raters_below,
            resamples=resamples,
            style_resamples=style_resamples,
            seed=seed,
        )


def _report_compute(
    rows: ReportRows,
    *,
    candidate_id: int,
    baseline_id: int,
    criteria: list[str] | None,
    exclude_raters_below: float | None,
    resamples: int,
    style_resamples: int,
    seed: int,
) -> dict[str, Any]:
    labels = {a["id"]: a["label"] for a in rows.adapters}
    cand_label, base_label = labels.get(candidate_id, "?"), labels.get(baseline_id, "?")
    case_by_id = {c["id"]: c for c in rows.cases}
    slices_by_case = {c["id"]: case_slices(c) for c in rows.cases}
    rc = rows.ratings
    outputs = _Adapters(rows.output_adapter)
    adapter_a, adapter_b = outputs.of(rc.a), outputs.of(rc.b)
    # Each case's position in rows.cases, and each slice's member positions.
    case_ids = np.array([c["id"] for c in rows.cases], dtype=np.int64)
    case_sort = np.argsort(case_ids, kind="stable")
    slice_positions: dict[str, list[int]] = defaultdict(list)
    for pos, case_row in enumerate(rows.cases):
        for name in slices_by_case[case_row["id"]]:
            slice_positions[name].append(pos)

    def case_position(ids: np.ndarray) -> np.ndarray:
        return _lookup(case_ids[case_sort], case_sort, ids)

    # Rater quality first: exclusion changes every human number below.
    gold = _gold(rc, rows.raters)
    excluded: list[dict[str, Any]] = []
    everyone = np.ones(len(rc), dtype=bool)
    keep = everyone
    if exclude_raters_below is not None:
        excluded = [g for g in gold if g["accuracy"] is not None and g["accuracy"] < exclude_raters_below]
        dropped = [g["rater_id"] for g in excluded]
        keep = ~np.isin(rc.rater, np.array(dropped, dtype=np.int64))

    if criteria is None:
        # In order of first appearance among the kept ratings (rubric order within a rating).
        first = {
            c: int(np.argmax(col.present & keep))
            for c, col in rc.scores.items()
            if bool(np.any(col.present & keep))
        }
        criteria = sorted(first, key=lambda c: (first[c], rc.criteria_seen.index(c)))

    pairs = _Pairs(rc, keep, adapter_a, adapter_b, candidate_id, baseline_id)
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
            "ratings": int(np.sum(keep & ~rc.gold)),
            "pair_ratings": len(pairs),
            "gold_ratings": int(np.sum(keep & rc.gold)),
            "raters": int(np.unique(rc.rater[pairs.idx]).size),
            "cases_rated": int(np.unique(pairs.case).size),
            "both_bad": int(np.sum(pairs.preference == PREF_BOTH_BAD)),
        },
    }
    report["win_rate"] = _win_rate_dict(wins, ties, losses)

    # Per slice win rates, from each case's outcome counts.
    pair_pos = case_position(pairs.case)
    in_cases = pair_pos >= 0
    per_case_outcomes = np.bincount(
        pair_pos[in_cases] * 4 + pairs.outcome[in_cases], minlength=4 * len(rows.cases)
    ).reshape(len(rows.cases), 4)
    slice_counts = {
        name: per_case_outcomes[members].sum(axis=0).tolist() for name, members in slice_positions.items()
    }
    report["win_rate_by_slice"] = [
        {"slice": name, **_win_rate_dict(c[WIN], c[TIE], c[LOSS])}
        for name, c in sorted(slice_counts.items())
        if sum(c) > 0
    ]

    # Per-criterion means and paired deltas, bootstrapped over cases: the ratings of one case share
    # its outputs and are not independent, so the case is the resampling unit (a cluster bootstrap).
    case_order = np.unique(pairs.case)
    pair_group = np.searchsorted(case_order, pairs.case)
    order_pos = case_position(case_order)
    slice_in_order = {
        name: np.isin(order_pos, np.array(members, dtype=np.int64))
        for name, members in slice_positions.items()
    }
    missing = np.full(len(rc), np.nan)
    crit_out = []
    for criterion in criteria:
        col = rc.scores.get(criterion)
        side_a, side_b = (col.a, col.b) if col is not None else (missing, missing)
        int_a, int_b = (col.a_int, col.b_int) if col is not None else (everyone, everyone)
        c_vals, b_vals = pairs.sides(side_a, side_b)
        c_int, b_int = pairs.sides(int_a, int_b)
        both = ~np.isnan(c_vals) & ~np.isnan(b_vals)
        c_case = _group_mean(pair_group[both], c_vals[both], case_order.size)
        b_case = _group_mean(pair_group[both], b_vals[both], case_order.size)
        boots = boot_resamples(case_order.size, resamples)
        delta = paired_bootstrap(b_case, c_case, resamples=boots, seed=seed)
        complete = ~np.isnan(c_case) & ~np.isnan(b_case)
        diffs = c_case[complete] - b_case[complete]
        crit_out.append(
            {
                "criterion": criterion,
                "unit": "cases",
                "n_ratings": int(both.sum()),
                "candidate": mean_ci(c_case, resamples=boots, seed=seed).to_dict(),
                "baseline": mean_ci(b_case, resamples=boots, seed=seed).to_dict(),
                "delta": delta.to_dict(),
                "delta_sd": float(diffs.std(ddof=1)) if diffs.size > 1 else None,
                "distribution": {
                    "candidate": _distribution(c_vals, c_int),
                    "baseline": _distribution(b_vals, b_int),
                },
                "by_slice": [
                    {
                        "slice": name,
                        **paired_bootstrap(
                            b_case[members],
                            c_case[members],
                            resamples=boot_resamples(int(members.sum()), resamples // 2),
                            seed=seed,
                        ).to_dict(),
                    }
                    for name, members in sorted(slice_in_order.items())
                    if members.sum() >= MIN_SLICE_CASES
                ],
            }
        )
    report["criteria"] = crit_out

    # Hallucination flags: per adapter over every rated side, and the paired delta on pair ratings.
    # Entries in row order, side A before side B; adapters listed in order of first flag.
    rated = keep & ~rc.gold
    flag_adapter = np.column_stack([adapter_a, adapter_b])
    flag_value = np.column_stack([rc.hall_a, rc.hall_b]).astype(np.int64)
    flagged = np.column_stack([rated, rated & (rc.b != 0)]) & (flag_value >= 0)
    f_adapter, f_value = flag_adapter[flagged], flag_value[flagged]
    f_ids, f_first, f_group = np.unique(f_adapter, return_index=True, return_inverse=True)
    f_sum = np.bincount(f_group.reshape(-1), f_value, minlength=f_ids.size)
    f_n = np.bincount(f_group.reshape(-1), minlength=f_ids.size)
    per_adapter = []
    for g in np.argsort(f_first, kind="stable").tolist():
        aid = int(f_ids[g])
        if aid in labels:
            per_adapter.append({"adapter": labels[aid], **_rate(int(f_sum[g]), int(f_n[g]))})
    fc, fb = pairs.sides(rc.hall_a, rc.hall_b)
    both_flags = (fc >= 0) & (fb >= 0)
    hall_c = _group_mean(pair_group[both_flags], fc[both_flags].astype(float), case_order.size)
    hall_b = _group_mean(pair_group[both_flags], fb[both_flags].astype(float), case_order.size)
    report["hallucination"] = {
        "per_adapter": per_adapter,
        "delta": paired_bootstrap(
            hall_b,
            hall_c,
            resamples=boot_resamples(hall_c.size, resamples),
            seed=seed,
        ).to_dict(),
    }

    # Bradley-Terry (all adapters' battles) raw and style-controlled; controlled win rate.
    battles, outs_a, outs_b = _battles(rc, keep, adapter_a, adapter_b, labels)
    styles = _style_table(rows, np.concatenate([outs_a, outs_b]))
    styles_a, styles_b = styles[: outs_a.size], styles[outs_a.size :]
    length = [STYLE_FEATURES.index(f) for f in LENGTH_ONLY]
    n_battles = int(battles.a.size)
    style: dict[str, Any] = {"n_battles": n_battles}
    style_boots = style_resamples_for(n_battles, style_resamples)
    if n_battles:
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
            styles_a[:, length],
            styles_b[:, length],
            candidate=cand_label,
            baseline=base_label,
            features=LENGTH_ONLY,
            resamples=style_boots,
            seed=seed,
        ).to_dict()
    else:
        style["reason"] = "no pairwise ratings"
    report["style"] = style
    models = battles.models
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
    report["agreement"] = _agreement(rc, keep, criteria)
    report["gold"] = gold
    if exclude_raters_below is not None:
        before = _Pairs(rc, everyone, adapter_a, adapter_b, candidate_id, baseline_id)
        report["exclusion"] = {
            "threshold": exclude_raters_below,
            "excluded": excluded,
            "before": {
                "win_rate": _win_rate_dict(*before.counts()),
                "preference_alpha": _alpha_value(_agreement(rc, everyone, []), "preference"),
            },
            "after": {
                "win_rate": report["win_rate"],
                "preference_alpha": _alpha_value(report["agreement"], "preference"),
            },
        }

    # Human vs automatic: per case mean preference (+1 win, 0 tie, -1 loss) against metric deltas.
    decided = pairs.outcome != NO_OUTCOME
    points = np.array([1, 0, -1, 0])[pairs.outcome[decided]]
    pref_sum = np.bincount(pair_group[decided], points, minlength=case_order.size)
    pref_n = np.bincount(pair_group[decided], minlength=case_order.size)
    human = {
        c: total / n
        for c, total, n in zip(
            case_order.tolist(), pref_sum.astype(np.int64).tolist(), pref_n.tolist(), strict=True
        )
        if n
    }
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
    outcome_by_case = per_case_outcomes.tolist()
    case_rows = []
    for pos, case in enumerate(rows.cases):
        cid = case["id"]
        counts = outcome_by_case[pos]
        case_rows.append(
            {
                "case_id": cid,
                "key": case["key"],
                "origin": case["origin"],
                "split": case["split"],
                "category": case["category"],
                "tags": case["tags"],
                "wins": counts[WIN],
                "ties": counts[TIE],
                "losses": counts[LOSS],
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
