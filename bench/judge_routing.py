"""How many expert ratings each strategy needs to reach the verdict that rating every pair gives.

Simulation, no database and no model (issue #20 item 4):

* **Pairs**: fixture-corpus notes (``fixtures/corpus.py``, held-out pools), each with a baseline and a
  candidate summary drawn from five kinds: faithful, one fact left out, one number wrong, the brief
  house style (most figures left out), and an unvalidated generator's invented facts. The candidate
  draws the better kinds more often. A pool of ``--pool`` pairs is built once; each simulation draws
  ``--pairs`` of them.
* **Experts**: the demo's simulated experts (``evalhub.simulated_experts``): one expert (of five, in
  turn) rates each pair with ``judge``/``prefer``; the candidate scores 1 for a win, 0.5 for a tie or
  "both bad", 0 for a loss. The pool's mean score is the true win rate.
* **Judge** (synthetic, documented here because the trained fixture judge does not exist yet): it sees
  the same weighted-score difference an expert computes (``Judgement.weighted``, judged as a sixth
  rater), plus Gaussian error (``--judge-noise``) and a position bias towards the side shown first
  (``--position-bias``), turned into a probability by a logistic of scale ``--judge-scale``, once per
  order. Its agreement with the experts is printed (``metrics.judge``) so its quality is on record.

Strategies, checked every ``--step`` ratings, each with its own estimator and a 95% interval:

* ``everything``: every pair rated, mean expert score (the reference verdict);
* ``uniform``: pairs in uniform random order, mean of the rated pairs' scores;
* ``routed``: uncertainty-first order with a uniform audit share (``metrics.routing``), estimated by
  prediction-powered inference;
* ``uniform+judge``: uniform order with the same estimator (isolates what the routing adds).

The verdict is where the interval lies against 0.5: "candidate better", "baseline better" or
"undecided". A strategy's ratings needed is the first checkpoint whose verdict equals the full-rating
verdict (a study would stop there), over the simulations whose full verdict is decided.

    .venv/bin/python bench/judge_routing.py                 # 200 simulations of 1,000 pairs
    .venv/bin/python bench/judge_routing.py --sims 20       # smoke
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalhub import simulated_experts as experts  # noqa: E402
from fixtures.corpus import HELDOUT_POOLS, Note, brief_summary, make_notes, synthetic_bad_summary  # noqa: E402
from metrics.judge import judge_calibration  # noqa: E402
from metrics.routing import (  # noqa: E402
    WinRateEstimate,
    judge_uncertainty,
    naive_win_rate,
    ppi_win_rate,
    routing_plan,
)

KINDS = ("faithful", "omit_one", "one_wrong", "brief", "invented")
BASELINE_MIX = (0.25, 0.25, 0.2, 0.2, 0.1)
CANDIDATE_MIX = (0.35, 0.25, 0.15, 0.17, 0.08)
N_EXPERTS = 5
JUDGE_RATER = N_EXPERTS  # the judge's view is one more rater's, with its own slips
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _variant(kind: str, note: Note, rng: random.Random) -> str:
    text = note.summary
    if kind == "omit_one":
        parts = re.split(r"(?<=[.;]) ", text)
        if len(parts) > 1:
            parts.pop(rng.randrange(1, len(parts)))
        return " ".join(parts)
    if kind == "one_wrong":
        numbers = list(_NUMBER.finditer(text))
        m = numbers[rng.randrange(len(numbers))]
        wrong = str(int(float(m.group()) * rng.uniform(1.3, 2.0)) + rng.randint(1, 9))
        return text[: m.start()] + wrong + text[m.end() :]
    if kind == "brief":
        return brief_summary(note)
    if kind == "invented":
        return synthetic_bad_summary(rng, note)
    return text


def _score(verdict: str) -> float:
    return {"B": 1.0, "A": 0.0}.get(verdict, 0.5)


@dataclass(frozen=True)
class Pool:
    expert: np.ndarray  # the candidate's score from the expert who rated the pair
    gap: np.ndarray  # candidate minus baseline weighted score, as the judge's rater sees it
    labels: list[list[str]]  # every simulated expert's preference, for the calibration printout


def build_pool(n: int, seed: int) -> Pool:
    rng = random.Random(seed)
    notes = make_notes(seed, n, HELDOUT_POOLS)
    expert, gap, labels = [], [], []
    for i, note in enumerate(notes):
        a = _variant(rng.choices(KINDS, BASELINE_MIX)[0], note, rng)
        b = _variant(rng.choices(KINDS, CANDIDATE_MIX)[0], note, rng)

        def rate(rater: int, a: str = a, b: str = b, note: Note = note) -> tuple[str, float]:
            ja = experts.judge(a, source=note.document, reference=note.summary, rater=rater)
            jb = experts.judge(b, source=note.document, reference=note.summary, rater=rater)
            return experts.prefer(ja, jb), jb.weighted - ja.weighted

        said = [rate(r)[0] for r in range(N_EXPERTS)]
        labels.append(said)
        expert.append(_score(said[i % N_EXPERTS]))
        gap.append(rate(JUDGE_RATER)[1])
    return Pool(np.array(expert), np.array(gap), labels)


def judge_probabilities(
    gap: np.ndarray, rng: np.random.Generator, *, noise: float, bias: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The judge's probability that the candidate wins, candidate shown second and then first."""
    seen = gap + rng.normal(0, noise, gap.size)

    def logistic(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-x / scale))

    return logistic(seen - bias + rng.normal(0, noise / 2, gap.size)), logistic(
        seen + bias + rng.normal(0, noise / 2, gap.size)
    )


def side(low: float | None, high: float | None) -> str:
    if low is not None and low > 0.5:
        return "candidate better"
    if high is not None and high < 0.5:
        return "baseline better"
    return "undecided"


def simulate(pool: Pool, args: argparse.Namespace, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    pick = rng.choice(pool.expert.size, args.pairs, replace=False)
    y, gap = pool.expert[pick], pool.gap[pick]
    first, second = judge_probabilities(
        gap, rng, noise=args.judge_noise, bias=args.position_bias, scale=args.judge_scale
    )
    judge, uncertainty = judge_uncertainty(first, second)
    routed = routing_plan(uncertainty, audit_share=args.audit_share, seed=seed + 10_000)
    uniform = routing_plan(uncertainty, audit_share=1.0, seed=seed + 20_000)
    full = naive_win_rate(y)
    target = side(full.ci_low, full.ci_high)

    def estimate(name: str, k: int) -> WinRateEstimate:
        if name == "routed":
            rated = routed.rated_mask(k)
            return ppi_win_rate(judge, np.where(rated, y, np.nan), routed.inclusion_probabilities(k))
        rated = uniform.rated_mask(k)
        if name == "uniform":
            return naive_win_rate(np.where(rated, y, np.nan))
        return ppi_win_rate(judge, np.where(rated, y, np.nan), uniform.inclusion_probabilities(k))

    out: dict[str, object] = {"target": target, "truth": float(pool.expert.mean()), "full": full}
    checkpoints = [*range(args.step, args.pairs, args.step), args.pairs]
    for name in ("uniform", "routed", "uniform+judge"):
        needed, stopped, first_decided = args.pairs, None, None
        for k in checkpoints:
            result = estimate(name, k)
            said = side(result.ci_low, result.ci_high)
            if first_decided is None and said != "undecided":
                first_decided = said
            if said == target:
                needed, stopped = k, result
                break
        out[name] = (needed, stopped)
        # A study that stops at its first decided interval would have reported this verdict.
        out[f"{name}@wrong-first"] = first_decided not in (None, target)
        fixed = estimate(name, args.coverage_budget)
        out[f"{name}@fixed"] = fixed
    rated = routed.rated_mask(args.coverage_budget)
    out["naive-routed@fixed"] = naive_win_rate(np.where(rated, y, np.nan))
    return out


def calibration_line(pool: Pool, args: argparse.Namespace) -> str:
    """The judge of one simulation against all five experts (metrics.judge), as a report would show it."""
    rng = np.random.default_rng(0)
    n = min(400, pool.expert.size)
    first, second = judge_probabilities(
        pool.gap[:n], rng, noise=args.judge_noise, bias=args.position_bias, scale=args.judge_scale
    )

    def label(p: float) -> str:
        return "B" if p > 0.6 else "A" if p < 0.4 else "tie"

    records = [
        (u, e, pool.labels[u][e] if pool.labels[u][e] in "AB" else "tie")
        for u in range(n)
        for e in range(N_EXPERTS)
    ]
    judged = {u: label((first[u] + second[u]) / 2) for u in range(n)}
    orders = {u: (label(first[u]), label(second[u])) for u in range(n)}
    cal = judge_calibration({"preference": records}, {"preference": judged}, orders)
    row = cal.rows[0]
    return (
        f"judge vs expert majority on {row.n_units} pairs: accuracy {row.accuracy.rate:.3f} "
        f"[{row.accuracy.ci_low:.3f}, {row.accuracy.ci_high:.3f}], kappa {row.kappa.kappa:.3f} "
        f"[{row.kappa.ci_low:.3f}, {row.kappa.ci_high:.3f}]; experts' mean pairwise kappa {row.expert_mean_kappa:.3f}; "
        f"position consistency {cal.consistency.rate.rate:.3f}\n  {cal.statement}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--coverage-budget", type=int, default=200)
    parser.add_argument("--audit-share", type=float, default=0.2)
    parser.add_argument("--judge-noise", type=float, default=1.0)
    parser.add_argument("--position-bias", type=float, default=0.5)
    parser.add_argument("--judge-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.pairs <= args.pool:
        parser.error(f"--pairs must be between 1 and --pool ({args.pool})")
    if not 0 < args.coverage_budget <= args.pairs:
        parser.error(f"--coverage-budget must be between 1 and --pairs ({args.pairs})")

    started = time.perf_counter()
    pool = build_pool(args.pool, args.seed)
    built = time.perf_counter() - started
    print(
        f"pool of {args.pool} pairs built in {built:.1f} s; true win rate (pool mean) {pool.expert.mean():.4f}"
    )
    print(calibration_line(pool, args))

    runs = [simulate(pool, args, args.seed + s) for s in range(args.sims)]
    decided = [r for r in runs if r["target"] != "undecided"]
    print(
        f"{args.sims} simulations of {args.pairs} pairs; full-rating verdict decided in {len(decided)} "
        f"({sum(r['target'] == 'candidate better' for r in decided)} candidate better)"
    )
    print(
        "| strategy | expert ratings needed (median) | mean | 90th pct | fewer than uniform (median, mean) "
        "| interval covers the truth at the stop | first decided verdict wrong |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| everything | {args.pairs} | {args.pairs} | {args.pairs} | | | |")
    base_med = base_mean = 0.0
    for name in ("uniform", "routed", "uniform+judge"):
        needed = np.array([r[name][0] for r in decided])
        stops = [(r["truth"], r[name][1]) for r in decided if r[name][1] is not None]
        cover = np.mean([s.ci_low <= truth <= s.ci_high for truth, s in stops]) if stops else float("nan")
        med, mean = float(np.median(needed)), float(needed.mean())
        if name == "uniform":
            base_med, base_mean = med, mean
            ratio = ""
        else:
            ratio = f"{1 - med / base_med:.0%}, {1 - mean / base_mean:.0%}"
        wrong = sum(bool(r[f"{name}@wrong-first"]) for r in decided)
        print(
            f"| {name} | {med:.0f} | {mean:.1f} | {np.percentile(needed, 90):.0f} | {ratio} | {cover:.3f} "
            f"| {wrong}/{len(decided)} |"
        )
    print(
        f"\n95% interval coverage of the true win rate at a fixed {args.coverage_budget} ratings, all {args.sims} simulations:"
    )
    for name in ("uniform", "routed", "uniform+judge", "naive-routed"):
        res = [r[f"{name}@fixed"] for r in runs]
        cover = np.mean([x.ci_low <= r["truth"] <= x.ci_high for x, r in zip(res, runs, strict=True)])
        bias = np.mean([x.estimate - r["truth"] for x, r in zip(res, runs, strict=True)])
        width = np.mean([x.ci_high - x.ci_low for x in res])
        print(f"  {name:14s} coverage {cover:.3f}  mean error {bias:+.4f}  mean width {width:.4f}")
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
