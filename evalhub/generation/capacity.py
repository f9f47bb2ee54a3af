"""How long a context a model takes and how many rows of a batch fit in memory.

One home for both rules, shared by the fast engine and the general HF path: a context longer than the
model allows is a clear error naming the numbers, and a batch is sized from the memory it will need
(KV cache + one prefill chunk's activations + logits) against the memory free on the device, so a run
of long inputs splits into smaller batches before it runs instead of dying of out-of-memory. The
backend's out-of-memory split stays as the last resort for what this estimate misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evalhub.generation.errors import GenerationError

#: Share of the measured free memory a batch may plan to use (the rest: allocator slack, cuBLAS
#: workspaces, CUDA graphs, what the estimate does not count).
FREE_MEMORY_SHARE = 0.85


class ContextTooLong(GenerationError):
    """A prompt plus the tokens to generate is longer than the model's maximum context."""


def check_context(prompt_tokens: int, max_new: int, max_positions: int) -> None:
    """Raise ContextTooLong, naming the numbers, unless prompt + new tokens fit the model's context."""
    if prompt_tokens + max_new > max_positions:
        raise ContextTooLong(
            f"prompt of {prompt_tokens} tokens + max_new_tokens={max_new} = {prompt_tokens + max_new} "
            f"tokens is longer than the model's maximum context of {max_positions} "
            "(max_position_embeddings); shorten the prompt or lower max_new_tokens"
        )


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs to know of a model."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int

    @classmethod
    def from_config(cls, config: Any, dtype: torch.dtype) -> ModelShape:
        text = getattr(config, "text_config", None) or config
        heads = int(text.num_attention_heads)
        hidden = int(text.hidden_size)
        return cls(
            layers=int(text.num_hidden_layers),
            hidden=hidden,
            intermediate=int(getattr(text, "intermediate_size", 4 * hidden)),
            heads=heads,
            kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(text, "head_dim", None) or hidden // heads),
            vocab=int(text.vocab_size),
            dtype_bytes=torch.finfo(dtype).bits // 8,
        )

    def kv_bytes_per_token(self) -> int:
        """K and V of one position in every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


def batch_bytes(
    shape: ModelShape, *, rows: int, prompt_tokens: int, max_new: int, prefill_chunk: int | None
) -> int:
    """Peak memory a batch needs beyond the weights: its KV cache, the widest prefill chunk's
    activations and attention scores, and the float32 logits of one position per row.

    ``prefill_chunk`` None: the whole prompt is one forward (the general HF path).
    """
    length = prompt_tokens + max_new
    chunk = prompt_tokens if prefill_chunk is None else min(prefill_chunk, prompt_tokens)
    kv = rows * length * shape.kv_bytes_per_token()
    q_kv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    # Per prefill token: normed input, q|k|v, attention output, o, gate|up, activation, down (a few of
    # them alive at once; counted all, as a margin for the LoRA columns and temporaries).
    per_token = (4 * shape.hidden + 2 * q_kv + 3 * shape.intermediate) * shape.dtype_bytes
    activations = rows * chunk * per_token
    # Attention scores (SDPA's math kernel) or the additive mask (the fused kernels) over the keys so
    # far, in the model's dtype: the chunk times the context per head.
    scores = rows * shape.heads * chunk * length * shape.dtype_bytes
    logits = rows * shape.vocab * 4 * (1 if prefill_chunk is not None else 2)
    return kv + activations + scores + logits


def available_bytes(device: torch.device, budget: int | None) -> int | None:
    """Memory a batch may plan on: ``budget`` when given, else on CUDA the free device memory plus
    what the allocator holds unused, times FREE_MEMORY_SHARE; None (no limit) on a CPU without a budget."""
    if budget is not None:
        return budget
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int((free + cached) * FREE_MEMORY_SHARE)
