"""The comparison report: statistics over a run's metric scores and ratings, as a typed `Report`.

All statistics come from `metrics/` (stats, agreement, ranking); this module only groups the rows
into the shapes those functions take, one function per report section, each reading a frozen
`ReportInput` and the `_Frame` derived from it once. Bootstraps are seeded, so the same rows give
the same report.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from annotation.rubric import MET_KEY, MET_PARTLY, MET_YES, SEVERITY_KEY, gold_expected
from evalhub.reports.judge_section import RoutedPairs, judge_section, routed_pairs
from evalhub.reports.schema import (
    SCHEMA_VERSION,
    AdapterInfo,
    AdapterRate,
    AdversarialCategory,
    AdversarialHuman,
    AdversarialOutput,
    Agreement,
    CaseRow,
    CheckPair,
    Counts,
    CriterionAgreement,
    CriterionSummary,
    Exclusion,
    ExclusionSide,
    GoldRow,
    Hallucination,
    HumanVsMetric,
    JudgeChecks,
    Leaderboard,
    MetricSummary,
    MustRefuse,
    PreferenceAgreement,
    Presence,
    Proportion,
    RaterQualityReport,
    RaterRow,
    Report,
    Settings,
    Sides,
    SliceDelta,
    SliceWinRate,
    Style,
    ValuePair,
    from_json,
)
from evalhub.reports.selectors import PREFERENCES, SIDES, RatingColumns, ReportRows
from metrics.agreement import (
    KappaInterval,
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
from metrics.rater_quality import DEFAULT_MIN_SECONDS, Answers, QualityRules, RaterQuality, rater_quality
from metrics.registry import CHECKS_METRIC, PERPLEXITY_METRIC, TEXT_METRICS
from metrics.stats import (
    MC_TARGET,
    WinRate,
    mean_ci,
    paired_bootstrap,
    rank_correlation,
    reuse_resamples,
    wilson_interval,
    win_rate,
)

PREFERENCE_CATEGORIES = ("A", "tie", "both_bad", "B")
# Per-case metrics whose paired deltas the report shows; others found in the rows are added after.
METRIC_ORDER = (*TEXT_METRICS, PERPLEXITY_METRIC)
MIN_SLICE_CASES = 5
# Bootstrap cost grows with n x resamples. Past these budgets the starting resample count shrinks
# (never below BOOT_FLOOR). With ReportInput.mc_target the bootstraps of means then resample until
# each endpoint's Monte-Carlo error is under that share of the width, at most BOOT_DRAWS draws (few
# distinct values cost one draw per value, so case means of ratings reach it cheaply); every result
# reports the count it used and its endpoints' errors.
BOOT_DRAWS = 1_000_000
# The Monte-Carlo caps, in index draws (a multinomial resample of k distinct values counts 8k): the
# report's main intervals get MC_DRAWS, each of the many slice intervals a quarter of BOOT_DRAWS, so
# slices over thousands of cases report their error rather than spend the 3 s budget.
MC_DRAWS = 2_000_000
MC_SLICE_DRAWS = BOOT_DRAWS // 4
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


def _rate(successes: float, n: int) -> Proportion:
    if n == 0:
        return Proportion(rate=None, ci_low=None, ci_high=None, n=0)
    low, high = wilson_interval(successes, n)
    return Proportion(rate=successes / n, ci_low=float(low), ci_high=float(high), n=n)


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


_PREF_CATEGORY = np.array([-1, 0, 3, 1, 2, -1])  # preference code -> index in PREFERENCE_CATEGORIES


def _agreement(
    rc: RatingColumns, keep: np.ndarray, criteria: tuple[str, ...], *, kappa_interval: KappaInterval
) -> Agreement:
    """Krippendorff's alpha per criterion (ordinal; a unit is one side of one task) and on the
    preference (nominal), Fleiss' kappa and pairwise Cohen's kappa on the preference (its intervals
    as ``kappa_interval`` says)."""
    rated = keep & ~rc.gold
    task, rater = rc.task[rated], rc.rater[rated]
    # Records in row order, side A before side B within a rating (as the rating dicts list them).
    units = np.column_stack([task * 2, task * 2 + 1])
    raters = np.column_stack([rater, rater])
    per_criterion = []
    for criterion in criteria:
        col = rc.scores.get(criterion)
        alpha = None
        records = False
        if col is not None:
            values = np.column_stack([col.a[rated], col.b[rated]])
            ok = ~np.isnan(values)
            records = bool(ok.any())
            if records:
                matrix = ratings_matrix_from_arrays(units[ok], raters[ok], values[ok])
                alpha = krippendorff_alpha(matrix, level="ordinal")
        per_criterion.append(
            CriterionAgreement(criterion=criterion, alpha=alpha, reason=None if records else "no scores")
        )
    return Agreement(
        criteria=tuple(per_criterion),
        n_raters=int(np.unique(rc.rater[rated]).size),
        preference=_preference_agreement(rc, rated, kappa_interval=kappa_interval),
    )


def _preference_agreement(
    rc: RatingColumns, rated: np.ndarray, *, kappa_interval: KappaInterval
) -> PreferenceAgreement:
    prefs = rated & (rc.b != 0) & (_PREF_CATEGORY[rc.preference] >= 0)
    if not prefs.any():
        return PreferenceAgreement(alpha=None, fleiss=None, pairwise_cohen=None, reason="no preferences")
    matrix = ratings_matrix_from_arrays(
        rc.task[prefs],
        rc.rater[prefs],
        _PREF_CATEGORY[rc.preference[prefs]].astype(float),
        categories=PREFERENCE_CATEGORIES,
    )
    return PreferenceAgreement(
        alpha=krippendorff_alpha(matrix, level="nominal"),
        fleiss=fleiss_kappa(matrix),
        pairwise_cohen=pairwise_cohen_kappa(matrix, interval=kappa_interval),
    )


def _gold_value(rc: RatingColumns, k: int, answer: dict[str, Any]) -> tuple[Any, ...]:
    """What the rater answered on a gold task, in the parts the gold answer fixes."""
    parts: list[Any] = []
    if "preference" in answer:
        parts.append(PREFERENCES[int(rc.preference[k])])
    for side in sorted(answer.get("hallucination", {})):
        flag = int(rc.hall(SIDES.index(side))[k]) if side in SIDES else -1
        parts.append(flag == 1)
    return tuple(parts)


def _gold(rc: RatingColumns, raters: dict[int, str]) -> tuple[GoldRow, ...]:
    records: list[tuple[Hashable, Hashable, Any]] = []
    truth: dict[Hashable, Any] = {}
    for k in sorted(rc.gold_answers):
        answer = rc.gold_answers[k]
        if rc.gold[k] and answer:
            task, rater = int(rc.task[k]), int(rc.rater[k])
            truth[task] = gold_expected(answer)
            records.append((task, rater, _gold_value(rc, k, answer)))
    return tuple(
        GoldRow(
            rater_id=int(str(g.rater_id)),
            rater=raters.get(int(str(g.rater_id)), str(g.rater_id)),
            n_gold=g.n_gold,
            n_correct=g.n_correct,
            accuracy=g.accuracy.rate,
            ci_low=g.accuracy.ci_low,
            ci_high=g.accuracy.ci_high,
        )
        for g in gold_accuracy(records, truth)
    )


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


RoutedRates = Literal["weighted", "rated"]
ROUTED_NOTE = (
    "weighted by 1/inclusion probability: the study was routed uncertainty-first, so the rated pairs "
    "over-represent the judge's hard pairs (pairs rated beyond the plan's rated prefix are left out)"
)


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything a report is computed from: the fetched rows and the parameters. A frozen
    verdict's snapshot stores exactly this, so reopening recomputes from it alone.

    ``criteria`` fixes the criteria and their order; None takes them in order of first appearance
    among the kept ratings (rubric order within a rating)."""

    rows: ReportRows
    candidate_id: int
    baseline_id: int
    criteria: tuple[str, ...] | None = None
    exclude_raters_below: float | None = None
    resamples: int = 2000
    style_resamples: int = 100
    seed: int = 0
    exclude_flagged: bool = False
    """Leave out every rater that ``rater_quality`` flags (too fast, failed gold, straight-lining)."""
    min_seconds: float = DEFAULT_MIN_SECONDS
    """A rating faster than this counts as too fast."""
    mc_target: float | None = MC_TARGET
    """Monte-Carlo error bound of the bootstraps (see BOOT_DRAWS); None: fixed counts, as reports
    frozen before it existed were computed (their snapshots lack it, so they reopen identical)."""
    kappa_interval: KappaInterval = "bounded"
    """Cohen's kappa intervals (rater agreement, judge calibration) truncated to [-1, 1];
    "asymptotic": unbounded, as reports frozen before the bound were computed (their snapshots lack
    it, so they reopen identical)."""
    routed_rates: RoutedRates = "weighted"
    """Under uncertainty-first routing, the human rates and means (hallucination, criteria) weighted by
    one over each pair's inclusion probability; "rated": the plain figures of the rated pairs, as
    reports frozen before the weighting were computed (their snapshots lack it, so they reopen identical)."""

    def boot(self, *, slice_: bool = False) -> dict[str, Any]:
        """The Monte-Carlo keywords of a bootstrap of means (of a slice: a smaller cap)."""
        return {"mc_target": self.mc_target, "max_draws": MC_SLICE_DRAWS if slice_ else MC_DRAWS}

    @property
    def mc_error(self) -> bool:
        """Whether the refitting bootstraps (rank correlation, Bradley-Terry) report their error."""
        return self.mc_target is not None


@dataclass(frozen=True, slots=True)
class _Frame:
    """What every section shares, derived once from the input: adapter and case lookups, the
    ratings kept after rater exclusion, and the candidate-vs-baseline pair ratings grouped by case."""

    inp: ReportInput
    rc: RatingColumns
    labels: dict[int, str]
    slices_by_case: dict[int, list[str]]
    slice_positions: dict[str, list[int]]
    adapter_a: np.ndarray
    adapter_b: np.ndarray
    gold: tuple[GoldRow, ...]
    excluded: tuple[GoldRow, ...]
    quality: tuple[RaterQuality, ...]
    """Every rater's quality measures and flags, over all their ratings (before any exclusion)."""
    keep: np.ndarray
    criteria: tuple[str, ...]
    pairs: _Pairs
    per_case_outcomes: np.ndarray
    """(case position, outcome) counts of the pair ratings."""
    case_order: np.ndarray
    """The rated cases' ids, sorted; ``pair_group`` is each pair rating's index in it."""
    pair_group: np.ndarray
    slice_in_order: dict[str, np.ndarray]
    routed: RoutedPairs | None
    """The pairs of the uncertainty-first studies and their inclusion probabilities (None: none routed)."""
    weights: np.ndarray | None
    """Per rating, its weight in the human rates and means (``RoutedPairs.weights``); None where they
    are the plain figures (no routed study, every routed pair rated, or ``routed_rates="rated"``)."""

    @property
    def rows(self) -> ReportRows:
        return self.inp.rows

    def label(self, adapter_id: int) -> str:
        return self.labels.get(adapter_id, "?")


def _case_positions(rows: ReportRows) -> tuple[np.ndarray, np.ndarray]:
    """Sorted case ids and, for each, its position in rows.cases (for ``_lookup``)."""
    case_ids = np.array([c["id"] for c in rows.cases], dtype=np.int64)
    case_sort = np.argsort(case_ids, kind="stable")
    return case_ids[case_sort], case_sort


def _kept_ratings(
    rc: RatingColumns, gold: tuple[GoldRow, ...], below: float | None
) -> tuple[np.ndarray, tuple[GoldRow, ...]]:
    """Rater quality first: excluding raters below a gold accuracy changes every human number."""
    if below is None:
        return np.ones(len(rc), dtype=bool), ()
    excluded = tuple(g for g in gold if g.accuracy is not None and g.accuracy < below)
    dropped = np.array([g.rater_id for g in excluded], dtype=np.int64)
    return ~np.isin(rc.rater, dropped), excluded


def _criteria_order(rc: RatingColumns, keep: np.ndarray) -> tuple[str, ...]:
    """In order of first appearance among the kept ratings (rubric order within a rating). The
    adversarial verdict (met, severity) is no pairwise criterion: _adversarial_human reports it."""
    first = {
        c: int(np.argmax(col.present & keep))
        for c, col in rc.scores.items()
        if bool(np.any(col.present & keep)) and c not in (MET_KEY, SEVERITY_KEY)
    }
    return tuple(sorted(first, key=lambda c: (first[c], rc.criteria_seen.index(c))))


def _frame(inp: ReportInput) -> _Frame:
    rows, rc = inp.rows, inp.rows.ratings
    labels = {a["id"]: a["label"] for a in rows.adapters}
    slices_by_case = {c["id"]: case_slices(c) for c in rows.cases}
    slice_positions: dict[str, list[int]] = defaultdict(list)
    for pos, case_row in enumerate(rows.cases):
        for name in slices_by_case[case_row["id"]]:
            slice_positions[name].append(pos)
    sorted_ids, case_sort = _case_positions(rows)
    outputs = _Adapters(rows.output_adapter)
    adapter_a, adapter_b = outputs.of(rc.a), outputs.of(rc.b)
    gold = _gold(rc, rows.raters)
    keep, excluded = _kept_ratings(rc, gold, inp.exclude_raters_below)
    quality = _quality(rc, gold, QualityRules(min_seconds=inp.min_seconds))
    if inp.exclude_flagged:
        keep &= ~np.isin(rc.rater, np.array([q.rater_id for q in quality if q.flagged], dtype=np.int64))
    pairs = _Pairs(rc, keep, adapter_a, adapter_b, inp.candidate_id, inp.baseline_id)
    # Per case outcome counts, by the case's position in rows.cases.
    pair_pos = _lookup(sorted_ids, case_sort, pairs.case)
    in_cases = pair_pos >= 0
    per_case_outcomes = np.bincount(
        pair_pos[in_cases] * 4 + pairs.outcome[in_cases], minlength=4 * len(rows.cases)
    ).reshape(len(rows.cases), 4)
    # The ratings of one case share its outputs and are not independent, so the case is the
    # resampling unit of the human bootstraps (a cluster bootstrap).
    case_order = np.unique(pairs.case)
    order_pos = _lookup(sorted_ids, case_sort, case_order)
    routed = routed_pairs(rows, {int(t) for t in np.unique(rc.task[~rc.gold]).tolist()})
    weights = routed.weights(rc.task) if routed is not None and inp.routed_rates == "weighted" else None
    return _Frame(
        inp=inp,
        rc=rc,
        labels=labels,
        slices_by_case=slices_by_case,
        slice_positions=slice_positions,
        adapter_a=adapter_a,
        adapter_b=adapter_b,
        gold=gold,
        excluded=excluded,
        quality=quality,
        keep=keep,
        criteria=inp.criteria if inp.criteria is not None else _criteria_order(rc, keep),
        pairs=pairs,
        per_case_outcomes=per_case_outcomes,
        case_order=case_order,
        pair_group=np.searchsorted(case_order, pairs.case),
        slice_in_order={
            name: np.isin(order_pos, np.array(members, dtype=np.int64))
            for name, members in slice_positions.items()
        },
        routed=routed,
        # Every routed pair rated (all probabilities 1): the plain figures, exactly.
        weights=None if weights is None or np.all(weights == 1) else weights,
    )


def _settings(f: _Frame) -> Settings:
    inp = f.inp
    return Settings(
        resamples=inp.resamples,
        style_resamples=inp.style_resamples,
        seed=inp.seed,
        confidence=0.95,
        exclude_raters_below=inp.exclude_raters_below,
        criteria=f.criteria,
        mc_target=inp.mc_target,
    )


def _counts(f: _Frame) -> Counts:
    rc, pairs = f.rc, f.pairs
    return Counts(
        cases=len(f.rows.cases),
        ratings=int(np.sum(f.keep & ~rc.gold)),
        pair_ratings=len(pairs),
        gold_ratings=int(np.sum(f.keep & rc.gold)),
        raters=int(np.unique(rc.rater[pairs.idx]).size),
        cases_rated=int(np.unique(pairs.case).size),
        both_bad=int(np.sum(pairs.preference == PREF_BOTH_BAD)),
    )


def _slice_win_rates(f: _Frame) -> tuple[SliceWinRate, ...]:
    """Per slice win rates, from each case's outcome counts."""
    slice_counts = {
        name: f.per_case_outcomes[members].sum(axis=0).tolist() for name, members in f.slice_positions.items()
    }
    return tuple(
        SliceWinRate(slice=name, result=win_rate(c[WIN], c[TIE], c[LOSS]))
        for name, c in sorted(slice_counts.items())
        if sum(c) > 0
    )


def _criterion(f: _Frame, criterion: str) -> CriterionSummary:
    """Case means per side and the paired delta, bootstrapped over cases."""
    inp, rc, pairs = f.inp, f.rc, f.pairs
    col = rc.scores.get(criterion)
    missing = np.full(len(rc), np.nan)
    everyone = np.ones(len(rc), dtype=bool)
    side_a, side_b = (col.a, col.b) if col is not None else (missing, missing)
    int_a, int_b = (col.a_int, col.b_int) if col is not None else (everyone, everyone)
    c_vals, b_vals = pairs.sides(side_a, side_b)
    c_int, b_int = pairs.sides(int_a, int_b)
    both, case_w = _counted_pairs(f, ~np.isnan(c_vals) & ~np.isnan(b_vals))
    n_cases = f.case_order.size
    c_case = _group_mean(f.pair_group[both], c_vals[both], n_cases)
    b_case = _group_mean(f.pair_group[both], b_vals[both], n_cases)
    boots = boot_resamples(n_cases, inp.resamples)
    complete = ~np.isnan(c_case) & ~np.isnan(b_case)
    diffs = c_case[complete] - b_case[complete]
    weighted = _weights_kw(case_w)
    by_slice = tuple(
        SliceDelta(
            slice=name,
            result=paired_bootstrap(
                b_case[members],
                c_case[members],
                resamples=boot_resamples(int(members.sum()), inp.resamples // 2),
                seed=inp.seed,
                **inp.boot(slice_=True),
                **_weights_kw(case_w, members),
            ),
        )
        for name, members in sorted(f.slice_in_order.items())
        if members.sum() >= MIN_SLICE_CASES
    )
    return CriterionSummary(
        criterion=criterion,
        unit="cases",
        n_ratings=int(both.sum()),
        candidate=mean_ci(c_case, resamples=boots, seed=inp.seed, **inp.boot(), **weighted),
        baseline=mean_ci(b_case, resamples=boots, seed=inp.seed, **inp.boot(), **weighted),
        delta=paired_bootstrap(b_case, c_case, resamples=boots, seed=inp.seed, **inp.boot(), **weighted),
        delta_sd=float(diffs.std(ddof=1)) if diffs.size > 1 else None,
        distribution=Sides(candidate=_distribution(c_vals, c_int), baseline=_distribution(b_vals, b_int)),
        by_slice=by_slice,
        weighting=None if case_w is None else ROUTED_NOTE,
    )


def _counted_pairs(f: _Frame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The pair ratings among ``rows`` that enter the human means and, under routing weights, each
    case's weight: the mean weight of its counted ratings (one over its pair's inclusion probability).
    Ratings of a routed pair beyond the rated prefix weigh 0 and are left out."""
    if f.weights is None:
        return rows, None
    w = f.weights[f.pairs.idx]
    counted = rows & (w > 0)
    return counted, _group_mean(f.pair_group[counted], w[counted], f.case_order.size)


def _weights_kw(case_w: np.ndarray | None, members: np.ndarray | None = None) -> dict[str, Any]:
    """The ``weights`` keyword of a bootstrap over cases: none at all for the plain figures, so they
    are computed exactly as before the weighting existed."""
    if case_w is None:
        return {}
    return {"weights": case_w if members is None else case_w[members]}


def _weighted_rate(f: _Frame, flags: np.ndarray, weights: np.ndarray, cases: np.ndarray) -> Proportion:
    """A flag rate weighted by one over the inclusion probability (``hajek_mean``), its interval from
    the report's bootstrap over cases: per case the weighted sum of its flags over the sum of its
    weights, each case weighing its weights' sum, which is the same ratio over the flags."""
    if flags.size == 0:
        return Proportion(rate=None, ci_low=None, ci_high=None, n=0)
    distinct, inverse = np.unique(cases, return_inverse=True)
    total = np.bincount(inverse.reshape(-1), weights, minlength=distinct.size)
    flagged = np.bincount(inverse.reshape(-1), weights * flags, minlength=distinct.size)
    result = mean_ci(
        flagged / total,
        weights=total,
        resamples=boot_resamples(distinct.size, f.inp.resamples),
        seed=f.inp.seed,
        **f.inp.boot(),
    )
    return Proportion(rate=result.mean, ci_low=result.ci_low, ci_high=result.ci_high, n=int(flags.size))


def _hallucination(f: _Frame) -> Hallucination:
    """Flag rates per adapter over every rated side, and the paired delta on pair ratings.
    Entries in row order, side A before side B; adapters listed in order of first flag."""
    rc, pairs = f.rc, f.pairs
    rated = f.keep & ~rc.gold
    flag_adapter = np.column_stack([f.adapter_a, f.adapter_b])
    flag_value = np.column_stack([rc.hall_a, rc.hall_b]).astype(np.int64)
    flagged = np.column_stack([rated, rated & (rc.b != 0)]) & (flag_value >= 0)
    f_adapter, f_value = flag_adapter[flagged], flag_value[flagged]
    f_ids, f_first, f_group = np.unique(f_adapter, return_index=True, return_inverse=True)
    f_group = f_group.reshape(-1)
    f_sum = np.bincount(f_group, f_value, minlength=f_ids.size)
    f_n = np.bincount(f_group, minlength=f_ids.size)
    if f.weights is not None:  # per flag, its rating's routing weight and case (the weighted rates only)
        f_weight = np.column_stack([f.weights, f.weights])[flagged]
        f_case = np.column_stack([rc.case, rc.case])[flagged]
    per_adapter = []
    for g in np.argsort(f_first, kind="stable").tolist():
        aid = int(f_ids[g])
        if aid not in f.labels:
            continue
        if f.weights is None:
            share = _rate(int(f_sum[g]), int(f_n[g]))
        else:
            mine = (f_group == g) & (f_weight > 0)
            share = _weighted_rate(f, f_value[mine].astype(float), f_weight[mine], f_case[mine])
        per_adapter.append(AdapterRate(adapter=f.labels[aid], share=share))
    fc, fb = pairs.sides(rc.hall_a, rc.hall_b)
    both_flags, case_w = _counted_pairs(f, (fc >= 0) & (fb >= 0))
    n_cases = f.case_order.size
    hall_c = _group_mean(f.pair_group[both_flags], fc[both_flags].astype(float), n_cases)
    hall_b = _group_mean(f.pair_group[both_flags], fb[both_flags].astype(float), n_cases)
    delta = paired_bootstrap(
        hall_b,
        hall_c,
        resamples=boot_resamples(hall_c.size, f.inp.resamples),
        seed=f.inp.seed,
        **f.inp.boot(),
        **_weights_kw(case_w),
    )
    return Hallucination(
        per_adapter=tuple(per_adapter), delta=delta, weighting=None if f.weights is None else ROUTED_NOTE
    )


@dataclass(frozen=True, slots=True)
class _Battles:
    battles: BattleArrays
    styles_a: np.ndarray
    styles_b: np.ndarray
    resamples: int


def _battle_data(f: _Frame) -> _Battles:
    battles, outs_a, outs_b = _battles(f.rc, f.keep, f.adapter_a, f.adapter_b, f.labels)
    styles = _style_table(f.rows, np.concatenate([outs_a, outs_b]))
    return _Battles(
        battles=battles,
        styles_a=styles[: outs_a.size],
        styles_b=styles[outs_a.size :],
        resamples=style_resamples_for(int(battles.a.size), f.inp.style_resamples),
    )


def _style(f: _Frame, b: _Battles) -> Style:
    """The candidate's win rate over the baseline controlled for style, and for length alone."""
    n_battles = int(b.battles.a.size)
    if not n_battles:
        return Style(n_battles=0, reason="no pairwise ratings")
    cand, base = f.label(f.inp.candidate_id), f.label(f.inp.baseline_id)
    length = [STYLE_FEATURES.index(name) for name in LENGTH_ONLY]
    common: dict[str, Any] = {
        "candidate": cand,
        "baseline": base,
        "resamples": b.resamples,
        "seed": f.inp.seed,
        "mc_error": f.inp.mc_error,
    }
    return Style(
        n_battles=n_battles,
        controlled=controlled_win_rate(b.battles, b.styles_a, b.styles_b, **common),
        length_controlled=controlled_win_rate(
            b.battles, b.styles_a[:, length], b.styles_b[:, length], features=LENGTH_ONLY, **common
        ),
    )


def _leaderboard(f: _Frame, b: _Battles) -> Leaderboard:
    """Bradley-Terry over every adapter's battles, raw and style-controlled."""
    models = b.battles.models
    if len(models) <= 2:
        return Leaderboard(
            models=tuple(sorted(models)), reason="a leaderboard needs more than two adapters with battles"
        )
    seed = f.inp.seed
    return Leaderboard(
        models=tuple(sorted(models)),
        bradley_terry=bradley_terry(b.battles, resamples=b.resamples * 2, seed=seed, mc_error=f.inp.mc_error),
        style_controlled=style_controlled_bradley_terry(
            b.battles, b.styles_a, b.styles_b, resamples=b.resamples, seed=seed, mc_error=f.inp.mc_error
        ),
    )


@dataclass(frozen=True, slots=True)
class _MetricTable:
    """Automated scores by metric, adapter and case; check results by adapter and case."""

    values: dict[str, dict[int, dict[int, float | None]]]
    checks: dict[int, dict[int, bool | None]]
    names: tuple[str, ...]

    def of(self, metric: str, adapter_id: int) -> dict[int, float | None]:
        return self.values[metric].get(adapter_id, {})


def _metric_table(rows: ReportRows) -> _MetricTable:
    values: dict[str, dict[int, dict[int, float | None]]] = defaultdict(lambda: defaultdict(dict))
    checks: dict[int, dict[int, bool | None]] = defaultdict(dict)
    for adapter_id, case_id, metric, value, passed in rows.scores:
        if metric == CHECKS_METRIC:
            checks[adapter_id][case_id] = passed
        else:
            values[metric][adapter_id][case_id] = value
    names = [m for m in METRIC_ORDER if m in values] + sorted(set(values) - set(METRIC_ORDER))
    return _MetricTable(values=values, checks=checks, names=tuple(names))


def _metric(f: _Frame, table: _MetricTable, metric: str) -> MetricSummary:
    """Means per adapter and the paired candidate-minus-baseline delta over common cases."""
    inp = f.inp
    cvals, bvals = table.of(metric, inp.candidate_id), table.of(metric, inp.baseline_id)
    common = sorted(set(cvals) & set(bvals))
    slice_members: dict[str, list[int]] = defaultdict(list)
    for c in common:
        for name in f.slices_by_case.get(c, ()):
            slice_members[name].append(c)
    by_slice = tuple(
        SliceDelta(
            slice=name,
            result=paired_bootstrap(
                [bvals[c] for c in members],
                [cvals[c] for c in members],
                resamples=boot_resamples(len(members), inp.resamples // 2),
                seed=inp.seed,
                **inp.boot(slice_=True),
            ),
        )
        for name, members in sorted(slice_members.items())
        if len(members) >= MIN_SLICE_CASES
    )
    a, b = [bvals[c] for c in common], [cvals[c] for c in common]
    return MetricSummary(
        metric=metric,
        means={
            f.labels[aid]: _mean(vals.values())
            for aid, vals in table.values[metric].items()
            if aid in f.labels
        },
        missing=Presence(candidate=len(cvals) == 0, baseline=len(bvals) == 0),
        delta=paired_bootstrap(
            a, b, resamples=boot_resamples(len(a), inp.resamples), seed=inp.seed, **inp.boot()
        ),
        by_slice=by_slice,
    )


def _metric_deltas(f: _Frame, table: _MetricTable) -> dict[str, dict[int, float]]:
    """Per metric, each common case's candidate-minus-baseline value."""
    out: dict[str, dict[int, float]] = {}
    for metric in table.names:
        cvals, bvals = table.of(metric, f.inp.candidate_id), table.of(metric, f.inp.baseline_id)
        common = sorted(set(cvals) & set(bvals))
        out[metric] = {
            c: cv - bv for c in common if (cv := cvals[c]) is not None and (bv := bvals[c]) is not None
        }
    return out


def _adversarial(
    f: _Frame, table: _MetricTable
) -> tuple[tuple[AdversarialCategory, ...], dict[str, MustRefuse]]:
    """Check pass rates per category and adapter, and the must-refuse cases per adapter."""
    case_by_id = {c["id"]: c for c in f.rows.cases}
    adversarial: dict[str, dict[str, Proportion]] = defaultdict(dict)
    must_refuse: dict[str, MustRefuse] = {}
    for aid, by_case in table.checks.items():
        if aid not in f.labels:
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
            adversarial[cat][f.labels[aid]] = _rate(sum(vals), len(vals))
        rate = _rate(sum(refuse), len(refuse))
        must_refuse[f.labels[aid]] = MustRefuse(
            rate=rate.rate,
            ci_low=rate.ci_low,
            ci_high=rate.ci_high,
            n=rate.n,
            failed=len(refuse) - sum(refuse),
        )
    categories = tuple(
        AdversarialCategory(category=cat, per_adapter=adversarial[cat]) for cat in sorted(adversarial)
    )
    return categories, must_refuse


def _adversarial_human(f: _Frame, table: _MetricTable) -> AdversarialHuman | None:
    """People's verdicts on single adversarial outputs (kept raters only), per adapter and per output
    beside the output's check result. Kept apart from the checks' pass rate, so a gate can read either
    and the report can show where they disagree."""
    rc = f.rc
    met_col, sev_col = rc.scores.get(MET_KEY), rc.scores.get(SEVERITY_KEY)
    if met_col is None:
        return None
    rows = f.keep & (rc.b == 0) & met_col.present & ~np.isnan(met_col.a)
    if not rows.any():
        return None
    case_by_id = {c["id"]: c for c in f.rows.cases}
    per_adapter: dict[str, list[int]] = defaultdict(list)
    tally: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(rows).tolist():
        aid, case_id, met = int(f.adapter_a[i]), int(rc.case[i]), int(met_col.a[i])
        if aid not in f.labels or case_id not in case_by_id:
            continue
        per_adapter[f.labels[aid]].append(int(met == MET_YES))
        counts = tally.setdefault((aid, case_id), [0, 0, 0, 0])  # yes, partly, no, worst severity
        counts[{MET_YES: 0, MET_PARTLY: 1}.get(met, 2)] += 1
        severity = sev_col.a[i] if sev_col is not None else np.nan
        if not np.isnan(severity):
            counts[3] = max(counts[3], int(severity))
    outputs = tuple(
        AdversarialOutput(
            case_id=case_id,
            key=case_by_id[case_id]["key"],
            category=case_by_id[case_id]["category"] or "",
            adapter=f.labels[aid],
            checks_passed=table.checks.get(aid, {}).get(case_id),
            met=yes,
            partly=partly,
            not_met=no,
            worst_severity=worst,
        )
        for (aid, case_id), (yes, partly, no, worst) in sorted(
            tally.items(), key=lambda item: (case_by_id[item[0][1]]["key"], f.labels[item[0][0]])
        )
    )
    return AdversarialHuman(
        per_adapter={label: _rate(sum(v), len(v)) for label, v in sorted(per_adapter.items())},
        outputs=outputs,
    )


def _with_and_without(
    f: _Frame, after_win: WinRate, after_agreement: Agreement
) -> tuple[ExclusionSide, ExclusionSide] | None:
    """Win rate and preference alpha over every rating, then over the kept raters' ones: what both the
    exclusion and the rater quality sections show, computed once; None when no rater filter is on."""
    inp, rc = f.inp, f.rc
    if inp.exclude_raters_below is None and not inp.exclude_flagged:
        return None
    everyone = np.ones(len(rc), dtype=bool)
    all_pairs = _Pairs(rc, everyone, f.adapter_a, f.adapter_b, inp.candidate_id, inp.baseline_id)
    everyone_agreement = _agreement(rc, everyone, (), kappa_interval=inp.kappa_interval)
    before = ExclusionSide(
        win_rate=win_rate(*all_pairs.counts()), preference_alpha=everyone_agreement.alpha("preference")
    )
    after = ExclusionSide(win_rate=after_win, preference_alpha=after_agreement.alpha("preference"))
    return before, after


def _exclusion(f: _Frame, sides: tuple[ExclusionSide, ExclusionSide] | None) -> Exclusion | None:
    """The effect of excluding raters: win rate and preference alpha with and without them."""
    threshold = f.inp.exclude_raters_below
    if threshold is None:
        return None
    assert sides is not None  # (_with_and_without: a threshold is a filter)
    before, after = sides
    return Exclusion(threshold=threshold, excluded=f.excluded, before=before, after=after)


def _quality(rc: RatingColumns, gold: tuple[GoldRow, ...], rules: QualityRules) -> tuple[RaterQuality, ...]:
    """Per rater quality over all their ratings. Straight-lining looks at the non-gold ratings'
    answers, one question per rubric criterion (both sides pooled) and the pairwise preference."""
    counted = ~rc.gold
    rows = np.flatnonzero(counted)
    paired = np.flatnonzero(counted & (rc.b != 0))
    questions = [
        Answers(row=np.concatenate([rows, paired]), value=np.concatenate([col.a[rows], col.b[paired]]))
        for col in rc.scores.values()
    ]
    answered = np.flatnonzero(counted & (rc.b != 0) & (_PREF_CATEGORY[rc.preference] >= 0))
    questions.append(Answers(row=answered, value=rc.preference[answered].astype(float)))
    seconds = np.array(rc.time_ms, dtype=float) / 1000  # None (no time stored) reads as NaN
    return rater_quality(
        rater=rc.rater,
        seconds=seconds.reshape(len(rc)),
        straight=counted,
        answers=questions,
        gold={g.rater_id: (g.n_gold, g.n_correct) for g in gold},
        rules=rules,
    )


NO_GOLD_WARNING = (
    "No gold tasks were rated, so gold accuracy is unknown for every rater: the gold-accuracy "
    "filter excluded nobody."
)


def _rater_quality(f: _Frame, sides: tuple[ExclusionSide, ExclusionSide] | None) -> RaterQualityReport:
    """The rater quality section: each rater's measures and flags, who is left out of this report,
    and, when flagged raters are excluded, the win rate and preference alpha with and without them."""
    inp, rc = f.inp, f.rc
    kept = set(np.unique(rc.rater[f.keep]).tolist())
    raters = tuple(
        RaterRow(
            rater=f.rows.raters.get(q.rater_id, str(q.rater_id)), quality=q, excluded=q.rater_id not in kept
        )
        for q in f.quality
    )
    warnings = []
    gold_filter = inp.exclude_flagged or inp.exclude_raters_below is not None
    if gold_filter and not any(q.n_gold for q in f.quality):
        warnings.append(NO_GOLD_WARNING)
    if raters and not kept:
        warnings.append("Every rater was excluded: this report has no human ratings left.")
    before, after = sides if inp.exclude_flagged and sides is not None else (None, None)
    return RaterQualityReport(
        rules=QualityRules(min_seconds=inp.min_seconds),
        exclude_flagged=inp.exclude_flagged,
        raters=raters,
        gold_ratings=int(np.sum(rc.gold)),
        warnings=tuple(warnings),
        before=before,
        after=after,
    )


def _human_by_case(f: _Frame) -> dict[int, float]:
    """Per case mean preference for the candidate: +1 win, 0 tie, -1 loss."""
    pairs = f.pairs
    decided = pairs.outcome != NO_OUTCOME
    points = np.array([1, 0, -1, 0])[pairs.outcome[decided]]
    n_cases = f.case_order.size
    pref_sum = np.bincount(f.pair_group[decided], points, minlength=n_cases)
    pref_n = np.bincount(f.pair_group[decided], minlength=n_cases)
    return {
        c: total / n
        for c, total, n in zip(
            f.case_order.tolist(), pref_sum.astype(np.int64).tolist(), pref_n.tolist(), strict=True
        )
        if n
    }


def _human_vs_metric(
    f: _Frame, deltas: dict[str, dict[int, float]], human: dict[int, float]
) -> tuple[HumanVsMetric, ...]:
    """Rank correlation of each metric's per case delta with the per case human preference."""
    out = []
    for metric, by_case in deltas.items():
        common_cases = sorted(set(by_case) & set(human))
        corr = rank_correlation(
            [by_case[c] for c in common_cases],
            [human[c] for c in common_cases],
            resamples=rank_resamples(len(common_cases)),
            seed=f.inp.seed,
            mc_error=f.inp.mc_error,
        )
        out.append(HumanVsMetric(metric=metric, correlation=corr))
    return tuple(out)


def _judge_checks(f: _Frame) -> JudgeChecks | None:
    """The judge's verdicts on the pending checks per adapter (None when no judge evaluated any)."""
    rows = f.rows.judge_checks
    if not rows:
        return None
    by_adapter: dict[int, list[bool | None]] = defaultdict(list)
    for adapter_id, _, passed, _ in rows:
        by_adapter[adapter_id].append(passed)
    per_adapter, not_evaluated = {}, {}
    for aid, verdicts in by_adapter.items():
        if aid not in f.labels:
            continue
        decided = [v for v in verdicts if v is not None]
        per_adapter[f.labels[aid]] = _rate(sum(decided), len(decided))
        not_evaluated[f.labels[aid]] = len(verdicts) - len(decided)
    return JudgeChecks(
        judges=tuple(sorted({judge for *_, judge in rows})),
        per_adapter=per_adapter,
        not_evaluated=not_evaluated,
    )


def _case_rows(f: _Frame, table: _MetricTable, human: dict[int, float]) -> tuple[CaseRow, ...]:
    """Per case rows, for the drill-down and the CSV export."""
    cand, base = f.inp.candidate_id, f.inp.baseline_id
    outcome_by_case = f.per_case_outcomes.tolist()
    cand_checks, base_checks = table.checks.get(cand, {}), table.checks.get(base, {})
    judged: dict[tuple[int, int], bool | None] = {(a, c): p for a, c, p, _ in f.rows.judge_checks}
    weight = _case_weights(f)
    out = []
    for pos, case in enumerate(f.rows.cases):
        cid = case["id"]
        counts = outcome_by_case[pos]
        out.append(
            CaseRow(
                case_id=cid,
                key=case["key"],
                origin=case["origin"],
                split=case["split"],
                category=case["category"],
                tags=tuple(case["tags"]),
                wins=counts[WIN],
                ties=counts[TIE],
                losses=counts[LOSS],
                human=human.get(cid),
                metrics={
                    m: ValuePair(candidate=table.of(m, cand).get(cid), baseline=table.of(m, base).get(cid))
                    for m in table.names
                },
                checks=CheckPair(candidate=cand_checks.get(cid), baseline=base_checks.get(cid)),
                judge_checks=(
                    CheckPair(candidate=judged.get((cand, cid)), baseline=judged.get((base, cid)))
                    if (cand, cid) in judged or (base, cid) in judged
                    else None
                ),
                routing_weight=weight.get(cid),
            )
        )
    return tuple(out)


def _case_weights(f: _Frame) -> dict[int, float]:
    """Per rated case, its weight in the human means weighted for routing (``_counted_pairs``, 0 when
    every rating of it lies beyond the rated prefix); empty when nothing is weighted."""
    if f.weights is None:
        return {}
    _, case_w = _counted_pairs(f, np.ones(len(f.pairs), dtype=bool))
    assert case_w is not None
    return {
        int(case): 0.0 if math.isnan(value) else float(value)
        for case, value in zip(f.case_order.tolist(), case_w.tolist(), strict=True)
    }


def _adapter(rows: ReportRows, adapter_id: int) -> AdapterInfo | None:
    found = next((a for a in rows.adapters if a["id"] == adapter_id), None)
    return from_json(AdapterInfo, found) if found is not None else None


def report_compute(
    rows: ReportRows,
    *,
    candidate_id: int,
    baseline_id: int,
    criteria: list[str] | tuple[str, ...] | None = None,
    exclude_raters_below: float | None = None,
    resamples: int = 2000,
    style_resamples: int = 100,
    seed: int = 0,
    exclude_flagged: bool = False,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    mc_target: float | None = MC_TARGET,
    kappa_interval: KappaInterval = "bounded",
    routed_rates: RoutedRates = "weighted",
) -> Report:
    """Everything the report page, exports and gates read, from already-fetched rows."""
    return report_from_input(
        ReportInput(
            rows=rows,
            candidate_id=candidate_id,
            baseline_id=baseline_id,
            criteria=tuple(criteria) if criteria is not None else None,
            exclude_raters_below=exclude_raters_below,
            resamples=resamples,
            style_resamples=style_resamples,
            seed=seed,
            exclude_flagged=exclude_flagged,
            min_seconds=min_seconds,
            mc_target=mc_target,
            kappa_interval=kappa_interval,
            routed_rates=routed_rates,
        )
    )


def report_from_input(inp: ReportInput) -> Report:
    """The report of one input, section by section (``run`` and ``lineage`` are left to services)."""
    # Dozens of bootstraps run over the same cases with one seed: they share their draws.
    with reuse_resamples():
        f = _frame(inp)
        rows = inp.rows
        overall = win_rate(*f.pairs.counts())
        table = _metric_table(rows)
        battles = _battle_data(f)
        adversarial, must_refuse = _adversarial(f, table)
        agreement = _agreement(f.rc, f.keep, f.criteria, kappa_interval=inp.kappa_interval)
        human = _human_by_case(f)
        sides = _with_and_without(f, overall, agreement)
        return Report(
            schema=SCHEMA_VERSION,
            candidate=_adapter(rows, inp.candidate_id),
            baseline=_adapter(rows, inp.baseline_id),
            adapters=tuple(from_json(AdapterInfo, a) for a in rows.adapters),
            study_ids=tuple(rows.study_ids),
            settings=_settings(f),
            counts=_counts(f),
            win_rate=overall,
            win_rate_by_slice=_slice_win_rates(f),
            criteria=tuple(_criterion(f, c) for c in f.criteria),
            hallucination=_hallucination(f),
            style=_style(f, battles),
            leaderboard=_leaderboard(f, battles),
            metrics=tuple(_metric(f, table, m) for m in table.names),
            adversarial=adversarial,
            must_refuse=must_refuse,
            agreement=agreement,
            gold=f.gold,
            exclusion=_exclusion(f, sides),
            rater_quality=_rater_quality(f, sides),
            human_vs_metric=_human_vs_metric(f, _metric_deltas(f, table), human),
            cases=_case_rows(f, table, human),
            adversarial_human=_adversarial_human(f, table),
            judge=judge_section(f),
            judge_checks=_judge_checks(f),
        )
