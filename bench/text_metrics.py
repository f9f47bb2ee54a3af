"""Text-metric throughput: ``metrics.registry.score_many`` on one process vs every core.

Scores N synthetic (summary, reference summary, document) triples, generated here from templates
of earnings-call and clinic notes, with ROUGE-1/2/L/Lsum, BLEU, chrF, length, length ratio and
compression ratio; checks that both runs give identical results and prints the speed-up.

    .venv/bin/python bench/text_metrics.py            # 100,000 triples
    .venv/bin/python bench/text_metrics.py --n 5000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metrics.registry import Item, score_many

METRICS = [
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "bleu",
    "chrf",
    "length",
    "length_ratio",
    "compression_ratio",
]

COMPANIES = ["Jadeport Foods", "Lattice Industries", "Glenmoor Group", "Northwind Metals", "Corvane Health"]
PEOPLE = ["Zara Achebe", "Carlos Bergstrom", "Mei Tanaka", "Oskar Lindqvist", "Amara Okafor"]
DRUGS = ["amoxicillin 250 mg", "prednisolone 10 mg", "ibuprofen 400 mg", "metformin 500 mg"]
SYMPTOMS = ["a sore throat", "shortness of breath", "lower back pain", "persistent cough", "headaches"]
FILLER = [
    "Analysts asked about pricing pressure and supply costs.",
    "The board kept the dividend unchanged.",
    "Management expects capital spending to stay flat.",
    "No known drug allergies.",
    "The patient was advised to rest and drink plenty of fluids.",
    "Demand stayed steady across regions.",
]


def finance(rng: random.Random) -> tuple[str, str, str]:
    company, person = rng.choice(COMPANIES), rng.choice(PEOPLE)
    q, year = rng.randint(1, 4), rng.randint(2019, 2025)
    revenue, growth = round(rng.uniform(100, 900), 1), round(rng.uniform(-10, 30), 1)
    margin, guide = round(rng.uniform(5, 35), 1), rng.randint(100, 950)
    facts = [
        f"{company} held its Q{q} {year} earnings call today.",
        f"Quarterly revenue was ${revenue} million, {'up' if growth >= 0 else 'down'} {abs(growth)}% on a year ago.",
        f"Operating margin was {margin}%.",
        f"CEO {person} said demand stayed steady.",
        f"Guidance for next quarter is roughly ${guide} million in revenue.",
    ]
    doc = " ".join(facts + rng.sample(FILLER, 3) * rng.randint(1, 3))
    reference = (
        f"{company} reported Q{q} {year} revenue of ${revenue} million, {'up' if growth >= 0 else 'down'} "
        f"{abs(growth)}%, with an operating margin of {margin}%. Guidance is about ${guide} million."
    )
    # A plausible model output: the reference reworded, sometimes with a wrong figure or a dropped fact.
    parts = [
        f"In Q{q} {year}, {company} had revenue of ${revenue if rng.random() > 0.2 else round(revenue * 1.1, 1)} million",
        f"({'up' if growth >= 0 else 'down'} {abs(growth)}%)",
        f"and an operating margin of {margin}%." if rng.random() > 0.3 else ".",
        f"Next-quarter guidance is about ${guide} million." if rng.random() > 0.3 else "",
    ]
    return " ".join(p for p in parts if p), reference, doc


def clinical(rng: random.Random) -> tuple[str, str, str]:
    age, sex = rng.randint(18, 90), rng.choice(["man", "woman"])
    symptom, drug, weeks = rng.choice(SYMPTOMS), rng.choice(DRUGS), rng.randint(1, 12)
    bp = f"{rng.randint(100, 180)}/{rng.randint(60, 100)}"
    hr = rng.randint(50, 110)
    doc = " ".join(
        [
            f"Clinic visit note. A {age}-year-old {sex} presented with {symptom} for {rng.randint(2, 30)} days.",
            f"Vitals: BP {bp} mmHg, heart rate {hr} bpm, temperature {round(rng.uniform(36, 39), 1)} C.",
            f"The patient was prescribed {drug} daily. Review again in {weeks} weeks.",
            *rng.sample(FILLER, 2),
        ]
    )
    reference = f"A {age}-year-old {sex} was seen for {symptom}. BP {bp} mmHg, heart rate {hr} bpm. Started {drug}; follow-up in {weeks} weeks."
    prediction = (
        f"Patient ({age}, {'male' if sex == 'man' else 'female'}) presented with {symptom}. "
        f"Vitals: BP {bp} mmHg, heart rate {hr if rng.random() > 0.2 else hr + 7} bpm. "
        + (f"Prescribed {drug}; follow-up in {weeks} weeks." if rng.random() > 0.25 else "")
    )
    return prediction, reference, doc


def make_items(n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    return [Item(*(finance(rng) if rng.random() < 0.5 else clinical(rng))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    items = make_items(args.n)
    words = sum(
        len(it.prediction.split()) + len(it.reference.split()) + len(it.input.split()) for it in items
    )
    print(
        f"{args.n:,} triples, {words / args.n:.0f} words per triple on average; metrics: {', '.join(METRICS)}"
    )

    t0 = time.perf_counter()
    single = score_many(items, METRICS, workers=1)
    t_single = time.perf_counter() - t0
    print(f"1 process:   {t_single:8.1f} s  ({args.n / t_single:,.0f} triples/s)", flush=True)

    t0 = time.perf_counter()
    multi = score_many(items, METRICS, workers=args.workers)
    t_multi = time.perf_counter() - t0
    print(f"{args.workers} processes: {t_multi:8.1f} s  ({args.n / t_multi:,.0f} triples/s)")
    print(
        f"speed-up: x{t_single / t_multi:.2f} on {args.workers} workers (os.cpu_count() = {os.cpu_count()})"
    )
    print(f"identical results: {single == multi}")
    if single != multi:
        raise SystemExit("parallel results differ from the single-process ones")


if __name__ == "__main__":
    main()
