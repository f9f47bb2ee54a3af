"""Read PEFT LoRA adapter folders without peft: config, weights, hash, and static checks."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from evalhub.generation.errors import AdapterIncompatible, AdapterIneffective, AdapterMissing
from evalhub.generation.folders import (
    ADAPTER_WEIGHTS_PREFIX,
    check_lora_pairs,
    check_lora_shapes,
    check_trained_for_base,
    lora_embedding_key,
    lora_key,
    weight_files,
    weights_fingerprint,
)


@dataclass
class LoraModule:
    """One adapted linear layer: delta W = scale * B @ A."""

    name: str  # module path in the base model, e.g. "model.layers.0.self_attn.q_proj"
    a: torch.Tensor  # [r, in]
    b: torch.Tensor  # [out, r]
    scale: float
    #: DoRA: the per-output-row magnitude m [out]; the layer is then m * (W + s B A) / ||W + s B A||_row.
    magnitude: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])


@dataclass
class LoraAdapter:
    """A LoRA adapter read from disk: its config, its modules, and the sha256 of its weights."""

    name: str
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraModule] = field(default_factory=dict)
    weights_sha256: str = ""
    #: Tensors and config switches we cannot apply as plain LoRA (DoRA, saved modules, biases).
    unsupported: list[str] = field(default_factory=list)
    #: Modules whose LoRA is an embedding's (A [r, vocab] is looked up by token id, not multiplied).
    embedding_modules: set[str] = field(default_factory=set)
    #: Full weights peft saved beside the LoRA (embed_tokens / lm_head when they are targeted):
    #: module path -> weight. Equal to the base's they change nothing; different, the vocabulary
    #: was resized or retrained and the fast engine refuses the adapter.
    saved_weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def uses_dora(self) -> bool:
        return bool(self.config.get("use_dora"))


# peft saves targeted embedding layers whole: "...model.embed_tokens.base_layer.weight" (older
# versions without ".base_layer").
_SAVED_WEIGHT = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)(?:\.base_layer)?\.weight$")
_MAGNITUDE = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_magnitude_vector(?:\.[^.]+)?$")
_SAVED_LAYERS = frozenset({"embed_tokens", "lm_head", "embed_out", "wte"})


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    # Same matching rule as peft's get_pattern_key: the pattern matches a suffix of the module path.
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?{pattern}$", module):
            return value
    return default


def read_adapter(name: str, path: str | Path) -> LoraAdapter:
    """Read one adapter folder; raise AdapterMissing / AdapterIncompatible on a bad folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise AdapterMissing(name, f"folder {folder} does not exist")
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterMissing(name, f"{config_file} is missing (not a PEFT adapter folder?)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise AdapterIncompatible(name, f"adapter_config.json is not valid JSON: {exc}") from exc
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise AdapterIncompatible(name, f"peft_type {peft_type} is not LoRA")
    files = weight_files(folder, prefix=ADAPTER_WEIGHTS_PREFIX)
    if not files:
        raise AdapterMissing(name, f"no adapter_model.safetensors in {folder}")

    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            tensors.update(load_file(str(file)))
        else:
            tensors.update(torch.load(str(file), map_location="cpu", weights_only=True))

    adapter = LoraAdapter(name=name, path=folder, config=config, weights_sha256=weights_fingerprint(files))
    halves: dict[str, dict[str, torch.Tensor]] = {}
    magnitudes: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        parsed = lora_key(key)
        embedding = lora_embedding_key(key) if parsed is None else None
        if embedding is not None:
            adapter.embedding_modules.add(embedding[0])
            parsed = embedding
        if parsed is None:
            saved = _SAVED_WEIGHT.match(key)
            if saved is not None and saved["module"].rsplit(".", 1)[-1] in _SAVED_LAYERS:
                adapter.saved_weights[saved["module"]] = tensor
            elif (dora := _MAGNITUDE.match(key)) is not None:
                magnitudes[dora["module"]] = tensor
            else:
                adapter.unsupported.append(key)
            continue
        halves.setdefault(parsed[0], {})[parsed[1]] = tensor
    check_lora_pairs(
        name, {module: {k: tuple(t.shape) for k, t in ab.items()} for module, ab in halves.items()}
    )

    alpha = float(config.get("lora_alpha", config.get("r", 8)))
    alpha_pattern = dict(config.get("alpha_pattern") or {})
    rslora = bool(config.get("use_rslora", False))
    for module, ab in sorted(halves.items()):
        a, b = ab["A"], ab["B"]
        rank = int(a.shape[0])
        module_alpha = float(_pattern_value(alpha_pattern, module, alpha))
        scale = module_alpha / math.sqrt(rank) if rslora else module_alpha / rank
        adapter.modules[module] = LoraModule(name=module, a=a, b=b, scale=scale)
    for module, magnitude in magnitudes.items():
        if module in adapter.modules:
            adapter.modules[module].magnitude = magnitude.reshape(-1)
        else:
            adapter.unsupported.append(f"{module}.lora_magnitude_vector without LoRA weights")
    if config.get("use_dora"):
        bare = sorted(m for m, lora in adapter.modules.items() if lora.magnitude is None)
        if bare:
            adapter.unsupported.insert(0, f"use_dora without a lora_magnitude_vector for {bare[:2]}")
    if config.get("modules_to_save"):
        adapter.unsupported.append("modules_to_save")
    if str(config.get("bias", "none")) != "none":
        adapter.unsupported.append(f"bias={config.get('bias')}")
    return adapter


def check_adapter_fits(
    adapter: LoraAdapter,
    *,
    base_model_dir: str | Path,
    base_name_or_path: str,
    module_shapes: dict[str, tuple[int, int]],
    check_base_name: bool = True,
) -> None:
    """Raise unless the adapter was made for this base model, every LoRA module fits, and it is not all zeros.

    The name and shape rules are the catalog's too (`evalhub.generation.folders`); only the all-zeros
    check needs the loaded tensors. Turn the name check off for adapters trained on a renamed copy of
    the same weights.
    """
    if check_base_name:
        check_trained_for_base(
            adapter.name,
            declared=str(adapter.config.get("base_model_name_or_path") or ""),
            base_dir=base_model_dir,
            base_names=[base_name_or_path],
        )
    check_lora_shapes(
        adapter.name,
        lora_shapes={
            m: {"A": tuple(lora.a.shape), "B": tuple(lora.b.shape)} for m, lora in adapter.modules.items()
        },
        module_shapes=module_shapes,
    )
    if all(
        float(lora.b.abs().max()) == 0.0 or float(lora.a.abs().max()) == 0.0
        for lora in adapter.modules.values()
    ):
        raise AdapterIneffective(adapter.name, "every LoRA B (or A) matrix is all zeros: it changes nothing")


def read_checked_adapters(
    adapters: Mapping[str, str | Path],
    *,
    base_model_dir: str | Path,
    base_name_or_path: str,
    module_shapes: dict[str, tuple[int, int]],
    check_base_name: bool = True,
) -> dict[str, LoraAdapter]:
    """Read every adapter and check it fits the base model: all static checks before any model forward.

    Raises the first AdapterError, naming the adapter.
    """
    read = {name: read_adapter(name, path) for name, path in adapters.items()}
    for adapter in read.values():
        check_adapter_fits(
            adapter,
            base_model_dir=base_model_dir,
            base_name_or_path=base_name_or_path,
            module_shapes=module_shapes,
            check_base_name=check_base_name,
        )
    return read


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Module path -> (out, in) for every module LoRA can target in a HF model (paths as peft writes
    them): each nn.Linear, and each nn.Embedding as (dim, vocab), the shape its LoRA B @ A has."""
    shapes: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            shapes[name] = (int(module.out_features), int(module.in_features))
        elif isinstance(module, torch.nn.Embedding):
            shapes[name] = (int(module.embedding_dim), int(module.num_embeddings))
    return shapes
