"""Pairs judged per second by the HTTP judge against a real vLLM CPU server, by concurrency.

The baseline is concurrency 1 in the same run (one request in flight: the two orders of a pair one
after the other); each other concurrency is printed as a ratio to it. The server is vLLM's CPU build
on the fixture base (``tests/vllm_server.py`` starts it from ``.venv-vllm``), or any server given
with ``--base-url`` and ``--model``. The judge is constrained (vLLM structured outputs) so every
answer parses and the time is the protocol's, not the fixture model's rambling.

    .venv/bin/python bench/judge_http.py                         # 24 pairs, concurrency 1 and 4
    .venv/bin/python bench/judge_http.py --pairs 8 --concurrency 1,2   # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalhub.judging.http import HttpJudge  # noqa: E402
from evalhub.judging.logprob import JudgeContextError, PairToJudge  # noqa: E402

RUBRIC = "- Factual accuracy: every figure matches the notes.\n- Coverage: the key figures are there."


def make_pairs(n: int, seed: int) -> list[PairToJudge]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        revenue, growth, margin = rng.uniform(100, 900), rng.uniform(-10, 25), rng.uniform(5, 40)
        company = f"Company {i:03d}"
        note = (
            f"Notes from the {company} earnings call for Q{rng.randint(1, 4)} 2024. Revenue was ${revenue:.1f} "
            f"million, {'up' if growth >= 0 else 'down'} {abs(growth):.1f}%. Operating margin {margin:.1f}%."
        )
        faithful = f"{company}: revenue ${revenue:.1f} million ({growth:+.1f}%), margin {margin:.1f}%."
        wrong = f"{company}: revenue ${revenue * 1.4:.1f} million ({-growth:+.1f}%), margin {margin:.1f}%."
        pairs.append(PairToJudge(note, faithful, wrong) if i % 2 else PairToJudge(note, wrong, faithful))
    return pairs


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    if args.base_url:
        yield args.base_url, args.model
        return
    from tests.vllm_server import vllm_serving

    with tempfile.TemporaryDirectory() as tmp, vllm_serving(Path(tmp) / "server.log", max_num_seqs=16) as s:
        yield s.base_url, s.model


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--concurrency", default="1,4", help="comma-separated; the first is the baseline")
    parser.add_argument("--api", choices=["chat", "completions"], default="chat")
    parser.add_argument("--base-url", default="", help="an already running server (else vLLM is started)")
    parser.add_argument("--model", default="fixture-base")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    pairs = make_pairs(args.pairs, args.seed)
    with server(args) as (base_url, model):
        print(f"server {base_url} model {model}; {len(pairs)} pairs, both orders, api {args.api}", flush=True)
        with HttpJudge(base_url=base_url, model=model, api=args.api, constrained=True, timeout_s=120) as warm:
            warm.judge_pairs(pairs[:2], rubric=RUBRIC)  # first requests pay for warm-up
        rates: dict[int, float] = {}
        for level in levels:
            with HttpJudge(
                base_url=base_url,
                model=model,
                api=args.api,
                constrained=True,
                timeout_s=120,
                concurrency=level,
            ) as judge:
                started = time.perf_counter()
                results = judge.judge_pairs(pairs, rubric=RUBRIC)
                seconds = time.perf_counter() - started
            orders = [o for r in results if not isinstance(r, JudgeContextError) for o in r]
            failed = sum(1 for o in orders if o.failure)
            parsed = sum(1 for o in orders if o.preference != "unparseable")
            latency = sorted(o.latency_ms for o in orders)
            rates[level] = len(pairs) / seconds
            print(
                f"concurrency {level:>2}: {rates[level]:.2f} pairs/s ({seconds:.1f} s), {parsed}/{len(orders)} "
                f"orders parsed, {failed} failed, median request {latency[len(latency) // 2]:.0f} ms, "
                f"ratio to concurrency {levels[0]}: {rates[level] / rates[levels[0]]:.2f}x",
                flush=True,
            )
            if failed:
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
