"""Prompt preparation shared by all backends: chat template, tokenisation, context budget."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evalhub.generation.errors import AdapterError
from evalhub.generation.interface import GenerationConfig, GenerationRequest, GenerationResult, derive_seed


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


def encode_prompts(tokenizer: Any, prompts: Sequence[str], config: GenerationConfig) -> list[list[int]]:
    """Token ids of each prompt (through the chat template where there is one and it is on).

    One tokenizer call for the lot: a fast tokenizer encodes a batch in Rust, ~10x faster
    than a Python loop of single calls at 64 prompts.
    """
    if not prompts:
        return []
    if config.use_chat_template and has_chat_template(tokenizer):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            for prompt in prompts
        ]
        # The template already writes BOS and friends.
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    else:
        encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return [list(ids) for ids in encoded]


def prepare_prompts(
    tokenizer: Any, prompts: Iterable[str], config: GenerationConfig, context_length: int
) -> dict[str, PreparedPrompt]:
    """Tokenise each distinct prompt once and apply the truncation policy.

    Left truncation keeps a leading BOS token (the model was trained with one) and drops the
    oldest tokens after it; the result is flagged ``truncated``.
    """
    budget = prompt_budget(config, context_length)
    bos = getattr(tokenizer, "bos_token_id", None)
    distinct = list(dict.fromkeys(prompts))
    if budget < 1:
        error = (
            f"max_new_tokens={config.max_new_tokens} leaves no room for a prompt "
            f"in the model's context of {context_length} tokens"
        )
        return {prompt: PreparedPrompt(ids=(), error=error) for prompt in distinct}
    prepared: dict[str, PreparedPrompt] = {}
    for prompt, ids in zip(distinct, encode_prompts(tokenizer, distinct, config), strict=True):
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


@dataclass
class PendingRow:
    """A request admitted for generation: its place in the caller's list, prompt and seed."""

    index: int
    request: GenerationRequest
    prompt: PreparedPrompt
    seed: int


def rejected_result(
    request: GenerationRequest, prompt: PreparedPrompt, seed: int, error: str
) -> GenerationResult:
    return GenerationResult(
        key=request.key,
        text="",
        prompt_tokens=prompt.original_tokens,
        output_tokens=0,
        finish_reason="rejected",
        latency_ms=0.0,
        truncated=False,
        seed=seed,
        adapter=request.adapter,
        sample=request.sample,
        error=error,
    )


def admit_requests(
    requests: Sequence[GenerationRequest],
    loaded_adapters: Container[str],
    tokenizer: Any,
    config: GenerationConfig,
    context_length: int,
    on_batch: Callable[[list[GenerationResult]], None] | None,
) -> tuple[list[GenerationResult | None], list[PendingRow]]:
    """What every backend does before generating: refuse unknown adapters (nothing runs),
    tokenise each distinct prompt once, and answer the prompts that cannot run with a
    ``rejected`` result (passed to ``on_batch`` at once). Returns the result slots, in the
    caller's order, and the rows left to generate.
    """
    for request in requests:
        if request.adapter is not None and request.adapter not in loaded_adapters:
            raise AdapterError(request.adapter, "was not given to load()")
    prepared = prepare_prompts(tokenizer, {r.prompt for r in requests}, config, context_length)
    results: list[GenerationResult | None] = [None] * len(requests)
    pending: list[PendingRow] = []
    rejected: list[GenerationResult] = []
    for index, request in enumerate(requests):
        prompt = prepared[request.prompt]
        seed = derive_seed(config.seed, request.key, request.sample)
        if prompt.error:
            result = rejected_result(request, prompt, seed, prompt.error)
            results[index] = result
            rejected.append(result)
        else:
            pending.append(PendingRow(index, request, prompt, seed))
    if rejected and on_batch is not None:
        on_batch(rejected)
    return results, pending
