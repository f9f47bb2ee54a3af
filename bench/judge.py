"""Log-probability judge throughput: pairs judged per second (both orders), against a plain transformers
forward pass over the same token batches in the same run.

Two shapes:

* ``--shape fixture`` (default, CPU): the fixture judge (``fixtures/models/base`` + ``judge``, float32)
  on held-out constructed pairs of ``fixtures/corpus.py`` (real prompts, 400-700 tokens).
* ``--shape llama-1.1b`` (GPU): a random-weight TinyLlama-1.1B shape (hidden 2048, 22 layers, 32 heads,
  4 KV heads, intermediate 5632, vocab 32000, bf16) with a random rank-16 LoRA adapter on every linear
  layer, written to ``--work`` and loaded by ``LogprobJudge`` like any adapter; every judging prompt is
  exactly ``--seq`` tokens (512).

Paths, each over the same prompts (both orders of every pair):

* ``judge``: ``LogprobJudge.judge_pairs``: prompts built and tokenised, sorted by length, one forward
  per ``--batch`` prompts, the adapter merged into the weights, only the last position through the LM
  head; on CUDA the decoder layers compiled (``--no-compile`` to leave them eager);
* ``plain``: ``model(input_ids, attention_mask)`` of the unmerged peft model on the same padded token
  batches (all logits, no compile): the plain transformers forward pass. The ratio judge / plain is
  printed;
* ``loop`` (``--loop-pairs``, a sample): one forward per prompt, batch 1 (the per-pair loop).

MFU = model FLOPs / wall time / 989e12 (H100 SXM dense bf16 peak), model FLOPs per prompt =
2 x parameters (embedding and LM head included, LoRA counted for the plain path only) x tokens +
attention 2 x layers x tokens^2 x hidden (QK^T and AV over tokens/2 keys on average, causal). A stricter
figure that counts the LM head on the last position only is printed beside it.

Imports torch, transformers, peft and ``evalhub.judging.logprob`` only (no Django, no database), so it
runs on a GPU machine with the repository and those three packages:

    PYTHONUNBUFFERED=1 PYTHONPATH=. python bench/judge.py                     # CPU, the fixture judge
    PYTHONUNBUFFERED=1 PYTHONPATH=. python bench/judge.py --device cuda --shape llama-1.1b
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from generation import write_lora_adapter  # noqa: E402  (bench/ is on sys.path: the script's folder)

from evalhub.judging.logprob import (  # noqa: E402
    LogprobJudge,
    PairToJudge,
    answer_token_ids,
    judge_prompt,
    pair_orders,
)

PEAK_FLOPS = 989e12  # H100 SXM dense bf16
FIXTURE_MODELS = REPO / "fixtures" / "models"
RUBRIC = "- Factual accuracy: Is every statement supported by the input?"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeat: int, device: torch.device) -> float:
    """Median wall seconds of ``fn`` over ``repeat`` runs, synchronised around each."""
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


def fixture_pairs(n: int) -> tuple[Path, Path, list[PairToJudge], str]:
    """The committed fixture judge and ``n`` held-out constructed pairs with the default rubric."""
    sys.path.insert(0, str(REPO / "fixtures"))
    import corpus

    from annotation.rubric import rubric_default, rubric_text

    pairs = corpus.judge_pairs(corpus.SEED_JUDGE_HELDOUT, n, corpus.HELDOUT_POOLS)
    return (
        FIXTURE_MODELS / "base",
        FIXTURE_MODELS / "judge",
        [PairToJudge(p.document, p.good, p.bad) for p in pairs],
        rubric_text(rubric_default()),
    )


def write_llama(work: Path, *, layers: int, rank: int, device: torch.device) -> tuple[Path, Path]:
    """A random-weight TinyLlama-1.1B-shaped base (bf16) with a word-level tokenizer in which " A" and
    " B" are single tokens, and a random LoRA adapter (non-zero B) in peft's format."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    base, adapter = work / "base", work / "judge"
    vocab = 32000
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(base)
    words = {"<s>": 0, "<pad>": 1, "<unk>": 2, "A": 3, "B": 4} | {f"w{i}": i for i in range(5, vocab)}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))  # noqa: S106
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",  # noqa: S106
        pad_token="<pad>",  # noqa: S106
        unk_token="<unk>",  # noqa: S106
        model_max_length=2048,
    ).save_pretrained(base)
    write_lora_adapter(adapter, model, rank=rank, base=base, generator=torch.Generator().manual_seed(1))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return base, adapter


def llama_pairs(base: Path, n: int, seq: int) -> list[PairToJudge]:
    """``n`` pairs of random words whose judging prompts are exactly ``seq`` tokens in both orders."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    scaffold = len(tok(judge_prompt(rubric=RUBRIC, case="", first="", second=""))["input_ids"])
    answer = 60
    case_words = seq - scaffold - 2 * answer
    if case_words < 1:
        raise SystemExit(f"--seq {seq} is too short for the prompt scaffold ({scaffold} tokens)")
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 32000, (n, case_words + 2 * answer), generator=gen).tolist()
    pairs = []
    for row in ids:
        text = [f"w{i}" for i in row]
        pairs.append(
            PairToJudge(
                " ".join(text[:case_words]),
                " ".join(text[case_words : case_words + answer]),
                " ".join(text[case_words + answer :]),
            )
        )
    check = tok(
        judge_prompt(rubric=RUBRIC, case=pairs[0].case, first=pairs[0].output_a, second=pairs[0].output_b)
    )
    assert len(check["input_ids"]) == seq, len(check["input_ids"])
    return pairs


# ---------------------------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------------------------


def prompt_flops(config: Any, params: int, head_params: int, tokens: int, *, strict: bool) -> float:
    """Model FLOPs of one prompt's forward pass. ``strict``: the LM head on the last position only,
    the embedding lookup free (what the judge computes); otherwise 2 x all parameters x tokens."""
    layers, hidden = config.num_hidden_layers, config.hidden_size
    attention = 2 * layers * tokens * tokens * hidden
    if strict:
        return 2 * (params - 2 * head_params) * tokens + 2 * head_params + attention
    return 2 * params * tokens + attention


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--shape", default="fixture", choices=["fixture", "llama-1.1b"])
    parser.add_argument("--pairs", type=int, default=0, help="pairs per timed run (default: 48 CPU, 512 GPU)")
    parser.add_argument("--batch", type=int, default=0, help="prompts per forward (default: 16 CPU, 64 GPU)")
    parser.add_argument("--seq", type=int, default=512, help="tokens per judging prompt (llama-1.1b)")
    parser.add_argument("--layers", type=int, default=22, help="decoder layers (llama-1.1b)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank of the random adapter (llama-1.1b)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--loop-pairs", type=int, default=0, help="pairs for the batch-1 loop (default 8 / 32)"
    )
    parser.add_argument("--no-compile", action="store_true", help="leave the judge's decoder layers eager")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--work", default="/tmp/evalhub-bench-judge")
    parser.add_argument(
        "--json", default=os.environ.get("OUT", "") and os.environ["OUT"] + "/judge_bench.json"
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")
    if args.shape == "llama-1.1b" and device.type != "cuda" and args.layers > 2:
        raise SystemExit("--shape llama-1.1b on the CPU: smoke runs only (--layers 1 or 2)")
    torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    n_pairs = args.pairs or (512 if gpu else 48)
    batch = args.batch or (64 if gpu else 16)
    loop_pairs = args.loop_pairs or (32 if gpu else 8)
    dtype = torch.bfloat16 if args.shape == "llama-1.1b" else torch.float32
    compile_layers = gpu and not args.no_compile

    t0 = time.perf_counter()
    if args.shape == "fixture":
        base, adapter, pairs, rubric = fixture_pairs(n_pairs)
    else:
        base, adapter = write_llama(Path(args.work), layers=args.layers, rank=args.rank, device=device)
        pairs, rubric = llama_pairs(base, n_pairs, args.seq), RUBRIC
    judge = LogprobJudge(
        base,
        adapter_dir=adapter,
        device=args.device,
        dtype=dtype,
        batch_size=batch,
        compile=compile_layers,
        min_answer_mass=0.0,
    )
    machine = torch.cuda.get_device_name() if gpu else (os.uname().machine + f" CPU, {args.threads} threads")
    import peft
    import transformers

    print(
        f"{machine}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}; "
        f"shape {args.shape}; {n_pairs} pairs x 2 orders, batch {batch}; compiled: {compile_layers}; "
        f"set-up {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    # The same token batches for every path: the judge's own prompts and its sort-by-length batching.
    prompts = [
        judge_prompt(rubric=rubric, case=p.case, first=first, second=second)
        for p in pairs
        for first, second in ((p.output_a, p.output_b), (p.output_b, p.output_a))
    ]
    ids: list[list[int]] = judge.tokenizer(prompts)["input_ids"]
    lengths = [len(i) for i in ids]
    model_config = judge.model.config
    params = sum(p.numel() for p in judge.model.parameters())
    head_params = judge.model.get_output_embeddings().weight.numel()
    flops = sum(prompt_flops(model_config, params, head_params, n, strict=False) for n in lengths)
    strict_flops = sum(prompt_flops(model_config, params, head_params, n, strict=True) for n in lengths)
    print(
        f"params {params / 1e6:,.1f}M (LoRA merged); prompt tokens {min(lengths)}-{max(lengths)} "
        f"(mean {statistics.mean(lengths):.0f}); model FLOPs per run {flops / 1e12:.2f} T",
        flush=True,
    )
    rows: list[dict[str, Any]] = []

    def record(path: str, seconds: float, n: int, run_flops: float, run_strict: float) -> dict[str, Any]:
        row = {
            "path": path,
            "pairs": n,
            "seconds": seconds,
            "pairs_s": n / seconds,
            "tflop_s": run_flops / seconds / 1e12,
            "mfu": run_flops / seconds / PEAK_FLOPS if gpu else None,
            "mfu_strict": run_strict / seconds / PEAK_FLOPS if gpu else None,
        }
        rows.append(row)
        mfu = f"  MFU {row['mfu']:6.1%} (strict {row['mfu_strict']:6.1%})" if gpu else ""
        print(
            f"  {path:<44} {row['pairs_s']:>9,.1f} pairs/s  {row['tflop_s']:>8.3f} TFLOP/s{mfu}", flush=True
        )
        return row

    # ---- the judge: judge_pairs end to end (prompts, tokenising, batching, forward, parsing) ----
    j = judge
    j.judge_pairs(pairs[: max(1, batch // 2)], rubric=rubric)  # warm-up (and compile)
    j.judge_pairs(pairs, rubric=rubric)
    secs = timed(lambda: j.judge_pairs(pairs, rubric=rubric), args.repeat, device)
    judged = record("judge: LogprobJudge.judge_pairs", secs, n_pairs, flops, strict_flops)
    results = [pair_orders(r) for r in j.judge_pairs(pairs, rubric=rubric)]
    consistent = sum(a.preference == b.preference for a, b in results)

    # The forward passes alone, on pre-tokenised ids (what the judge's time would be with free parsing).
    secs = timed(lambda: j.answer_logprobs(ids), args.repeat, device)
    record("judge forward only: answer_logprobs(ids)", secs, n_pairs, flops, strict_flops)
    judge_lp, _, _ = j.answer_logprobs(ids)

    # ---- plain transformers: the unmerged peft model, all logits, same padded token batches ----
    j.model = judge.model = None  # free the merged copy before loading the plain one
    if gpu:
        torch.cuda.empty_cache()
    from transformers import AutoModelForCausalLM

    from evalhub.generation.loading import peft_attach

    plain = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    plain = peft_attach(plain, "judge", adapter).to(device)
    by_length = sorted(range(len(ids)), key=lambda i: lengths[i])
    batches = []
    for start in range(0, len(ids), batch):
        rows_ = by_length[start : start + batch]
        width = max(lengths[i] for i in rows_)
        x = torch.full((len(rows_), width), 0, dtype=torch.long)
        mask = torch.zeros_like(x)
        for r, i in enumerate(rows_):
            x[r, width - lengths[i] :] = torch.tensor(ids[i])
            mask[r, width - lengths[i] :] = 1
        batches.append((rows_, x.to(device), mask.to(device)))
    answer_ids = torch.tensor(answer_token_ids(plain_tokenizer(base)), device=device)

    @torch.inference_mode()
    def plain_forward() -> torch.Tensor:
        out = torch.empty((len(ids), 2))
        for rows_, x, mask in batches:
            logits = plain(input_ids=x, attention_mask=mask).logits
            out[torch.tensor(rows_)] = torch.log_softmax(logits[:, -1].float(), -1)[:, answer_ids].cpu()
        return out

    plain_lp = plain_forward()
    secs = timed(plain_forward, args.repeat, device)
    plain_flops = flops + 2 * lora_params(plain) * sum(lengths)
    plain_row = record(
        "plain: peft model(input_ids, attention_mask)", secs, n_pairs, plain_flops, plain_flops
    )
    agree = float((judge_lp - plain_lp).abs().max())

    # ---- the per-pair loop: one prompt per forward, batch 1 ----
    loop_ids = ids[: 2 * loop_pairs]

    @torch.inference_mode()
    def loop() -> None:
        for row in loop_ids:
            logits = plain(input_ids=torch.tensor([row], device=device)).logits[0, -1]
            float(torch.log_softmax(logits.float(), -1)[answer_ids[0]])

    loop()
    secs = timed(loop, 1, device)
    loop_flops = sum(prompt_flops(model_config, params, head_params, len(r), strict=False) for r in loop_ids)
    record(f"loop: batch-1 forward per prompt ({loop_pairs} pairs)", secs, loop_pairs, loop_flops, loop_flops)

    ratio = judged["pairs_s"] / plain_row["pairs_s"]
    print()
    print(f"ratio judge / plain forward (same run, same token batches): {ratio:.2f}x")
    print(f"max |log-prob difference| judge vs plain on the answer tokens: {agree:.2e} ({dtype})")
    print(f"orders agree on {consistent}/{n_pairs} pairs")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": machine,
                    "torch": torch.__version__,
                    "args": vars(args),
                    "rows": rows,
                    "ratio_judge_vs_plain": ratio,
                    "max_logprob_diff": agree,
                },
                indent=2,
            )
        )
    return 0


def plain_tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def lora_params(model: Any) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


if __name__ == "__main__":
    raise SystemExit(main())
