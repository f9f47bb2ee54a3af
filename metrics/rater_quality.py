"""Rater quality: per rater, how fast they rated, how often they got gold tasks right and whether
they gave the same answer everywhere (straight-lining), and the flags those measures raise.

Plain statistics over per-rating arrays (no Django); the report feeds it the ratings it fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from metrics.stats import StatResult

DEFAULT_MIN_SECONDS = 5.0

TOO_FAST = "too_fast"
FAILED_GOLD = "failed_gold"
STRAIGHT_LINING = "straight_lining"
FLAG_CODES = (TOO_FAST, FAILED_GOLD, STRAIGHT_LINING)


@dataclass(frozen=True, slots=True)
class QualityRules(StatResult):
    """When a rater is flagged.

    - too fast: more than ``max_fast_share`` of their timed ratings took under ``min_seconds``;
    - failed gold: gold accuracy below ``min_gold_accuracy`` over at least ``min_gold`` gold tasks;
    - straight-lining: at least ``max_straight_share`` of their answers equal their most common
      answer to the same question, over at least ``min_straight_ratings`` ratings.
    """

    min_seconds: float = DEFAULT_MIN_SECONDS
    max_fast_share: float = 0.25
    min_gold_accuracy: float = 0.7
    min_gold: int = 3
    max_straight_share: float = 0.9
    min_straight_ratings: int = 10


@dataclass(frozen=True, slots=True)
class RaterFlag(StatResult):
    """One reason to distrust a rater: a code from ``FLAG_CODES`` and the reason in plain words."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class RaterQuality(StatResult):
    """One rater's measures (None where there is nothing to measure) and flags.

    ``median_seconds`` and ``fast_share`` are over ``n_timed`` ratings (those with a time);
    ``straight_share`` is over ``n_answers`` answers on ``n_straight_ratings`` ratings."""

    rater_id: int
    n_ratings: int
    n_timed: int
    median_seconds: float | None
    fast_share: float | None
    n_gold: int
    n_gold_correct: int
    gold_accuracy: float | None
    n_straight_ratings: int
    n_answers: int
    straight_share: float | None
    flags: tuple[RaterFlag, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True, slots=True)
class Answers:
    """One question's answers (a rubric criterion, the pairwise preference, ...): for each answer,
    the rating it belongs to (an index into the ratings given to ``rater_quality``) and the answer
    coded as a number (NaN: not answered)."""

    row: np.ndarray
    value: np.ndarray


def _value_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's index among the distinct values, and how many there are. Scores are small
    integers, which need no sort."""
    if values.size and np.all(values == np.round(values)):
        low, high = int(values.min()), int(values.max())
        if high - low < 1000:
            return (values - low).astype(np.int64), high - low + 1
    distinct, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1), int(distinct.size)


def straight_line_counts(
    group: np.ndarray, n_groups: int, answers: Sequence[Answers]
) -> tuple[np.ndarray, np.ndarray]:
    """Per rater (``group`` gives each rating's rater as 0..n_groups-1): the answers equal to their
    most common answer to the same question, and all their answers, summed over the questions.

    A rater who always gives the same answer scores every answer; one who spreads over k values
    evenly scores about 1/k of them. Ties between modal values count once."""
    same = np.zeros(n_groups, dtype=np.int64)
    total = np.zeros(n_groups, dtype=np.int64)
    for question in answers:
        ok = ~np.isnan(question.value)
        if not ok.any():
            continue
        value_code, n_values = _value_codes(question.value[ok])
        # One integer per (rater, answer) pair; a rater's row of the count table holds their answers.
        key = group[question.row[ok]] * n_values + value_code
        if n_groups * n_values <= 4 * key.size + 1024:  # a dense table is small enough
            table = np.bincount(key, minlength=n_groups * n_values).reshape(n_groups, n_values)
            same += table.max(axis=1)
            total += table.sum(axis=1)
        else:
            pair, count = np.unique(key, return_counts=True)
            np.maximum.at(modal := np.zeros(n_groups, dtype=np.int64), pair // n_values, count)
            same += modal
            total += np.bincount(pair // n_values, weights=count, minlength=n_groups).astype(np.int64)
    return same, total


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def rater_flags(q: RaterQuality, rules: QualityRules) -> tuple[RaterFlag, ...]:
    """The flags a rater's measures raise under the rules, each with its reason in plain words."""
    flags = []
    if q.fast_share is not None and q.fast_share > rules.max_fast_share:
        fast = round(q.fast_share * q.n_timed)
        flags.append(
            RaterFlag(
                TOO_FAST,
                f"too fast: {fast} of {q.n_timed} ratings ({_percent(q.fast_share)}) took under "
                f"{_seconds(rules.min_seconds)}, above the {_percent(rules.max_fast_share)} allowed "
                f"(median {_seconds(round(q.median_seconds or 0.0, 1))} per task)",
            )
        )
    if (
        q.gold_accuracy is not None
        and q.n_gold >= rules.min_gold
        and q.gold_accuracy < rules.min_gold_accuracy
    ):
        flags.append(
            RaterFlag(
                FAILED_GOLD,
                f"failed gold: {q.n_gold_correct} of {q.n_gold} gold tasks right "
                f"({_percent(q.gold_accuracy)}), below the {_percent(rules.min_gold_accuracy)} required",
            )
        )
    if (
        q.straight_share is not None
        and q.n_straight_ratings >= rules.min_straight_ratings
        and q.straight_share >= rules.max_straight_share
    ):
        flags.append(
            RaterFlag(
                STRAIGHT_LINING,
                f"straight-lining: {_percent(q.straight_share)} of {q.n_answers} answers on "
                f"{q.n_straight_ratings} ratings were their usual answer to the same question "
                f"(limit {_percent(rules.max_straight_share)})",
            )
        )
    return tuple(flags)


def rater_quality(
    *,
    rater: np.ndarray,
    seconds: np.ndarray,
    straight: np.ndarray,
    answers: Sequence[Answers],
    gold: Mapping[int, tuple[int, int]],
    rules: QualityRules | None = None,
) -> tuple[RaterQuality, ...]:
    """Per rater (in id order), from one entry per rating: ``rater``, ``seconds`` on the task (NaN
    when unknown) and ``straight`` (whether the rating counts for straight-lining: the caller leaves
    out gold tasks, whose answer is fixed); ``answers`` per question (see ``Answers``, only from
    counted ratings); ``gold`` maps a rater to (gold tasks rated, answered right)."""
    rules = rules or QualityRules()
    rater = np.asarray(rater, dtype=np.int64).reshape(-1)
    seconds = np.asarray(seconds, dtype=float).reshape(-1)
    straight = np.asarray(straight, dtype=bool).reshape(-1)
    # One sort by rater gives each rating's rater index (``group``) and each rater's slice of times.
    order = np.argsort(rater, kind="stable")
    starts = np.ones(rater.size, dtype=bool)
    starts[1:] = rater[order][1:] != rater[order][:-1]
    ids = rater[order][starts]
    group = np.empty(rater.size, dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    n_ratings = np.bincount(group, minlength=ids.size)
    n_straight = np.bincount(group[straight], minlength=ids.size)
    timed_order = order[~np.isnan(seconds[order])]
    times, owners = seconds[timed_order], group[timed_order]
    bounds = np.searchsorted(owners, np.arange(ids.size + 1))
    n_fast = np.bincount(owners[times < rules.min_seconds], minlength=ids.size)
    same, n_answers = straight_line_counts(group, int(ids.size), answers)
    out = []
    for k, r in enumerate(ids.tolist()):
        mine = times[bounds[k] : bounds[k + 1]]
        n_gold, n_right = gold.get(r, (0, 0))
        answered = int(n_answers[k])
        q = RaterQuality(
            rater_id=int(r),
            n_ratings=int(n_ratings[k]),
            n_timed=int(mine.size),
            median_seconds=float(np.median(mine)) if mine.size else None,
            fast_share=int(n_fast[k]) / mine.size if mine.size else None,
            n_gold=int(n_gold),
            n_gold_correct=int(n_right),
            gold_accuracy=n_right / n_gold if n_gold else None,
            n_straight_ratings=int(n_straight[k]),
            n_answers=answered,
            straight_share=int(same[k]) / answered if answered else None,
        )
        out.append(replace(q, flags=rater_flags(q, rules)))
    return tuple(out)
