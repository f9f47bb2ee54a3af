"""Calibration of an automatic judge against the study's own experts: how often it agrees with the
expert majority (accuracy and Cohen's kappa, with intervals), per criterion and per slice, beside the
experts' agreement among themselves; how often its two presentation orders agree; and a plain statement
of whether it may stand in for the experts, from the rule in ``StandInRule`` (docs/judge.md).

Plain Python over records; the agreement statistics themselves live in ``metrics.agreement`` and the
proportion intervals in ``metrics.stats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metrics.agreement import (
    CohenKappaResult,
    KappaInterval,
    KappaWeights,
    Record,
    cohen_kappa,
    pairwise_cohen_kappa,
    ratings_matrix,
)
from metrics.stats import Rate, StatResult, wilson_interval

OVERALL = "all"


def _rate(successes: int, n: int, confidence: float) -> Rate:
    if n <= 0:
        return Rate(None, None, None)
    low, high = wilson_interval(successes, n, confidence=confidence)
    return Rate(successes / n, low, high)


def expert_majority(records: Iterable[Record]) -> tuple[dict[Hashable, Any], int]:
    """Per unit, the value most experts gave, and how many units had no majority.

    A unit where two values tie for most common has no majority: it is left out (and counted),
    never settled by a guess. Missing values (None) are not votes.
    """
    votes: dict[Hashable, Counter[Any]] = {}
    for unit, _, value in records:
        tally = votes.setdefault(unit, Counter())
        if value is not None:
            tally[value] += 1
    majority: dict[Hashable, Any] = {}
    no_majority = 0
    for unit, tally in votes.items():
        ranked = tally.most_common(2)
        if not ranked:
            continue
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            no_majority += 1
            continue
        majority[unit] = ranked[0][0]
    return majority, no_majority


@dataclass(frozen=True)
class JudgeAgreement(StatResult):
    """The judge against the expert majority on one criterion and one slice of units."""

    criterion: str
    slice: str
    n_units: int
    n_no_majority: int
    accuracy: Rate
    kappa: CohenKappaResult
    expert_mean_kappa: float | None
    expert_pairs_defined: int
    reason: str | None = None


def judge_agreement(
    expert: Iterable[Record],
    judge: Mapping[Hashable, Any],
    *,
    criterion: str = "preference",
    slice_name: str = OVERALL,
    units: Iterable[Hashable] | None = None,
    weights: KappaWeights = None,
    categories: Sequence[Any] | None = None,
    confidence: float = 0.95,
    kappa_interval: KappaInterval = "bounded",
) -> JudgeAgreement:
    """Accuracy (Wilson interval) and Cohen's kappa (asymptotic interval in [-1, 1]) of the judge's values
    against the expert majority, on the units both rated, beside the experts' mean pairwise kappa
    (Light's kappa) on the same units.

    ``expert`` holds ``(unit_id, expert_id, value)`` records; ``judge`` maps a unit to the judge's
    value (units it could not judge, e.g. an unparseable answer, are simply absent). ``units``
    restricts everything to a slice. ``weights`` gives weighted kappa for ordinal scores.
    ``kappa_interval`` says how both kappas' intervals are given (``metrics.agreement.KappaInterval``).
    """
    keep = set(units) if units is not None else None
    rows = [r for r in expert if keep is None or r[0] in keep]
    majority, no_majority = expert_majority(rows)
    shared = [u for u in majority if u in judge and judge[u] is not None]
    n = len(shared)
    correct = sum(1 for u in shared if judge[u] == majority[u])
    truth = [majority[u] for u in shared]
    said = [judge[u] for u in shared]
    kappa = cohen_kappa(truth, said, weights=weights, categories=categories, interval=kappa_interval)

    # The experts' agreement among themselves on the same units the judge is measured on.
    both = set(shared)
    expert_rows = [r for r in rows if r[0] in both]
    experts = (
        pairwise_cohen_kappa(
            ratings_matrix(expert_rows, categories=categories), weights=weights, interval=kappa_interval
        )
        if expert_rows
        else None
    )
    reason = None
    if n == 0:
        reason = "no unit was rated by both the judge and an expert majority"
    elif kappa.kappa is None:
        reason = kappa.reason
    return JudgeAgreement(
        criterion=criterion,
        slice=slice_name,
        n_units=n,
        n_no_majority=no_majority,
        accuracy=_rate(correct, n, confidence),
        kappa=kappa,
        expert_mean_kappa=experts.mean_kappa if experts is not None else None,
        expert_pairs_defined=experts.n_pairs_defined if experts is not None else 0,
        reason=reason,
    )


@dataclass(frozen=True)
class PositionConsistency(StatResult):
    """How often the judge gave the same answer with the pair shown in both orders."""

    n_pairs: int
    n_consistent: int
    rate: Rate
    reason: str | None = None


def position_consistency(
    orders: Mapping[Hashable, tuple[Any, Any]], *, confidence: float = 0.95
) -> PositionConsistency:
    """Share of pairs whose two orders agree, with a Wilson interval.

    ``orders[unit] = (first, second)``: the judge's answers with the pair shown one way and then
    swapped, both already mapped back to the same frame (which *output* won, not which position);
    a pair with either answer missing (unparseable) is left out.
    """
    both = [(a, b) for a, b in orders.values() if a is not None and b is not None]
    agree = sum(1 for a, b in both if a == b)
    reason = None if both else "no pair has both orders judged"
    return PositionConsistency(len(both), agree, _rate(agree, len(both), confidence), reason)


@dataclass(frozen=True)
class StandInRule(StatResult):
    """When the judge may stand in for the experts (docs/judge.md).

    On every criterion, over all units: the lower bound of the judge's kappa with the expert majority
    must reach the experts' own mean pairwise kappa minus ``kappa_margin``, on at least ``min_units``
    units; the position-consistency rate must be at least ``min_consistency``; and no slice with at
    least ``min_units`` units may be clearly worse (its kappa's upper bound below that bar).
    """

    kappa_margin: float = 0.1
    min_consistency: float = 0.8
    min_units: int = 30


@dataclass(frozen=True)
class Calibration(StatResult):
    """The calibration table of one judge on one study, and the plain statement."""

    rows: tuple[JudgeAgreement, ...]
    consistency: PositionConsistency
    rule: StandInRule
    may_stand_in: bool
    statement: str
    reasons: tuple[str, ...]


def _row_failures(row: JudgeAgreement, rule: StandInRule) -> list[str]:
    name = f"{row.criterion}" if row.slice == OVERALL else f"{row.criterion} on slice {row.slice!r}"
    if row.expert_mean_kappa is None:
        return [f"{name}: the experts' agreement among themselves is undefined ({row.n_units} units)"]
    bar = row.expert_mean_kappa - rule.kappa_margin
    low, high = row.kappa.ci_low, row.kappa.ci_high
    if row.slice == OVERALL:
        if row.n_units < rule.min_units:
            return [f"{name}: only {row.n_units} units rated by both (at least {rule.min_units} needed)"]
        if low is None or low < bar:
            shown = "undefined" if low is None else f"{low:.2f}"
            return [
                f"{name}: the judge's kappa with the expert majority has lower bound {shown}, below the "
                f"experts' own kappa {row.expert_mean_kappa:.2f} minus {rule.kappa_margin:.2f}"
            ]
        return []
    if row.n_units >= rule.min_units and high is not None and high < bar:
        return [f"{name}: clearly worse than the experts (kappa upper bound {high:.2f} below {bar:.2f})"]
    return []


def judge_calibration(
    expert: Mapping[str, Iterable[Record]],
    judge: Mapping[str, Mapping[Hashable, Any]],
    orders: Mapping[Hashable, tuple[Any, Any]],
    *,
    slices_by_unit: Mapping[Hashable, Iterable[str]] | None = None,
    weights: Mapping[str, KappaWeights] | None = None,
    rule: StandInRule | None = None,
    confidence: float = 0.95,
    kappa_interval: KappaInterval = "bounded",
) -> Calibration:
    """The judge against the experts, criterion by criterion and slice by slice, and the statement.

    ``expert[criterion]`` holds that criterion's ``(unit_id, expert_id, value)`` records and
    ``judge[criterion]`` the judge's value per unit (``"preference"`` is a criterion like the
    others). ``orders`` are the judge's preference in both orders (see ``position_consistency``).
    Rows come overall first, then each slice by name, per criterion in the given order.
    ``kappa_interval`` says how the kappa intervals the rule reads are given (``judge_agreement``).
    """
    rule = rule or StandInRule()
    weights = weights or {}
    slices: dict[str, list[Hashable]] = {}
    for unit, names in (slices_by_unit or {}).items():
        for name in names:
            slices.setdefault(name, []).append(unit)
    rows: list[JudgeAgreement] = []
    for criterion, records in expert.items():
        kept = list(records)
        said = judge.get(criterion, {})
        w = weights.get(criterion)
        rows.append(
            judge_agreement(
                kept,
                said,
                criterion=criterion,
                weights=w,
                confidence=confidence,
                kappa_interval=kappa_interval,
            )
        )
        for name, units in sorted(slices.items()):
            rows.append(
                judge_agreement(
                    kept,
                    said,
                    criterion=criterion,
                    slice_name=name,
                    units=units,
                    weights=w,
                    confidence=confidence,
                    kappa_interval=kappa_interval,
                )
            )
    consistency = position_consistency(orders, confidence=confidence)

    reasons = [failure for row in rows for failure in _row_failures(row, rule)]
    if not rows:
        reasons.append("no criterion was rated by the experts")
    rate = consistency.rate.rate
    if rate is None or rate < rule.min_consistency:
        shown = "undefined" if rate is None else f"{rate:.2f}"
        reasons.append(
            f"position consistency {shown} is below {rule.min_consistency:.2f}: the judge's answer "
            "depends on which side it reads first"
        )
    may = not reasons
    if may:
        statement = (
            "The judge may stand in for experts on this study: on every criterion its agreement with the "
            "expert majority is, at the lower end of its interval, within "
            f"{rule.kappa_margin:.2f} of the experts' agreement with each other, and it gives the same answer "
            f"in both orders {rate:.0%} of the time."
        )
    else:
        statement = "The judge may not stand in for experts on this study: " + "; ".join(reasons) + "."
    return Calibration(tuple(rows), consistency, rule, may, statement, tuple(reasons))
