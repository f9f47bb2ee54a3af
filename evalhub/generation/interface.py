"""The backend-neutral vocabulary of generation: config, request, result and per-sample seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["eos", "stop_string", "length", "stop", "rejected"]
Truncation = Literal["left", "reject"]

#: Bumped when the meaning of a config field changes, so old hashes stop matching new runs.
CONFIG_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate. Frozen and hashable: a run stores ``config_hash()`` next to its outputs.

    ``temperature == 0`` means greedy decoding (``top_p`` and ``seed`` are then irrelevant).
    ``max_prompt_tokens`` caps the prompt; ``None`` means "what fits in the model's context
    next to ``max_new_tokens``". Longer prompts are cut from the left (``truncation="left"``,
    result flagged ``truncated=True``) or answered with ``finish_reason="rejected"``.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    samples: int = 1
    use_chat_template: bool = True
    truncation: Truncation = "left"
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        # Accept a list for ``stop`` but store a tuple so the config stays hashable.
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0 (0 means greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.truncation not in ("left", "reject"):
            raise ValueError("truncation must be 'left' or 'reject'")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ValueError("max_prompt_tokens must be >= 1 or None")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generation config fields: {sorted(unknown)}")
        return cls(**data)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no whitespace, schema version included)."""
        payload = {"schema": CONFIG_SCHEMA_VERSION, **self.to_dict()}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class GenerationRequest:
    """One output to produce. ``key`` is opaque to the engine and comes back on the result.

    ``adapter`` is an adapter name given to ``Backend.load`` or ``None`` for the base model.
    ``sample`` is the sample index (0..samples-1); it feeds the per-sample seed.
    """

    key: Hashable
    prompt: str
    adapter: str | None = None
    sample: int = 0


@dataclass(frozen=True)
class GenerationResult:
    """One generated output. Token counts are in the base model's tokenizer."""

    key: Hashable
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: FinishReason
    latency_ms: float
    truncated: bool = False
    seed: int = 0
    adapter: str | None = None
    sample: int = 0
    #: Why a request was rejected (``finish_reason == "rejected"``); empty otherwise.
    error: str = ""
    token_ids: tuple[int, ...] = field(default=(), repr=False)


def _canonical_key(key: Hashable) -> str:
    """A text form of the request key that is stable across processes and Python versions."""
    try:
        return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return repr(key)


def derive_seed(config_seed: int, key: Hashable, sample: int) -> int:
    """The seed of one sample: a function of (config seed, request key, sample index) only.

    So a sample's random stream does not depend on which other requests share its batch,
    on the batch size, or on the order in which requests arrive.
    """
    text = f"{config_seed}\x1f{_canonical_key(key)}\x1f{sample}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


OnBatch = Callable[[list[GenerationResult]], None]


@runtime_checkable
class Backend(Protocol):
    """What the run orchestration calls. One backend instance serves one run (one base model).

    ``load`` reads the base model once and every adapter of the run; ``generate`` may mix
    adapters within a batch and calls ``on_batch`` with each finished batch's results (for
    progress and incremental saving); it returns all results in request order.
    """

    name: str

    def load(self, base_model_dir: str | Path, adapters: Mapping[str, str | Path]) -> None: ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: GenerationConfig,
        *,
        on_batch: OnBatch | None = None,
    ) -> list[GenerationResult]: ...

    def close(self) -> None: ...


def expand_requests(
    prompts: Mapping[Hashable, str],
    adapters: Sequence[str | None],
    config: GenerationConfig,
) -> list[GenerationRequest]:
    """One request per (adapter, case, sample); the key is ``(adapter, case_key, sample)``."""
    return [
        GenerationRequest(key=(adapter, case_key, sample), prompt=prompt, adapter=adapter, sample=sample)
        for adapter in adapters
        for case_key, prompt in prompts.items()
        for sample in range(config.samples)
    ]
