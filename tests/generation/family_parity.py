"""Fast engine vs transformers + peft on one tiny model of each family (used by test_families.py).

``main`` (or ``python -m tests.generation.family_parity FOLDER ADAPTERS_JSON eager|fused``) prints
the comparison as JSON: the Triton path must run in a fresh process with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

from tests.tiny_models import peft_reference

#: Tiny configs of each family: 2 layers, head_dim 64, GQA 2:1, small sliding windows so that
#: prompt + generation (up to 12 + 10 tokens) runs past them.
FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {},
    "qwen2": {"use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1},  # layer 1 slides
    "qwen3": {},
    "mistral": {"sliding_window": 7},
    "gemma2": {
        "sliding_window": 6,  # layer_types: sliding, full
        "query_pre_attn_scalar": 32,
        "attn_logit_softcapping": 2.0,  # small caps, so capping changes the scores of this model
        "final_logit_softcapping": 3.0,
    },
    "gemma3_text": {
        "sliding_window": 5,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_local_base_freq": 100.0,
        "query_pre_attn_scalar": 48,
        "final_logit_softcapping": 4.0,
    },
}
MAX_NEW = 10  # the Triton path (CPU interpreter, slow) checks fewer rows and tokens


def prompts(n: int, seed: int, vocab: int = 300) -> list[list[int]]:
    rnd = random.Random(seed)
    return [[rnd.randrange(vocab) for _ in range(rnd.randrange(3, 13))] for _ in range(n)]


def reference(
    base: Path,
    adapters: dict[str, Path],
    ids: list[list[int]],
    names: list[str | None],
    pad_id: int,
    new: int,
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Greedy tokens and per-step logits [B, V] of peft's mixed-adapter generate(), float32, eager
    attention (SDPA in transformers drops Gemma 2's score soft-capping)."""
    peft_model = peft_reference(base, adapters, attn_implementation="eager")
    model = peft_model.get_base_model()
    # Every row makes all its tokens, EOS included, as the engine does (min_new_tokens would
    # suppress EOS instead of generating it).
    model.generation_config.eos_token_id = None
    width = max(len(p) for p in ids)
    input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in ids])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids])
    out = peft_model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=new,
        do_sample=False,
        adapter_names=[n or "__base__" for n in names],
        return_dict_in_generate=True,
        output_logits=True,
        pad_token_id=pad_id,
    )
    return out.sequences[:, width:].tolist(), [s.float() for s in out.logits]


def engine_run(
    base: Path,
    adapters: dict[str, Path],
    ids: list[list[int]],
    names: list[str | None],
    *,
    fused: bool,
    new: int,
    prefill_chunk: int = 512,
) -> tuple[list[list[int]], list[torch.Tensor], str | None]:
    """The fast engine's greedy tokens and the logits it chose each token from."""
    from transformers import AutoModelForCausalLM

    from evalhub.generation.adapters import read_adapter
    from evalhub.generation.llama import FastEngine, unsupported_reason

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    read = {name: read_adapter(name, path) for name, path in adapters.items()}
    reason = unsupported_reason(model, read)
    seen: list[torch.Tensor] = []

    class Recording(FastEngine):
        def _choose(self, logits: torch.Tensor, st: Any) -> torch.Tensor:
            seen.append(logits.detach().float().clone())
            return super()._choose(logits, st)

    engine = Recording(
        model,
        read,
        device=torch.device("cpu"),
        dtype=torch.float32,
        fused_kernels=fused,
        use_cuda_graph=False,
        prefill_chunk=prefill_chunk,
    )
    index = {name: i for i, name in enumerate(read)}
    st = engine.start(
        ids,
        [index[n] if n else None for n in names],
        [0] * len(ids),
        max_new=new,
        greedy=True,
        temperature=1.0,
        top_p=1.0,
        pad_id=int(model.config.pad_token_id),
    )
    engine.advance(st, new - 1)
    return st.out[:, :new].tolist(), seen, reason


def compare(
    base: Path, adapters: dict[str, Path], *, fused: bool, seed: int = 3, prefill_chunk: int = 512
) -> dict[str, Any]:
    """Greedy rows equal and the largest logit difference, base rows and mixed adapters in one batch
    (``prefill_chunk``: the engine's, small to prefill the prompts in chunks)."""
    from transformers import AutoConfig

    pad_id = int(AutoConfig.from_pretrained(base).pad_token_id)
    cycle: list[str | None] = [None, *adapters]
    ids = prompts(len(cycle) if fused else 2 * len(cycle), seed)
    names = [cycle[i % len(cycle)] for i in range(len(ids))]
    new = MAX_NEW // 2 if fused else MAX_NEW
    got, got_logits, reason = engine_run(
        base, adapters, ids, names, fused=fused, new=new, prefill_chunk=prefill_chunk
    )
    want, want_logits = reference(base, adapters, ids, names, pad_id, new)
    same = [g == w for g, w in zip(got, want, strict=True)]
    # Compare the logits of the steps before the first divergence (after it the inputs differ).
    steps = min(len(got_logits), len(want_logits))
    diff = max(
        float((g - w).abs().max()) for g, w in zip(got_logits[:steps], want_logits[:steps], strict=True)
    )
    scale = max(float(w.abs().max()) for w in want_logits)
    return {
        "same": sum(same),
        "rows": len(same),
        "max_logit_diff": diff,
        "logit_scale": scale,
        "reason": reason,
    }


def main(argv: list[str]) -> None:
    base_dir, adapter_json, mode = argv
    paths = {k: Path(v) for k, v in json.loads(adapter_json).items()}
    print(json.dumps(compare(Path(base_dir), paths, fused=mode == "fused")))


if __name__ == "__main__":
    main(sys.argv[1:])
