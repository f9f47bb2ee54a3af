"""Prompt preparation shared by all backends: chat template, tokenisation, context budget."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evalhub.generation.interface import GenerationConfig


@dataclass(frozen=True)
class PreparedPrompt:
    """Token ids ready for the model; ``error`` is set when the prompt is rejected."""

    ids: tuple[int, ...]
    truncated: bool = False
    error: str = ""
    original_tokens: int = 0


def prompt_budget(config: GenerationConfig, context_length: int) -> int:
    """How many prompt tokens fit: the context minus max_new_tokens, capped by max_prompt_tokens."""
    budget = context_length - config.max_new_tokens
    if config.max_prompt_tokens is not None:
        budget = min(budget, config.max_prompt_tokens)
    return budget


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompt(tokenizer: Any, prompt: str, config: GenerationConfig) -> list[int]:
    if config.use_chat_template and has_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        # The template already writes BOS and friends.
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def prepare_prompts(
    tokenizer: Any, prompts: Iterable[str], config: GenerationConfig, context_length: int
) -> dict[str, PreparedPrompt]:
    """Tokenise each distinct prompt once and apply the truncation policy.

    Left truncation keeps a leading BOS token (the model was trained with one) and drops the
    oldest tokens after it; the result is flagged ``truncated``.
    """
    budget = prompt_budget(config, context_length)
    bos = getattr(tokenizer, "bos_token_id", None)
    prepared: dict[str, PreparedPrompt] = {}
    for prompt in prompts:
        if prompt in prepared:
            continue
        if budget < 1:
            prepared[prompt] = PreparedPrompt(
                ids=(),
                error=f"max_new_tokens={config.max_new_tokens} leaves no room for a prompt "
                f"in the model's context of {context_length} tokens",
            )
            continue
        ids = encode_prompt(tokenizer, prompt, config)
        if not ids:
            ids = [bos] if bos is not None else []
        if not ids:
            prepared[prompt] = PreparedPrompt(ids=(), error="the prompt encodes to no tokens")
        elif len(ids) <= budget:
            prepared[prompt] = PreparedPrompt(ids=tuple(ids), original_tokens=len(ids))
        elif config.truncation == "reject":
            prepared[prompt] = PreparedPrompt(
                ids=(),
                error=f"prompt has {len(ids)} tokens, more than the {budget} allowed (truncation='reject')",
                original_tokens=len(ids),
            )
        else:
            if bos is not None and ids[0] == bos and budget > 1:
                kept = [ids[0], *ids[len(ids) - (budget - 1) :]]
            else:
                kept = ids[len(ids) - budget :]
            prepared[prompt] = PreparedPrompt(ids=tuple(kept), truncated=True, original_tokens=len(ids))
    return prepared
