"""Adapter sanity check, run before a run starts: every adapter loads, fits the base model,
and really changes its outputs. Returns each adapter's weights hash for the run record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalhub.generation.adapters import read_checked_adapters
from evalhub.generation.errors import AdapterIneffective, GenerationError
from evalhub.generation.folders import normalise_quantization
from evalhub.generation.loading import (
    load_base_model,
    peft_attach,
    precision_label,
    resolve_device,
    resolve_dtype,
)

DEFAULT_PROBES: tuple[str, ...] = (
    "Summarise the following text in one sentence.",
    "The meeting was moved to Thursday because",
    "Hello",
)
#: Largest |logit difference| (over probes and vocabulary) below which an adapter "does nothing".
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AdapterReport:
    name: str
    path: str
    weights_sha256: str
    modules: int  # adapted linear layers
    max_rank: int
    max_logit_delta: float  # max |adapter logits - base logits| on the probes' next token
    base_precision: str = ""  # the precision the base ran in: "bf16", "fp32", "nf4", ...


def _next_token_logits(
    model: Any, tokenizer: Any, probes: Sequence[str], device: torch.device
) -> torch.Tensor:
    rows = []
    with torch.inference_mode():
        for probe in probes:  # one at a time: no padding, nothing to get wrong
            ids = tokenizer(probe, return_tensors="pt")["input_ids"].to(device)
            if ids.shape[1] == 0:
                continue
            rows.append(model(input_ids=ids).logits[0, -1].float().cpu())
    if not rows:
        raise GenerationError("no sanity probe encodes to any token")
    return torch.stack(rows)


def check_adapters(
    base_model_dir: str | Path,
    adapters: Mapping[str, str | Path],
    *,
    probes: Sequence[str] = DEFAULT_PROBES,
    tolerance: float = DEFAULT_TOLERANCE,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
    check_base_name: bool = True,
    quantization: str = "none",
) -> dict[str, AdapterReport]:
    """Check every adapter; raise the first problem as an AdapterError naming the adapter.

    Static checks come first for all adapters (folder, adapter_config.json, weights file,
    base-model name, module names and shapes, all-zero matrices), so a broken adapter fails
    before any model forward. Then each adapter is loaded through peft on top of the base
    model and its next-token logits on ``probes`` must differ from the base model's by more
    than ``tolerance`` somewhere.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    quantization = normalise_quantization(quantization)
    base = load_base_model(base_model_dir, dtype=dt, quantization=quantization, device=dev)
    model = base.model.to(dev) if quantization == "none" else base.model
    tokenizer = base.tokenizer
    read = read_checked_adapters(
        adapters,
        base_model_dir=base_model_dir,
        base_name_or_path=base.name_or_path,
        module_shapes=base.module_shapes,
        check_base_name=check_base_name,
    )
    if not read:
        return {}

    base_logits = _next_token_logits(model, tokenizer, probes, dev)
    reports: dict[str, AdapterReport] = {}
    peft_model: Any = None
    for name, adapter in read.items():
        peft_model = peft_attach(peft_model if peft_model is not None else model, name, adapter.path)
        peft_model.set_adapter(name)
        logits = _next_token_logits(peft_model, tokenizer, probes, dev)
        delta = float((logits - base_logits).abs().max())
        if not delta > tolerance:  # also catches NaN
            raise AdapterIneffective(
                name,
                f"its next-token logits differ from the base model's by at most {delta:.3g} "
                f"(tolerance {tolerance:g}) on {len(probes)} probe prompts: it changes nothing",
            )
        reports[name] = AdapterReport(
            name=name,
            path=str(adapter.path),
            weights_sha256=adapter.weights_sha256,
            modules=len(adapter.modules),
            max_rank=max(m.rank for m in adapter.modules.values()),
            max_logit_delta=delta,
            base_precision=precision_label(dt, quantization),
        )
        peft_model.delete_adapter(name)
    return reports
