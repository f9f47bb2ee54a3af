"""Where a model runs and how a base model and its LoRA adapters are loaded.

One home for the device and dtype rule and for loading through transformers and peft, shared by the hf
backend, the adapter sanity check and perplexity scoring, so all three put the same model on the same
device in the same precision and refuse the same adapters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalhub.generation.adapters import linear_shapes
from evalhub.generation.errors import GenerationError
from evalhub.generation.folders import normalise_quantization

AUTO = "auto"
_DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``, ``""`` or ``"auto"`` (the ``EVALHUB_DEVICE`` default): the GPU when there is one, else
    the CPU; anything else as torch names it (``"cuda:1"``, ``"cpu"``)."""
    if isinstance(device, torch.device):
        return device
    if not device or device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` or ``"auto"``: bfloat16 on a GPU, float32 on the CPU (bf16 matmuls are slow there and a
    large model in float32 would not fit a GPU); else a torch dtype or one of its short names."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if not dtype or dtype == AUTO:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise GenerationError(f"unknown dtype {dtype!r}; choose one of {sorted(_DTYPES)}") from None


_PRECISION = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def precision_label(dtype: torch.dtype, quantization: str = "none") -> str:
    """The precision a base model runs in, as a run records it: "bf16", "fp32", or "nf4" etc."""
    return quantization if quantization != "none" else _PRECISION.get(dtype, str(dtype))


def quantization_config(quantization: str, dtype: torch.dtype, device: torch.device) -> Any:
    """A transformers BitsAndBytesConfig loading the base as ``quantization`` ("nf4", "fp4", "int8"),
    as a QLoRA adapter's users deploy it; GenerationError naming what is missing (bitsandbytes, a GPU)."""
    quantization = normalise_quantization(quantization)
    if device.type != "cuda":
        raise GenerationError(
            f"a {quantization} base needs a CUDA GPU (bitsandbytes); the device is {device}"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise GenerationError(
            f"a {quantization} base needs the bitsandbytes package, which is not installed ({exc})"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=quantization, bnb_4bit_compute_dtype=dtype
    )


@dataclass
class LoadedBase:
    """A base model loaded on the CPU in its dtype, with what the adapter checks need to know of it."""

    model: Any
    tokenizer: Any
    module_shapes: dict[str, tuple[int, int]]
    name_or_path: str


def _attention_for(base_dir: Path) -> dict[str, Any]:
    """Attention soft-capping (Gemma 2's ``attn_logit_softcapping``) is applied only by transformers'
    eager attention: SDPA, the default, drops it and gives other outputs. Such a model is loaded eager,
    so the general path (the fast engine's fallback) stays right."""
    try:
        config = json.loads((base_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"attn_implementation": "eager"} if config.get("attn_logit_softcapping") else {}


def load_base_model(
    base_model_dir: str | Path,
    *,
    dtype: torch.dtype,
    tokenizer_dir: str | Path | None = None,
    quantization: str = "none",
    device: torch.device | None = None,
) -> LoadedBase:
    """Load a local Hugging Face causal LM and its tokenizer (from ``tokenizer_dir`` when given), in eval mode.

    The model stays on the CPU: the fast engine copies its weights into its own layout, the others move it.
    With ``quantization`` other than "none" it is loaded by bitsandbytes straight onto ``device`` (a GPU),
    already in place: callers must not move it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = Path(base_model_dir)
    if not (base_dir / "config.json").is_file():
        raise GenerationError(f"base model folder {base_dir} has no config.json")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or base_dir))
    attention = _attention_for(base_dir)
    if normalise_quantization(quantization) == "none":
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype, **attention)
    else:
        dev = device or torch.device("cuda")
        model = AutoModelForCausalLM.from_pretrained(
            str(base_dir),
            dtype=dtype,
            quantization_config=quantization_config(quantization, dtype, dev),
            device_map={"": dev},
            **attention,
        )
    model.eval()
    return LoadedBase(
        model=model,
        tokenizer=tokenizer,
        module_shapes=linear_shapes(model),
        name_or_path=str(getattr(model.config, "_name_or_path", "") or ""),
    )


def peft_attach(model: Any, name: str, path: str | Path) -> Any:
    """Add a LoRA adapter under ``name`` through peft: wraps a plain model, or loads into a peft one.

    Returns the peft model (with ``name`` loaded but not necessarily active) in eval mode.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.load_adapter(str(path), adapter_name=name)
    else:
        model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
    model.eval()
    return model
