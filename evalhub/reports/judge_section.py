"""The report's "Judge calibration" section: the judge of the report's studies against their experts.

From the rows alone (``ReportRows.judged``, ``judge_studies`` and the ratings), so a frozen verdict
recomputes it. The statistics live in ``metrics.judge`` (calibration) and ``metrics.routing`` (the
plan, the prediction-powered win rate and the uniform-order equivalent); this module only gathers
their inputs for the report's candidate and baseline. docs/judge.md explains the choices.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from evalhub.reports.schema import JudgeReport, RatingsSaved
from evalhub.reports.selectors import PREFERENCES, ReportRows
from metrics.agreement import Record
from metrics.judge import Calibration, judge_calibration
from metrics.routing import (
    WinRateEstimate,
    naive_win_rate,
    plan_restore,
    ppi_win_rate,
    rated_prefix,
    uniform_pairs_needed,
)

if TYPE_CHECKING:
    from evalhub.reports.compute import _Frame

#: A judge probability this close to 0.5 is a tie (as ``LogprobJudge.tie_band``).
TIE_BAND = 0.05
#: Expert answers as the judge can give them: "both bad" is no preference between the two, a tie.
_AS_JUDGE = {"A": "A", "B": "B", "tie": "tie", "both_bad": "tie"}
CATEGORIES = ("A", "B", "tie")
PPI = "prediction-powered (judge on every pair + expert residuals weighted by 1/inclusion probability)"
PLAIN = "mean of the rated pairs (the order was uniform random)"


def _judge_prob(orders: dict[str, Any]) -> float | None:
    """Probability that output A is better: the mean of the two orders; None unless both parsed."""
    probs = [orders.get(o, {}).get("prob_a") for o in ("ab", "ba")]
    if any(p is None for p in probs):
        return None
    return float(sum(probs) / 2)


def _as_preference(prob_a: float) -> str:
    return "tie" if abs(prob_a - 0.5) < TIE_BAND else "A" if prob_a > 0.5 else "B"


def _order_answer(order: dict[str, Any] | None) -> str | None:
    pref = (order or {}).get("preference")
    return None if pref in (None, "unparseable") else pref


def _expert_records(f: _Frame, units: set[int]) -> list[Record]:
    rc = f.rc
    rows = np.flatnonzero(f.keep & ~rc.gold & np.isin(rc.task, np.array(sorted(units), dtype=np.int64)))
    out: list[Record] = []
    for i in rows.tolist():
        label = PREFERENCES[int(rc.preference[i])]
        if label in _AS_JUDGE:
            out.append((int(rc.task[i]), int(rc.rater[i]), _AS_JUDGE[label]))
    return out


def _criterion_records(f: _Frame, units: set[int], criterion: str) -> list[Record]:
    """Per expert, which side scored higher on the criterion (A, B or tie)."""
    rc = f.rc
    col = rc.scores.get(criterion)
    if col is None:
        return []
    rows = np.flatnonzero(
        f.keep & ~rc.gold & col.present & np.isin(rc.task, np.array(sorted(units), dtype=np.int64))
    )
    out: list[Record] = []
    for i in rows.tolist():
        a, b = float(col.a[i]), float(col.b[i])
        if math.isfinite(a) and math.isfinite(b):
            out.append((int(rc.task[i]), int(rc.rater[i]), "tie" if a == b else "A" if a > b else "B"))
    return out


def _judge_criterion(judged: list[dict[str, Any]], criterion: str) -> dict[Hashable, Any]:
    """The judge's side per pair on a criterion, where it gave per-criterion scores (in both orders)."""
    out: dict[Hashable, Any] = {}
    for row in judged:
        scores = [(row["orders"].get(o) or {}).get("scores", {}).get(criterion) for o in ("ab", "ba")]
        if all(isinstance(s, dict) and "A" in s and "B" in s for s in scores):
            a = sum(float(s["A"]) for s in scores)
            b = sum(float(s["B"]) for s in scores)
            out[row["task"]] = "tie" if a == b else "A" if a > b else "B"
    return out


def _calibrate(f: _Frame, judged: list[dict[str, Any]], units: set[int]) -> Calibration:
    rows = [r for r in judged if r["task"] in units]
    slices_by_case = f.slices_by_case
    judge_pref: dict[Hashable, Any] = {}
    orders: dict[Hashable, tuple[Any, Any]] = {}
    for row in rows:
        prob = _judge_prob(row["orders"])
        if prob is not None:
            judge_pref[row["task"]] = _as_preference(prob)
        orders[row["task"]] = (_order_answer(row["orders"].get("ab")), _order_answer(row["orders"].get("ba")))
    expert: dict[str, list[Record]] = {"preference": _expert_records(f, units)}
    judge: dict[str, dict[Hashable, Any]] = {"preference": judge_pref}
    for criterion in f.criteria:
        said = _judge_criterion(rows, criterion)
        if said:
            expert[criterion] = _criterion_records(f, units, criterion)
            judge[criterion] = said
    return judge_calibration(
        expert,
        judge,
        orders,
        slices_by_unit={r["task"]: slices_by_case.get(r["case"], []) for r in rows},
        kappa_interval=f.inp.kappa_interval,
    )


def _expert_scores(f: _Frame) -> dict[int, float]:
    """The experts' mean outcome for the candidate per task (1 win, 0.5 tie or both bad, 0 loss)."""
    from evalhub.reports.compute import LOSS, TIE, WIN

    pairs = f.pairs
    value = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}
    sums: dict[int, list[float]] = {}
    for idx, outcome in zip(pairs.idx.tolist(), pairs.outcome.tolist(), strict=True):
        if outcome in value:
            sums.setdefault(int(f.rc.task[idx]), []).append(value[outcome])
    return {task: sum(v) / len(v) for task, v in sums.items()}


@dataclass(frozen=True)
class RoutedPairs:
    """The pairs of the report's uncertainty-first studies as their stored plans drew them: per routed
    task its inclusion probability, the tasks inside the rated prefix (whose probabilities are exact),
    the audit pairs among them, and how many rated tasks lie beyond the prefix (left out)."""

    inclusion: dict[int, float]
    in_prefix: frozenset[int]
    audit: frozenset[int]
    beyond: int

    def weights(self, tasks: np.ndarray) -> np.ndarray:
        """Per rating's task, its weight in a routed-corrected mean: one over its inclusion probability
        inside the rated prefix, 0 beyond it (no known probability: left out, as from the win rate), and
        1 for a task no plan drew (a single output, a gold task, a study in random order)."""
        ids = np.array(sorted(self.inclusion), dtype=np.int64)
        if ids.size == 0:
            return np.ones(tasks.shape, dtype=float)
        weight = np.array([1 / self.inclusion[t] if t in self.in_prefix else 0.0 for t in ids.tolist()])
        pos = np.minimum(np.searchsorted(ids, tasks), ids.size - 1)
        return np.where(ids[pos] == tasks, weight[pos], 1.0)


def routed_pairs(rows: ReportRows, rated_tasks: set[int]) -> RoutedPairs | None:
    """The one derivation of the routed pairs' inclusion probabilities (``metrics.routing``'s plan,
    restored from each pair's stored weight, key and audit draw, cut at the rated prefix), which the
    corrected win rate and the weighted human rates both read; None when no study was routed."""
    studies = [s for s in rows.judge_studies if s["routing"] == "uncertainty_first" and s["routing_applied"]]
    if not studies:
        return None
    inclusion: dict[int, float] = {}
    in_prefix: set[int] = set()
    audit_tasks: set[int] = set()
    beyond = 0
    for study in studies:
        judged = [r for r in rows.judged if r["study"] == study["study"] and r["routing"]]
        if not judged:
            continue
        plan = plan_restore(
            [r["routing"]["weight"] for r in judged],
            [r["routing"]["key"] for r in judged],
            [r["routing"]["audit_draw"] for r in judged],
            audit_weight=judged[0]["routing"]["audit_weight"],
        )
        rated = np.array([r["task"] in rated_tasks for r in judged], dtype=bool)
        n = rated_prefix(plan, rated)
        pi = plan.inclusion_probabilities(n)
        prefix = plan.rated_mask(n)
        audit = plan.audit_mask(n)
        for i, row in enumerate(judged):
            inclusion[row["task"]] = float(pi[i])
            if prefix[i]:
                in_prefix.add(row["task"])
            if audit[i]:
                audit_tasks.add(row["task"])
        beyond += int(np.sum(rated & ~prefix))
    return RoutedPairs(inclusion, frozenset(in_prefix), frozenset(audit_tasks), beyond)


def judge_section(f: _Frame) -> JudgeReport | None:
    """The judge section of the report's candidate against its baseline, or None without a judge."""
    rows = f.rows
    if not rows.judge_studies:
        return None
    cand, base = f.inp.candidate_id, f.inp.baseline_id
    adapter_of = rows.output_adapter
    mine = {cand, base}
    judged = [r for r in rows.judged if {adapter_of.get(r["a"]), adapter_of.get(r["b"])} == mine]
    studies = rows.judge_studies
    routed = f.routed
    routing = "uncertainty_first" if routed is not None else "random"
    expert = _expert_scores(f)

    units = {r["task"] for r in judged}
    calibration = _calibrate(f, judged, units)
    audit_calibration = None
    inclusion: dict[int, float] = {}
    in_prefix: frozenset[int] = frozenset()
    beyond = 0
    if routed is not None:
        inclusion, in_prefix, beyond = routed.inclusion, routed.in_prefix, routed.beyond
        audit_calibration = _calibrate(f, judged, set(routed.audit & units))
        note = (
            "Calibration is measured on every pair the experts rated. Under uncertainty-first routing these are "
            "mostly the judge's hardest pairs, so the first table is pessimistic; the audit table uses only the "
            "uniformly drawn audit pairs, an unbiased sample of all pairs."
        )
    else:
        note = "Calibration is measured on every pair the experts rated (the order was uniform random)."

    # The candidate's win rate: the judge's prediction on every pair (in the candidate's frame).
    f_pred, y, pi = [], [], []
    for r in judged:
        prob = _judge_prob(r["orders"])
        cand_is_a = adapter_of.get(r["a"]) == cand
        pred = 0.5 if prob is None else (prob if cand_is_a else 1 - prob)
        f_pred.append(pred)
        task = r["task"]
        if routed is not None:
            y.append(expert[task] if task in in_prefix and task in expert else math.nan)
            pi.append(inclusion.get(task, 1.0))
        else:
            y.append(expert.get(task, math.nan))
            pi.append(1.0)
    f_arr, y_arr, pi_arr = np.array(f_pred), np.array(y), np.array(pi)
    naive = naive_win_rate(np.array([expert.get(r["task"], math.nan) for r in judged]))
    corrected: WinRateEstimate | None = None
    judge_only = None
    if judged:
        judge_only = dataclasses.replace(
            naive_win_rate(f_arr), estimator="the judge alone (mean of its predictions)", n_rated=0
        )
    if routed is not None and judged:
        corrected = ppi_win_rate(f_arr, y_arr, pi_arr)
    saved = _ratings_saved(f, judged, y_arr, pi_arr, corrected, routed=routed is not None)
    judged_both = sum(1 for r in judged if _judge_prob(r["orders"]) is not None)
    failures = sum(int(s.get("failures") or 0) for s in studies)
    unparseable = sum(
        1
        for r in judged
        if r["orders"] and any(_order_answer(r["orders"].get(o)) is None for o in ("ab", "ba"))
    )
    notes = [f"study {s['study']}: {s['routing_note']}" for s in studies if s.get("routing_note")]
    notes += [f"study {s['study']}: judging is {s['status']}" for s in studies if s["status"] != "done"]
    return JudgeReport(
        judge=", ".join(sorted({str(s["judge"]) for s in studies if s.get("judge")})) or "pending",
        routing=routing,
        pairs=len(judged),
        judged=judged_both,
        failed=failures,
        unparseable=unparseable,
        calibration=calibration,
        audit_calibration=audit_calibration,
        calibration_note=note,
        estimator=PPI if routed is not None else PLAIN,
        win_rate=corrected,
        naive_win_rate=naive,
        judge_only_win_rate=judge_only,
        pairs_beyond_prefix=beyond,
        ratings_saved=saved,
        routing_note="; ".join(notes) or None,
    )


def _ratings_saved(
    f: _Frame,
    judged: list[dict[str, Any]],
    y: np.ndarray,
    pi: np.ndarray,
    corrected: WinRateEstimate | None,
    *,
    routed: bool,
) -> RatingsSaved:
    pairs = f.pairs
    units = {r["task"] for r in judged}
    task_of = f.rc.task[pairs.idx]
    collected = int(np.isin(task_of, np.array(sorted(units), dtype=np.int64)).sum())
    pairs_rated = int(np.unique(task_of[np.isin(task_of, np.array(sorted(units), dtype=np.int64))]).size)
    per_pair = collected / pairs_rated if pairs_rated else None

    def unknown(reason: str) -> RatingsSaved:
        return RatingsSaved(len(judged), pairs_rated, collected, per_pair, None, None, None, None, reason)

    if not routed:
        return unknown("the order was uniform random: routing saved nothing")
    if corrected is None or corrected.std_error is None or per_pair is None:
        return unknown("too few pairs rated to estimate the interval")
    needed = uniform_pairs_needed(y, pi, n_pairs=len(judged), std_error=corrected.std_error)
    if needed is None:
        return unknown("the experts' scores on the rated pairs do not vary: no variance to compare")
    uniform = math.ceil(needed * per_pair)
    # Negative when the judge's predictions made the interval wider than a uniform sample's would be.
    saved = uniform - collected
    return RatingsSaved(
        len(judged),
        pairs_rated,
        collected,
        per_pair,
        needed,
        uniform,
        saved,
        saved / uniform if uniform else None,
    )


def calibration_tables(judge: JudgeReport | None) -> list[tuple[str, Calibration]]:
    """The calibration tables a view shows, titled: all pairs both rated, then (under routing) the audit pairs."""
    if judge is None:
        return []
    tables = [("Every pair the judge and the experts both rated", judge.calibration)]
    if judge.audit_calibration is not None:
        tables.append(("The uniform audit pairs only (unbiased under routing)", judge.audit_calibration))
    return tables


def judge_only_gates(gates: list[Any]) -> list[str]:
    """The names of the gates whose value came from the judge alone (a policy with allow_judge_only)."""
    return [str(g.get("name")) for g in gates if isinstance(g, dict) and g.get("judge_only")]
