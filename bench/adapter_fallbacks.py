"""DoRA adapters against plain LoRA: the fast engine serves DoRA on merged weights, one adapter per
batch (peft mixes no DoRA batch either); peft's DoRA path is the fallback. Same model, same prompts,
same run:

* fast engine, 4 plain LoRA adapters mixed in each batch (the baseline);
* peft forward path, the same 4 LoRA adapters mixed (adapter_names);
* fast engine, 4 DoRA adapters, one adapter per batch on merged weights;
* peft forward path, the 4 DoRA adapters, one adapter per batch (the fallback).

    PYTHONPATH=. python bench/adapter_fallbacks.py [--device cpu] [--hidden 256] [--layers 4]

Prints tokens/s and the ratio of each fallback to the fast engine. Runs without Django.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from evalhub.generation import GenerationConfig, GenerationRequest  # noqa: E402
from evalhub.generation.hf_backend import HFBackend  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(folder: Path, *, hidden: int, layers: int, vocab: int, adapters: int, rank: int) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=max(1, hidden // 256),
        max_position_embeddings=512,
        eos_token_id=None,  # never stop early: every row makes all its tokens
        pad_token_id=1,
        bos_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(folder / "base")
    vocab_map = {"<s>": 0, "<pad>": 1} | {f"w{i}": i for i in range(2, vocab)}
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="<pad>"))  # noqa: S106
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<pad>").save_pretrained(  # noqa: S106
        folder / "base"
    )
    out: dict[str, Any] = {"base": folder / "base", "lora": {}, "dora": {}}
    for kind in ("lora", "dora"):
        for k in range(adapters):
            model = LlamaForCausalLM.from_pretrained(folder / "base")
            peft_model = get_peft_model(
                model,
                LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, use_dora=kind == "dora"),
            )
            with torch.no_grad():
                for name, p in peft_model.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 0.02)
            path = folder / f"{kind}{k}"
            peft_model.save_pretrained(path)
            out[kind][f"{kind}{k}"] = path
    return out


def measure(
    backend: HFBackend, requests: list[GenerationRequest], config: GenerationConfig, repeat: int
) -> float:
    """Median tokens/s over ``repeat`` timed calls after a warm-up (a shared CPU box is noisy)."""
    backend.generate(requests, config)  # warm-up
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        results = backend.generate(requests, config)
        rates.append(sum(r.output_tokens for r in results) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = build(
            Path(tmp),
            hidden=args.hidden,
            layers=args.layers,
            vocab=1000,
            adapters=args.adapters,
            rank=args.rank,
        )
        gen = torch.Generator().manual_seed(1)
        prompts = [
            " ".join(f"w{w}" for w in torch.randint(2, 1000, (args.prompt,), generator=gen).tolist())
            for _ in range(args.batch)
        ]
        config = GenerationConfig(max_new_tokens=args.new, use_chat_template=False)
        rows: list[tuple[str, float]] = []
        for label, kind, fast in (
            ("fast engine, LoRA mixed (baseline)", "lora", True),
            ("peft path, LoRA mixed", "lora", False),
            ("fast engine, DoRA merged, one adapter per batch", "dora", True),
            ("peft path, DoRA one adapter per batch (fallback)", "dora", False),
        ):
            names = list(folders[kind])
            backend = HFBackend(device=args.device, fast=fast, max_batch_size=args.batch)
            backend.load(folders["base"], folders[kind])
            requests = [
                GenerationRequest(key=i, prompt=p, adapter=names[i % len(names)])
                for i, p in enumerate(prompts)
            ]
            tok_s = measure(backend, requests, config, args.repeat)
            rows.append((f"{label} [{backend.path}]", tok_s))
            backend.close()
    print(
        f"{args.device}: hidden {args.hidden}, {args.layers} layers, batch {args.batch}, "
        f"{args.prompt}+{args.new} tokens, {args.adapters} adapters rank {args.rank}"
    )
    baseline = rows[0][1]
    for label, tok_s in rows:
        print(f"{label:60s} {tok_s:9,.0f} tok/s  {tok_s / baseline:6.2f}x the fast engine")


if __name__ == "__main__":
    main()
