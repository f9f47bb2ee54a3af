"""The ``hf`` backend: transformers + peft weights, served by the fast engine.

Llama, Qwen2/2.5, Qwen3, Mistral, Gemma 2 and Gemma 3 (text) models run on
:class:`~evalhub.generation.llama.FastEngine` (static KV cache, multi-LoRA in one batch, CUDA
graph on GPU). Anything else runs on a slower but general loop
over the HF model's own forward with peft's mixed-adapter batches; the log says which.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from evalhub.generation.adapters import LoraAdapter, read_checked_adapters
from evalhub.generation.capacity import FREE_MEMORY_SHARE, ModelShape, available_bytes, batch_bytes
from evalhub.generation.errors import GenerationError
from evalhub.generation.folders import normalise_quantization
from evalhub.generation.interface import (
    GenerationConfig,
    GenerationRequest,
    GenerationResult,
    OnBatch,
)
from evalhub.generation.llama import DEFAULT_PREFILL_CHUNK, FastEngine, unsupported_reason
from evalhub.generation.loading import (
    load_base_model,
    peft_attach,
    precision_label,
    resolve_device,
    resolve_dtype,
)
from evalhub.generation.prompts import PendingRow, admit_requests, rejected_result
from evalhub.generation.sampling import choose_tokens

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


class _Stepper(Protocol):
    def start(
        self,
        prompts: list[list[int]],
        adapter_index: list[int | None],
        seeds: list[int],
        *,
        max_new: int,
        greedy: bool,
        temperature: float,
        top_p: float,
        pad_id: int,
    ) -> Any: ...

    def advance(self, st: Any, steps: int) -> None: ...

    def drop_states(self) -> None: ...


@dataclass
class _HFState:
    out: torch.Tensor
    attention_mask: torch.Tensor
    next_pos: torch.Tensor
    past: Any
    tok: torch.Tensor
    seeds: torch.Tensor
    adapter_names: list[str] | None
    greedy: bool
    temperature: float
    top_p: float
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class HFStepper:
    """Decode with the HF model's forward and a dynamic cache: correct for any causal LM.

    ``one_adapter_per_batch``: peft cannot mix DoRA adapters in a batch (``adapter_names``), so each
    batch then holds one adapter (or none), made active for it; the backend forms such batches.
    """

    def __init__(
        self,
        model: Any,
        adapter_names: list[str],
        device: torch.device,
        *,
        one_adapter_per_batch: bool = False,
    ) -> None:
        self.model = model
        self.adapter_names = adapter_names
        self.device = device
        self.one_adapter_per_batch = one_adapter_per_batch

    def _forward(self, st: _HFState, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        active = contextlib.nullcontext()
        if self.one_adapter_per_batch and st.adapter_names is not None:
            (name,) = set(st.adapter_names)
            if name == BASE_ADAPTER:
                active = self.model.disable_adapter()
            else:
                self.model.set_adapter(name)
        elif st.adapter_names is not None:
            kwargs["adapter_names"] = st.adapter_names
        with active:
            output = self._call(st, input_ids, position_ids, kwargs)
        st.past = output.past_key_values
        return output.logits[:, -1]

    def _call(
        self, st: _HFState, input_ids: torch.Tensor, position_ids: torch.Tensor, kwargs: dict[str, Any]
    ) -> Any:
        return self.model(
            input_ids=input_ids,
            attention_mask=st.attention_mask,
            position_ids=position_ids,
            past_key_values=st.past,
            use_cache=True,
            logits_to_keep=1,  # only the last position's logits: a long prompt's would be [T, vocab]
            **kwargs,
        )

    def _choose(self, logits: torch.Tensor, st: _HFState) -> torch.Tensor:
        step = torch.tensor(st.step, dtype=torch.long, device=self.device)
        return choose_tokens(
            logits, greedy=st.greedy, temperature=st.temperature, top_p=st.top_p, seeds=st.seeds, step=step
        )

    def start(
        self,
        prompts: list[list[int]],
        adapter_index: list[int | None],
        seeds: list[int],
        *,
        max_new: int,
        greedy: bool,
        temperature: float,
        top_p: float,
        pad_id: int,
    ) -> _HFState:
        plen = max(len(p) for p in prompts)
        ids = torch.tensor([[pad_id] * (plen - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (plen - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        names = None
        if self.adapter_names:
            names = [BASE_ADAPTER if i is None else self.adapter_names[i] for i in adapter_index]
            if self.one_adapter_per_batch and len(set(names)) > 1:
                raise GenerationError(
                    f"this batch mixes adapters {sorted(set(names))}; DoRA needs one per batch"
                )
        st = _HFState(
            out=torch.zeros(len(prompts), max_new, dtype=torch.long, device=self.device),
            attention_mask=mask,
            next_pos=mask.sum(-1),
            past=None,
            tok=ids[:, -1],
            seeds=torch.tensor(seeds, dtype=torch.long, device=self.device),
            adapter_names=names,
            greedy=greedy,
            temperature=temperature,
            top_p=top_p,
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            st.tok = self._choose(self._forward(st, ids, positions), st)
        st.out[:, 0] = st.tok
        st.step = 1
        return st

    def advance(self, st: _HFState, steps: int) -> None:
        with torch.inference_mode():
            for _ in range(steps):
                st.attention_mask = torch.cat(
                    [st.attention_mask, torch.ones_like(st.attention_mask[:, :1])], dim=-1
                )
                logits = self._forward(st, st.tok.unsqueeze(1), st.next_pos.unsqueeze(1))
                st.next_pos = st.next_pos + 1
                st.tok = self._choose(logits, st)
                st.out[:, st.step] = st.tok
                st.step += 1

    def drop_states(self) -> None:
        pass


class HFBackend:
    """transformers + peft backend; see the module docstring for the two execution paths.

    ``max_batch_size`` rows per batch (default 64 on CUDA, 16 on CPU) and at most
    ``max_batch_tokens`` cache slots per batch (rows x (prompt + new tokens)). Batches are also
    sized from memory (`evalhub.generation.capacity`): the estimated KV cache + prefill
    activations of a batch stay within the free GPU memory, or ``memory_budget`` bytes where
    given (the only memory limit on a CPU); an out-of-memory error still halves a batch.
    ``prefill_chunk``: prompt tokens per row prefilled in one forward by the fast engine.
    ``check_every``: decode steps between host-side checks for EOS / stop strings.
    ``fault_hook`` is called with each batch's size before it runs (tests inject OOM there).
    """

    name = "hf"

    def __init__(
        self,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch_size: int | None = None,
        max_batch_tokens: int = 262_144,
        fast: bool = True,
        use_cuda_graph: bool | None = None,
        attention: str = "auto",
        fused_kernels: bool | None = None,
        merge_single_adapter: bool | None = None,
        check_every: int = 16,
        check_base_name: bool = True,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        memory_budget: int | None = None,
        quantization: str = "none",
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_batch_size = max_batch_size or (64 if self.device.type == "cuda" else 16)
        self.max_batch_tokens = max_batch_tokens
        self.fast = fast
        self.use_cuda_graph = use_cuda_graph
        self.attention = attention
        self.fused_kernels = fused_kernels
        self.merge_single_adapter = merge_single_adapter
        self.check_every = max(1, check_every)
        self.check_base_name = check_base_name
        self.prefill_chunk = prefill_chunk
        self.memory_budget = memory_budget
        #: "none", or how bitsandbytes quantises the base ("nf4", "fp4", "int8"): the general path only.
        self.quantization = normalise_quantization(quantization)
        #: The precision the base runs in ("bf16", "fp32", "nf4", ...), for the run's record.
        self.precision = precision_label(self.dtype, self.quantization)
        self.shape: ModelShape | None = None
        self.one_adapter_per_batch = False
        self.fault_hook: Callable[[int], None] | None = None
        self.tokenizer: Any = None
        self.adapters: dict[str, LoraAdapter] = {}
        self.adapter_index: dict[str, int] = {}
        self.context_length = 0
        self.path = ""  # "fast" or "hf", for logs and tests
        self._stepper: _Stepper | None = None
        self._eos: set[int] = set()
        self._pad_id = 0

    # ---- load ------------------------------------------------------------------------------

    def load(self, base_model_dir: str | Path, adapters: Mapping[str, str | Path]) -> None:
        """Load the base model once and every adapter; raise AdapterError before any work."""
        base_dir = Path(base_model_dir)
        base = load_base_model(base_dir, dtype=self.dtype, quantization=self.quantization, device=self.device)
        self.tokenizer, model = base.tokenizer, base.model
        read = read_checked_adapters(
            adapters,
            base_model_dir=base_dir,
            base_name_or_path=base.name_or_path,
            module_shapes=base.module_shapes,
            check_base_name=self.check_base_name,
        )
        self.adapters = read
        self.adapter_index = {name: i for i, name in enumerate(read)}
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        self._eos = self._eos_ids(model)
        self.shape = ModelShape.from_config(model.config, self.dtype)
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else min(self._eos, default=0))

        if not self.fast:
            reason: str | None = "fast engine disabled (fast=False)"
        elif self.quantization != "none":
            reason = f"base loaded in {self.quantization} (bitsandbytes): the fast engine needs plain weights"
        else:
            reason = unsupported_reason(model, read)
        # DoRA adapters run one adapter per batch: merged weights on the engine; peft mixes none.
        self.one_adapter_per_batch = any(a.uses_dora() for a in read.values())
        if reason is None:
            self._stepper = FastEngine(
                model,
                read,
                device=self.device,
                dtype=self.dtype,
                use_cuda_graph=self.use_cuda_graph,
                attention=self.attention,
                fused_kernels=self.fused_kernels,
                merge_single_adapter=self.merge_single_adapter,
                prefill_chunk=self.prefill_chunk,
            )
            self.path = "fast"
            model_type = model.config.model_type
            del model  # the engine holds its own fused copy of the weights
            log.info(
                "hf backend: fast engine (%s) on %s (%s), %d adapters",
                model_type,
                self.device,
                self.dtype,
                len(read),
            )
        else:
            log.warning("hf backend: slower HF forward path (%s)", reason)
            self._stepper = HFStepper(
                self._peft_model(model, adapters),
                list(read),
                self.device,
                one_adapter_per_batch=self.one_adapter_per_batch,
            )
            self.path = "hf"
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _peft_model(self, model: Any, adapters: Mapping[str, str | Path]) -> Any:
        if self.quantization == "none":  # bitsandbytes placed a quantised model already
            model = model.to(self.device)
        for name, path in adapters.items():
            model = peft_attach(model, name, path)
        return model

    def _eos_ids(self, model: Any) -> set[int]:
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list | tuple):
                ids.update(int(i) for i in source)
        return ids

    def close(self) -> None:
        if self._stepper is not None:
            self._stepper.drop_states()
        self._stepper = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- generate --------------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: GenerationConfig,
        *,
        on_batch: OnBatch | None = None,
    ) -> list[GenerationResult]:
        if self._stepper is None:
            raise GenerationError("call load() before generate()")
        results, rows = admit_requests(
            requests, self.adapter_index, self.tokenizer, config, self.context_length, on_batch
        )
        memory = available_bytes(self.device, self.memory_budget)
        if memory is not None and self.memory_budget is None and isinstance(self._stepper, FastEngine):
            memory += int(self._stepper.held_bytes() * FREE_MEMORY_SHARE)  # idle caches it frees on demand
        for batch in self._batches(rows, config, memory=memory):
            done = self._run_splitting(batch, config)
            for row, result in zip(batch, done, strict=True):
                results[row.index] = result
            if on_batch is not None:
                on_batch(done)
        return [r for r in results if r is not None]

    def _batch_bytes(self, rows: int, prompt_tokens: int, max_new: int) -> int:
        """Estimated memory for a batch beyond the weights (`capacity.batch_bytes`)."""
        assert self.shape is not None
        chunk = self.prefill_chunk if self.path == "fast" else None
        return batch_bytes(
            self.shape, rows=rows, prompt_tokens=prompt_tokens, max_new=max_new, prefill_chunk=chunk
        )

    def _batches(
        self, rows: list[PendingRow], config: GenerationConfig, *, memory: int | None = None
    ) -> list[list[PendingRow]]:
        # Grouped by adapter, so most batches hold one adapter (merged weights on GPU: base
        # speed); only the batch where one adapter's rows end and the next begin mixes them.
        # Within an adapter, longest first: the first batch is the largest, so memory trouble
        # shows up at once, and rows of similar length share a batch (little padding).
        ordered = sorted(rows, key=lambda r: (r.request.adapter or "", -len(r.prompt.ids), r.index))
        batches: list[list[PendingRow]] = []
        current: list[PendingRow] = []
        width = 0
        for row in ordered:
            wider = max(width, len(row.prompt.ids))
            cost = (len(current) + 1) * (wider + config.max_new_tokens)
            too_big = memory is not None and (
                self._batch_bytes(len(current) + 1, wider, config.max_new_tokens) > memory
            )
            other_adapter = (
                self.one_adapter_per_batch and current and current[0].request.adapter != row.request.adapter
            )
            if current and (
                len(current) >= self.max_batch_size
                or cost > self.max_batch_tokens
                or too_big
                or other_adapter
            ):
                if too_big and len(current) < self.max_batch_size:
                    log.info(
                        "batch of %d rows (%d tokens wide) sized to fit %d bytes", len(current), width, memory
                    )
                batches.append(current)
                current, wider = [], len(row.prompt.ids)
            current.append(row)
            width = wider
        if current:
            batches.append(current)
        return batches

    def _run_splitting(self, batch: list[PendingRow], config: GenerationConfig) -> list[GenerationResult]:
        """Run a batch; on CUDA out-of-memory, halve it and retry each half."""
        try:
            if self.fault_hook is not None:
                self.fault_hook(len(batch))
            return self._run_batch(batch, config)
        except torch.cuda.OutOfMemoryError as exc:
            assert self._stepper is not None
            self._stepper.drop_states()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) == 1:
                row = batch[0]
                log.error("out of memory on a single request (%s tokens): %s", len(row.prompt.ids), exc)
                return [rejected_result(row.request, row.prompt, row.seed, "out of memory even alone")]
            half = len(batch) // 2
            log.warning(
                "out of memory at batch size %d; retrying as %d + %d", len(batch), half, len(batch) - half
            )
            return self._run_splitting(batch[:half], config) + self._run_splitting(batch[half:], config)

    def _run_batch(self, batch: list[PendingRow], config: GenerationConfig) -> list[GenerationResult]:
        assert self._stepper is not None
        started = time.perf_counter()
        max_new = config.max_new_tokens
        st = self._stepper.start(
            [list(r.prompt.ids) for r in batch],
            [None if r.request.adapter is None else self.adapter_index[r.request.adapter] for r in batch],
            [r.seed for r in batch],
            max_new=max_new,
            greedy=config.greedy,
            temperature=config.temperature,
            top_p=config.top_p,
            pad_id=self._pad_id,
        )
        finisher = _Finisher(self.tokenizer, self._eos, config.stop, len(batch))
        generated, seen = 1, 0  # start() made the first token
        while True:
            # Only the tokens made since the last check cross to the host.
            fresh = st.out[:, seen:generated].tolist()
            seen = generated
            if finisher.check(fresh, final=generated >= max_new, now=time.perf_counter() - started):
                break
            steps = min(self.check_every, max_new - generated)
            self._stepper.advance(st, steps)
            generated += steps
        finisher.finish_texts()
        results = []
        for row, end in zip(batch, finisher.ends, strict=True):
            assert end is not None and end.text is not None
            results.append(
                GenerationResult(
                    key=row.request.key,
                    text=end.text,
                    prompt_tokens=len(row.prompt.ids),
                    output_tokens=end.tokens,
                    finish_reason=end.reason,  # type: ignore[arg-type]
                    latency_ms=end.seconds * 1000.0,
                    truncated=row.prompt.truncated,
                    seed=row.seed,
                    adapter=row.request.adapter,
                    sample=row.request.sample,
                    token_ids=tuple(end.token_ids),
                )
            )
        return results


@dataclass
class _End:
    text: str | None  # None until finish_texts() decodes it
    tokens: int
    reason: str
    seconds: float
    token_ids: list[int]


class _Finisher:
    """Decides, from the tokens generated so far, which rows are finished and how.

    ``check`` gets only the tokens made since the previous call and looks at nothing twice;
    texts are decoded once at the end, in one batch, unless a stop string needs them earlier.
    """

    def __init__(self, tokenizer: Any, eos: set[int], stop: Sequence[str], rows: int) -> None:
        self.tokenizer = tokenizer
        self.eos = eos
        self.stop = list(stop)
        self.ends: list[_End | None] = [None] * rows
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.scanned = [0] * rows  # tokens already searched for stop strings

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _first_stop(self, text: str) -> int:
        positions = [p for p in (text.find(s) for s in self.stop) if p >= 0]
        return min(positions) if positions else -1

    def check(self, fresh: list[list[int]], *, final: bool, now: float) -> bool:
        """Add each row's ``fresh`` tokens and update finished rows; True when all are done."""
        for row, new in enumerate(fresh):
            if self.ends[row] is not None:
                continue
            ids = self.tokens[row]
            start = len(ids)
            ids.extend(new)
            eos_at = next((start + i for i, t in enumerate(new) if t in self.eos), -1)
            limit = eos_at if eos_at >= 0 else len(ids)
            if self.stop:
                first = max(1, self.scanned[row] + 1)
                if limit >= first and self._first_stop(self._decode(ids[:limit])) >= 0:
                    # The shortest prefix that already contains a stop string.
                    for n in range(first, limit + 1):
                        text = self._decode(ids[:n])
                        cut = self._first_stop(text)
                        if cut >= 0:
                            self.ends[row] = _End(text[:cut], n, "stop_string", now, ids[:n])
                            break
                    if self.ends[row] is not None:
                        continue
                self.scanned[row] = limit
            if eos_at >= 0:
                self.ends[row] = _End(None, eos_at + 1, "eos", now, ids[: eos_at + 1])
            elif final:
                self.ends[row] = _End(None, len(ids), "length", now, list(ids))
        return all(end is not None for end in self.ends)

    def finish_texts(self) -> None:
        """Decode the texts not decoded yet (without the EOS token), in one tokenizer call."""
        todo = [end for end in self.ends if end is not None and end.text is None]
        if not todo:
            return
        ids = [end.token_ids[:-1] if end.reason == "eos" else end.token_ids for end in todo]
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        for end, text in zip(todo, texts, strict=True):
            end.text = str(text)
