"""Read PEFT LoRA adapter folders without peft: config, weights, hash, and static checks."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from evalhub.generation.errors import AdapterIncompatible, AdapterIneffective, AdapterMissing

# base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight (peft drops the adapter name on save)
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


@dataclass
class LoraModule:
    """One adapted linear layer: delta W = scale * B @ A."""

    name: str  # module path in the base model, e.g. "model.layers.0.self_attn.q_proj"
    a: torch.Tensor  # [r, in]
    b: torch.Tensor  # [out, r]
    scale: float

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
    #: Tensors we cannot apply as plain LoRA (DoRA magnitudes, embedding LoRA, saved modules).
    unsupported: list[str] = field(default_factory=list)


def weights_files(path: Path) -> list[Path]:
    files = sorted(path.glob("adapter_model*.safetensors"))
    if not files:
        files = sorted(path.glob("adapter_model*.bin"))
    return files


def weights_sha256(files: list[Path]) -> str:
    """sha256 over the weight files' bytes, in name order (one file: that file's plain sha256)."""
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


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
    files = weights_files(folder)
    if not files:
        raise AdapterMissing(name, f"no adapter_model.safetensors in {folder}")

    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            tensors.update(load_file(str(file)))
        else:
            tensors.update(torch.load(str(file), map_location="cpu", weights_only=True))

    adapter = LoraAdapter(name=name, path=folder, config=config, weights_sha256=weights_sha256(files))
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match is None or "lora_embedding" in key:
            adapter.unsupported.append(key)
            continue
        halves.setdefault(match["module"], {})[match["ab"]] = tensor

    alpha = float(config.get("lora_alpha", config.get("r", 8)))
    alpha_pattern = dict(config.get("alpha_pattern") or {})
    rslora = bool(config.get("use_rslora", False))
    for module, ab in sorted(halves.items()):
        if set(ab) != {"A", "B"}:
            raise AdapterIncompatible(name, f"module {module} has only lora_{''.join(ab)} weights")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise AdapterIncompatible(
                name, f"module {module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not chain"
            )
        rank = int(a.shape[0])
        module_alpha = float(_pattern_value(alpha_pattern, module, alpha))
        scale = module_alpha / math.sqrt(rank) if rslora else module_alpha / rank
        adapter.modules[module] = LoraModule(name=module, a=a, b=b, scale=scale)
    if config.get("use_dora"):
        adapter.unsupported.append("use_dora")
    if config.get("modules_to_save"):
        adapter.unsupported.append("modules_to_save")
    if str(config.get("bias", "none")) != "none":
        adapter.unsupported.append(f"bias={config.get('bias')}")
    return adapter


def _norm_name(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1].lower()


def check_adapter_fits(
    adapter: LoraAdapter,
    *,
    base_model_dir: str | Path,
    base_name_or_path: str,
    module_shapes: dict[str, tuple[int, int]],
    check_base_name: bool = True,
) -> None:
    """Raise unless the adapter was made for this base model and every LoRA module fits.

    ``module_shapes`` maps the base model's linear module paths to (out_features, in_features).
    The base-model name check compares the adapter's ``base_model_name_or_path`` with the base
    folder (resolved path or last path component, case-insensitive) and the base config's
    ``_name_or_path``; turn it off for adapters trained on a renamed copy of the same weights.
    """
    declared = str(adapter.config.get("base_model_name_or_path") or "")
    if check_base_name and declared:
        base_dir = Path(base_model_dir)
        candidates = {_norm_name(str(base_dir)), _norm_name(base_name_or_path)} - {""}
        same_path = False
        try:
            same_path = Path(declared).resolve() == base_dir.resolve()
        except OSError:
            same_path = False
        if not same_path and _norm_name(declared) not in candidates:
            raise AdapterIncompatible(
                adapter.name,
                f"was trained for base model {declared!r}, not {str(base_model_dir)!r}",
            )
    if not adapter.modules:
        raise AdapterIneffective(adapter.name, "contains no LoRA weights (target modules matched nothing)")
    for module, lora in adapter.modules.items():
        shape = module_shapes.get(module)
        if shape is None:
            raise AdapterIncompatible(adapter.name, f"targets {module}, which the base model does not have")
        out_features, in_features = shape
        if lora.a.shape[1] != in_features or lora.b.shape[0] != out_features:
            raise AdapterIncompatible(
                adapter.name,
                f"module {module}: LoRA maps {lora.a.shape[1]}->{lora.b.shape[0]} "
                f"but the base layer is {in_features}->{out_features}",
            )
    if all(
        float(lora.b.abs().max()) == 0.0 or float(lora.a.abs().max()) == 0.0
        for lora in adapter.modules.values()
    ):
        raise AdapterIneffective(adapter.name, "every LoRA B (or A) matrix is all zeros: it changes nothing")


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Module path -> (out, in) for every nn.Linear of a HF model (paths as peft writes them)."""
    return {
        name: (int(module.out_features), int(module.in_features))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
