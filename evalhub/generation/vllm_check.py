"""Greedy outputs of the hf and vllm backends on the fixture suites and adapters, compared.

Run inside the vLLM venv (``evalhub/generation/install_vllm_cpu.sh`` makes ``.venv-vllm``):

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python evalhub/generation/vllm_check.py --limit 20

Prints the share of identical outputs (same generated token ids) and exits 1 below
``--min-match``. vLLM starts its workers with spawn, so everything runs under ``__main__``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _import_engine() -> None:
    """Run from a checkout: the vLLM venv has no editable install of evalhub (nor Django or Celery,
    which ``evalhub.generation`` does not need)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _strip_eos(ids: tuple[int, ...], eos: int | None) -> tuple[int, ...]:
    return ids[:-1] if ids and eos is not None and ids[-1] == eos else ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=str(REPO / "fixtures" / "models"))
    parser.add_argument(
        "--suites", nargs="*", default=None, help="JSONL suites (default: fixtures/suites/*.jsonl)"
    )
    parser.add_argument(
        "--adapters", nargs="*", default=["summariser-v1", "summariser-v2", "tone-v1", "synthetic-bad"]
    )
    parser.add_argument("--limit", type=int, default=20, help="cases per suite")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--min-match", type=float, default=0.95)
    parser.add_argument("--json", default="", help="write the comparison here")
    args = parser.parse_args(argv)

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    _import_engine()
    from evalhub.generation import GenerationConfig, expand_requests, get_backend

    models = Path(args.models)
    suites = (
        [Path(s) for s in args.suites]
        if args.suites
        else sorted((REPO / "fixtures" / "suites").glob("*.jsonl"))
    )
    cases: dict[Any, str] = {}
    for suite in suites:
        rows = [json.loads(line) for line in suite.read_text().splitlines() if line.strip()]
        for row in rows[: args.limit]:
            cases[(suite.stem, row["id"])] = row["input"]
    adapters = {name: models / name for name in args.adapters}
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    requests = expand_requests(cases, [None, *adapters], config)
    print(
        f"{len(cases)} cases x {len(adapters) + 1} (base + adapters) = {len(requests)} requests", flush=True
    )

    t0 = time.perf_counter()
    hf = get_backend("hf", device="cpu")
    hf.load(models / "base", adapters)
    hf_results = {r.key: r for r in hf.generate(requests, config)}
    hf.close()
    hf_s = time.perf_counter() - t0
    print(f"hf backend: {hf_s:.1f} s", flush=True)

    t0 = time.perf_counter()
    vllm = get_backend(
        "vllm", dtype="float32", gpu_memory_utilization=0.3, max_model_len=1024, enforce_eager=True
    )
    vllm.load(models / "base", adapters)
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vllm_results = {r.key: r for r in vllm.generate(requests, config)}
    vllm_s = time.perf_counter() - t0
    print(f"vllm backend: engine start {start_s:.1f} s, generation {vllm_s:.1f} s", flush=True)

    eos = getattr(getattr(hf, "tokenizer", None), "eos_token_id", None)
    same_tokens = same_text = 0
    by_adapter: dict[str, list[int]] = {}
    mismatches: list[dict[str, str]] = []
    for request in requests:
        a, b = hf_results[request.key], vllm_results[request.key]
        tokens_equal = _strip_eos(a.token_ids, eos) == _strip_eos(b.token_ids, eos)
        same_tokens += tokens_equal
        same_text += a.text == b.text
        by_adapter.setdefault(str(request.adapter), [0, 0])
        by_adapter[str(request.adapter)][0] += tokens_equal
        by_adapter[str(request.adapter)][1] += 1
        if not tokens_equal and len(mismatches) < 5:
            mismatches.append({"key": str(request.key), "hf": a.text, "vllm": b.text})
    share = same_tokens / len(requests)
    print(f"identical outputs (generated token ids): {same_tokens}/{len(requests)} = {share:.1%}")
    print(f"identical texts: {same_text}/{len(requests)} = {same_text / len(requests):.1%}")
    for adapter, (same, total) in by_adapter.items():
        print(f"  {adapter:16s} {same}/{total}")
    for m in mismatches:
        print(f"  differs: {m}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "requests": len(requests),
                    "identical_tokens": same_tokens,
                    "identical_texts": same_text,
                    "share": share,
                    "by_adapter": by_adapter,
                    "hf_seconds": hf_s,
                    "vllm_start_seconds": start_s,
                    "vllm_seconds": vllm_s,
                    "mismatches": mismatches,
                },
                indent=2,
            )
        )
    print(f"MATCH {share:.4f}")
    return 0 if share >= args.min_match else 1


if __name__ == "__main__":
    sys.exit(main())
