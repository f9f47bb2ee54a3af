"""Perplexity of a causal language model (optionally PEFT-wrapped) over a list of texts.

Fast path: the decoder body runs once per batch and the loss is taken over its hidden states in
chunks (``lm_head`` + ``logsumexp`` per chunk of scored tokens), so the full
``batch x seq x vocab`` float32 logits tensor that ``model(..., labels=...)`` builds never exists.

Conventions (the same as ``exp(model(ids, labels=ids).loss)`` on an unpadded, unwindowed text):

* With ``add_bos=True`` and a tokenizer that has a BOS token, the sequence is ``[BOS] + tokens``
  and every text token is scored, the first one predicted from BOS alone.
* With no BOS (``add_bos=False``, or the tokenizer has none) the first token has no context and
  is not scored: a text of ``n`` tokens contributes ``n - 1``.
* A text with no scored token (empty text, or a single token without BOS) has ``nll_sum == 0``,
  ``n_tokens == 0`` and ``perplexity is None``; the corpus perplexity is ``None`` when no token of
  any text was scored.
* Texts longer than ``max_length`` tokens are scored with the strided sliding window of Hugging
  Face's perplexity guide: windows of ``max_length`` tokens start every ``stride`` tokens; each
  token is scored exactly once, in the first window that reaches it, with at least
  ``max_length - stride`` tokens of context (all of the text before it in the first window).
* Batches are right-padded and run *without* an attention mask: with causal attention a real
  token never attends to the padding after it, and positions ``0..len-1`` are unchanged, so the
  result equals the unpadded one while SDPA can use its flash (``is_causal``) kernel. Padding
  positions are never scored.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "PerplexityResult",
    "TextPerplexity",
    "plan_windows",
    "score_perplexity",
    "score_perplexity_ids",
]

logger = logging.getLogger(__name__)

# Elements of one float32 logits chunk (2**27 floats = 512 MiB): the loss is computed over at most
# this many token x vocab logits at a time.
_LOGITS_CHUNK_ELEMENTS = 2**27

_compiled_bodies: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class TextPerplexity:
    """One text: summed negative log-likelihood (nats) over ``n_tokens`` scored tokens."""

    nll_sum: float
    n_tokens: int
    perplexity: float | None


@dataclass(frozen=True, slots=True)
class PerplexityResult:
    """Per-text results in input order and the token-weighted corpus perplexity."""

    texts: list[TextPerplexity]
    nll_sum: float
    n_tokens: int
    perplexity: float | None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_nll(self) -> float | None:
        return self.nll_sum / self.n_tokens if self.n_tokens else None


@dataclass(frozen=True, slots=True)
class _Segment:
    """A window of one text: ``ids`` run through the model, tokens ``score_from..`` scored."""

    text_index: int
    ids: list[int]
    score_from: int


def plan_windows(n_ids: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows ``(begin, end, score_from)`` over a sequence of ``n_ids`` token ids.

    ``ids[begin:end]`` is run through the model and its positions ``score_from..end-begin-1``
    (relative to the window) are scored. This is the loop of Hugging Face's perplexity guide:
    every position ``1..n_ids-1`` is scored exactly once.
    """
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if not 1 <= stride < max_length:
        # stride == max_length would give disjoint windows whose first token has no context.
        raise ValueError("stride must be at least 1 and smaller than max_length")
    windows: list[tuple[int, int, int]] = []
    prev_end = 0
    for begin in range(0, max(n_ids, 1), stride):
        end = min(begin + max_length, n_ids)
        target_len = end - prev_end
        windows.append((begin, end, max(1, end - begin - target_len)))
        prev_end = end
        if end == n_ids:
            break
    return windows


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers ``*ForCausalLM`` inside a PEFT wrapper (its LoRA layers stay injected)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _body_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    lm = _unwrap(model)
    head = lm.get_output_embeddings()  # type: ignore[operator]
    body = getattr(lm, "model", None)
    if not isinstance(body, nn.Module):
        body = lm.get_decoder()  # type: ignore[operator]
    if head is None or body is None:
        raise ValueError(f"{type(lm).__name__} has no decoder body / lm_head to score perplexity with")
    return body, head


def _final_logit_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the model does to ``lm_head`` output before the softmax (Gemma soft-capping, Cohere scale)."""
    config = getattr(_unwrap(model), "config", None)
    text_config = getattr(config, "text_config", None) or config
    cap = getattr(text_config, "final_logit_softcapping", None)
    scale = getattr(text_config, "logit_scale", None)

    def transform(logits: torch.Tensor) -> torch.Tensor:
        if isinstance(scale, int | float) and scale != 1:
            logits = logits * scale
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return transform


def _nll_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None]).squeeze(1)


_compiled_nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


def _compile_model(body: nn.Module) -> None:
    """Compile each decoder layer in place (idempotent).

    Layers share their code, so one compiled graph serves all of them and compiling takes seconds,
    not the minutes a whole-body graph takes; elementwise work (norms, RoPE, SiLU) gets fused.
    """
    if body in _compiled_bodies:
        return
    layers = getattr(body, "layers", None)
    if isinstance(layers, nn.ModuleList):
        for layer in layers:
            layer.compile()
    else:
        body.compile()
    _compiled_bodies[body] = True


def compile_decoder_layers(model: nn.Module) -> None:
    """Compile a causal LM's decoder layers in place (idempotent): the compile perplexity scoring uses,
    for other batched forward passes (the log-probability judge)."""
    _compile_model(_body_and_head(model)[0])


def _auto_compile(dev: torch.device) -> bool:
    """Whether ``compile_body=None`` compiles: on CUDA, where it pays off (about 1.5x on an H100)."""
    return dev.type == "cuda"


def _uncompile_model(body: nn.Module) -> None:
    """Undo :func:`_compile_model` (``nn.Module.compile`` keeps the compiled call here)."""
    modules = getattr(body, "layers", None)
    for module in [*modules] if isinstance(modules, nn.ModuleList) else [body]:
        module._compiled_call_impl = None
    _compiled_bodies.pop(body, None)


def _chunked_nll(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: nn.Module,
    transform: Callable[[torch.Tensor], torch.Tensor],
    chunk_tokens: int,
    compiled: bool = False,
) -> torch.Tensor:
    """Per-token NLL (float32) of ``targets`` given ``hidden`` (n x d), ``chunk_tokens`` at a time."""
    global _compiled_nll
    nll_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _nll_from_logits
    if compiled:
        if _compiled_nll is None:
            # One fused pass over the bf16 logits: upcast, logsumexp and gather without a float32 copy.
            _compiled_nll = torch.compile(_nll_from_logits, dynamic=True)
        nll_fn = _compiled_nll
    out = torch.empty(targets.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.shape[0], chunk_tokens):
        stop = start + chunk_tokens
        out[start:stop] = nll_fn(transform(head(hidden[start:stop])), targets[start:stop])
    return out


def _to_device(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    if dev.type == "cuda":
        # A copy from pageable memory waits for the GPU to drain; from pinned memory it does not,
        # so the host can queue the next batch while the current one runs.
        t = t.pin_memory()
    return t.to(dev, non_blocking=True)


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    current = next(model.parameters()).device
    if device is None:
        if current.type == "cpu" and torch.cuda.is_available():
            return torch.device("cuda")
        return current
    return torch.device(device)


def _default_max_length(model: nn.Module) -> int:
    config = getattr(_unwrap(model), "config", None)
    text_config = getattr(config, "text_config", None) or config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value >= 2 else 2048


def _score_batch(
    body: nn.Module,
    head: nn.Module,
    transform: Callable[[torch.Tensor], torch.Tensor],
    ids_cpu: torch.Tensor,
    scored: torch.Tensor,
    dev: torch.device,
    chunk: int,
    compiled: bool,
) -> torch.Tensor:
    """Summed NLL per row (float64, on ``dev``) of a right-padded batch; ``scored[r, t]`` marks
    token ``t + 1`` of row ``r``, predicted from hidden state ``t``."""
    rows_n, width = ids_cpu.shape
    ids_t = _to_device(ids_cpu, dev)
    hidden = body(input_ids=ids_t, use_cache=False).last_hidden_state
    hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    targets = ids_t[:, 1:].reshape(-1)
    per_row = torch.zeros(rows_n, dtype=torch.float64, device=dev)
    if bool(scored.all()):
        token_nll = _chunked_nll(hidden, targets, head, transform, chunk, compiled)
        per_row += token_nll.view(rows_n, width - 1).double().sum(dim=1)
    else:
        flat = scored.reshape(-1).nonzero().squeeze(1)
        rows = _to_device(flat // (width - 1), dev)
        flat = _to_device(flat, dev)
        token_nll = _chunked_nll(
            hidden.index_select(0, flat), targets.index_select(0, flat), head, transform, chunk, compiled
        )
        per_row.index_add_(0, rows, token_nll.double())
    return per_row


@torch.inference_mode()
def score_perplexity_ids(
    model: nn.Module,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    stride: int | None = None,
    device: str | torch.device | None = None,
    compile_body: bool | None = None,
    pad_id: int = 0,
    loss_chunk_tokens: int | None = None,
) -> PerplexityResult:
    """Perplexity of already-tokenized ``sequences`` (BOS, if wanted, already in place).

    Position 0 of each sequence is context only; see the module docstring for windows, padding
    and empty sequences. ``max_length`` defaults to the model's ``max_position_embeddings``,
    ``stride`` to half of ``max_length``. The model is moved to ``device`` (default: CUDA when
    available, else where it is) and put in eval mode. On CUDA a float32 model runs under bf16
    autocast. ``compile_body`` compiles the decoder layers in place with ``torch.compile`` (the
    model stays compiled afterwards) and fuses the loss; ``None`` (default) means on CUDA only, and
    there a compilation failure falls back to eager with a warning instead of raising.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    window = max_length or _default_max_length(model)
    step = stride or max(1, window // 2)
    dev = _resolve_device(model, device)
    if next(model.parameters()).device != dev:
        model.to(dev)
    if model.training:
        model.eval()
    body, head = _body_and_head(model)
    use_compile = _auto_compile(dev) if compile_body is None else compile_body
    if use_compile:
        _compile_model(body)
    transform = _final_logit_transform(model)
    weight = getattr(head, "weight", None)
    vocab = int(weight.shape[0]) if isinstance(weight, torch.Tensor) else 32_000
    chunk = loss_chunk_tokens or max(1, _LOGITS_CHUNK_ELEMENTS // vocab)

    segments: list[_Segment] = []
    for i, ids in enumerate(sequences):
        ids = list(ids)
        for begin, end, score_from in plan_windows(len(ids), window, step):
            if end - begin >= 2 and score_from < end - begin:
                segments.append(_Segment(i, ids[begin:end], score_from))

    # Longest first: similar lengths share a batch, so little compute goes to padding.
    order = sorted(range(len(segments)), key=lambda k: -len(segments[k].ids))
    param_dtype = next(model.parameters()).dtype
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if dev.type == "cuda" and param_dtype == torch.float32
        else nullcontext()
    )
    # Per-batch sums stay on the device until the end: no host sync between batches.
    pending: list[tuple[list[_Segment], torch.Tensor, list[int]]] = []
    with autocast:
        for b in range(0, len(order), batch_size):
            batch = [segments[k] for k in order[b : b + batch_size]]
            width = max(len(s.ids) for s in batch)
            ids_cpu = torch.tensor([s.ids + [pad_id] * (width - len(s.ids)) for s in batch], dtype=torch.long)
            scored = torch.zeros((len(batch), width - 1), dtype=torch.bool)
            for row, seg in enumerate(batch):
                # Position t of `scored` marks token t + 1, predicted from hidden state t.
                scored[row, seg.score_from - 1 : len(seg.ids) - 1] = True
            args = (body, head, transform, ids_cpu, scored, dev, chunk)
            try:
                per_row = _score_batch(*args, use_compile)
            except Exception:
                if not (use_compile and compile_body is None):
                    raise
                logger.warning("perplexity: torch.compile failed; scoring eagerly", exc_info=True)
                _uncompile_model(body)
                use_compile = False
                per_row = _score_batch(*args, use_compile)
            pending.append((batch, per_row, scored.sum(dim=1).tolist()))

    nll = [0.0] * len(sequences)
    counts = [0] * len(sequences)
    for batch, per_row, row_counts in pending:
        for seg, value, count in zip(batch, per_row.tolist(), row_counts, strict=True):
            nll[seg.text_index] += value
            counts[seg.text_index] += int(count)

    texts = [
        TextPerplexity(nll_sum=n, n_tokens=c, perplexity=math.exp(n / c) if c else None)
        for n, c in zip(nll, counts, strict=True)
    ]
    total_nll = math.fsum(nll)
    total = sum(counts)
    return PerplexityResult(
        texts=texts,
        nll_sum=total_nll,
        n_tokens=total,
        perplexity=math.exp(total_nll / total) if total else None,
        config={"max_length": window, "stride": step, "batch_size": batch_size, "device": str(dev)},
    )


def score_perplexity(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    stride: int | None = None,
    add_bos: bool = True,
    device: str | torch.device | None = None,
    compile_body: bool | None = None,
) -> PerplexityResult:
    """Per-text and corpus perplexity of ``texts`` under ``model`` (a transformers causal LM,
    optionally wrapped by PEFT with its adapters active).

    Texts are tokenized without special tokens; with ``add_bos`` the tokenizer's BOS token is
    prepended, so the first text token is scored (predicted from BOS). Without a BOS the first
    token is context only. ``result.config["bos"]`` records whether a BOS was used. See the module
    docstring for windows, padding and empty texts.
    """
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"score_perplexity expects str texts, got {type(text).__name__}")
    bos = getattr(tokenizer, "bos_token_id", None) if add_bos else None
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    sequences = [([bos] if bos is not None else []) + list(ids) for ids in encoded]
    pad = getattr(tokenizer, "pad_token_id", None)
    result = score_perplexity_ids(
        model,
        sequences,
        batch_size=batch_size,
        max_length=max_length,
        stride=stride,
        device=device,
        compile_body=compile_body,
        pad_id=pad if isinstance(pad, int) else 0,
    )
    result.config["bos"] = bos is not None
    return result
