"""Perplexity throughput on a GPU: plain HF ``model(ids, labels=ids)`` vs ``metrics.perplexity``.

TinyLlama-1.1B shape with random weights, bf16, 2,048-token sequences of random token ids.
Imports only torch, transformers and ``metrics.perplexity`` (no Django), so it runs on the GPU
machine as ``PYTHONUNBUFFERED=1 python3 bench/perplexity.py``.

MFU = tokens/s x FLOPs per token / 989e12 (H100 SXM dense bf16 peak), with
FLOPs per token = 2 x (all parameters, embedding included, as in the HF anchor of ENVIRONMENT.md)
+ 2 x n_layers x seq x d_model (causal attention: QK^T and AV over seq/2 keys on average).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from metrics.perplexity import score_perplexity_ids

PEAK_FLOPS = 989e12


def build_model() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    return model.to(torch.bfloat16).eval()


def flops_per_token(model: LlamaForCausalLM, seq: int) -> float:
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    return 2 * params + 2 * c.num_hidden_layers * seq * c.hidden_size


def timed(fn, repeats: int) -> float:
    """Median wall time (s) of ``fn`` over ``repeats`` runs, synchronised around each."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--n-seqs", type=int, default=128, help="sequences per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default="hf,eager,compiled")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--static", action="store_true", help="compile with static shapes only")
    parser.add_argument("--sdpa", default="default", choices=["default", "cudnn", "flash"])
    parser.add_argument("--profile", type=int, default=0, help="profile one compiled batch of this size")
    parser.add_argument("--json", default=os.environ.get("OUT", ".") + "/perplexity_bench.json")
    args = parser.parse_args()
    paths = args.paths.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    if args.static:
        torch._dynamo.config.automatic_dynamic_shapes = False
    if args.sdpa != "default":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        first = SDPBackend.CUDNN_ATTENTION if args.sdpa == "cudnn" else SDPBackend.FLASH_ATTENTION
        backends = [first, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
        sdpa_kernel(list(dict.fromkeys(backends)), set_priority=True).__enter__()

    model = build_model()
    seq, n = args.seq, args.n_seqs
    fpt = flops_per_token(model, seq)
    print(
        f"{torch.cuda.get_device_name()} torch {torch.__version__}; params {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B; "
        f"FLOPs/token {fpt / 1e9:.3f}G"
    )
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32000, (n, seq), generator=g)
    seqs = ids.tolist()
    ids_gpu = ids.cuda()
    rows: list[dict] = []

    def record(name: str, batch: int, seconds: float, extra: dict | None = None) -> None:
        tokens = n * (seq - 1)  # scored tokens (the first has no context in both paths)
        tps = tokens / seconds
        mfu = tps * fpt / PEAK_FLOPS
        rows.append(
            {"path": name, "batch": batch, "seconds": seconds, "tok_s": tps, "mfu": mfu, **(extra or {})}
        )
        print(f"  {name:<28} batch {batch:>2}: {tps:>9,.0f} tok/s  MFU {mfu:6.1%}", flush=True)

    # Reference loss on the first batch, for a correctness check of every evalhub variant.
    with torch.inference_mode():
        ref_loss = model(input_ids=ids_gpu[:4], labels=ids_gpu[:4]).loss.item()

    def hf(batch: int) -> None:
        with torch.inference_mode():
            for b in range(0, n, batch):
                x = ids_gpu[b : b + batch]
                model(input_ids=x, labels=x).loss.item()

    for batch in [b for b in (1, 16) if "hf" in paths]:
        hf(batch)  # warm-up
        record("hf model(labels=)", batch, timed(lambda batch=batch: hf(batch), args.repeats))
    hf_base = {r["batch"]: r["tok_s"] for r in rows}

    for compile_body in [c for c in (False, True) if ("compiled" if c else "eager") in paths]:
        for batch in batches:
            t0 = time.perf_counter()
            check = score_perplexity_ids(
                model, seqs[:4], batch_size=batch, max_length=seq, compile_body=compile_body
            )
            score_perplexity_ids(model, seqs, batch_size=batch, max_length=seq, compile_body=compile_body)
            warm = time.perf_counter() - t0
            rel = abs(math.log(check.perplexity) - ref_loss) / ref_loss
            name = "evalhub" + (" compiled" if compile_body else " eager")
            seconds = timed(
                lambda batch=batch, c=compile_body: score_perplexity_ids(
                    model, seqs, batch_size=batch, max_length=seq, compile_body=c
                ),
                args.repeats,
            )
            record(name, batch, seconds, {"warmup_s": warm, "rel_diff_vs_hf_loss": rel})
            print(f"      warm-up {warm:.1f}s, mean NLL vs HF loss rel diff {rel:.2e}", flush=True)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        part = seqs[: args.profile]
        score_perplexity_ids(model, part, batch_size=args.profile, max_length=seq, compile_body=True)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            score_perplexity_ids(model, part, batch_size=args.profile, max_length=seq, compile_body=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))

    print("\nsummary (ratio vs HF at the same batch, or HF batch 16 where HF was not run):")
    for r in rows:
        base = hf_base.get(r["batch"], hf_base.get(16))
        ratio = f"x{r['tok_s'] / base:.2f}" if base else ""
        print(f"{r['path']:<28} b{r['batch']:>2} {r['tok_s']:>9,.0f} tok/s  MFU {r['mfu']:6.1%}  {ratio}")
    Path(args.json).write_text(
        json.dumps(
            {
                "date": datetime.datetime.now(datetime.UTC).isoformat(),
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "flops_per_token": fpt,
                "args": vars(args),
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
