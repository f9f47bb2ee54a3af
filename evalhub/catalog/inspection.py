"""Reading local Hugging Face model folders and PEFT adapter folders without loading the weights.

Everything here reads headers and JSON only (no torch import), so registering a 70B model is as quick
as registering the fixture model. Each problem raises `FolderProblem` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalhub.errors import ValidationFailed

WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


class FolderProblem(ValidationFailed):
    """A model or adapter folder that cannot be registered."""


@dataclass(frozen=True)
class ModelFolderInfo:
    folder: Path
    config: dict[str, Any]
    architecture: str
    model_type: str
    dtype: str
    weight_files: list[Path]
    weights_hash: str
    parameters: int
    shapes: dict[str, list[int]] = field(repr=False)
    tokenizer_folder: Path | None


@dataclass(frozen=True)
class AdapterFolderInfo:
    folder: Path
    config: dict[str, Any]
    peft_type: str
    rank: int
    alpha: float
    target_modules: list[str]
    base_model_name_or_path: str
    weight_files: list[Path]
    weights_hash: str
    shapes: dict[str, list[int]] = field(repr=False)
    provenance: dict[str, Any]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FolderProblem(f"{path}: file is missing.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderProblem(f"{path}: not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise FolderProblem(f"{path}: expected a JSON object.")
    return data


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape from a safetensors header, checking the header against the file size.

    Hand-rolled on purpose: the format's header is 8 bytes of length plus JSON, and reading it this way
    needs no framework and catches truncated files, which a lazy `safe_open` only notices on access.
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise FolderProblem(f"{path}: corrupt safetensors file (shorter than its 8-byte header).")
            (header_len,) = struct.unpack("<Q", head)
            if header_len <= 0 or 8 + header_len > size or header_len > 100_000_000:
                raise FolderProblem(
                    f"{path}: corrupt safetensors file (header length {header_len} does not fit the file)."
                )
            header = json.loads(handle.read(header_len))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FolderProblem(f"{path}: corrupt safetensors file (unreadable header).") from exc
    if not isinstance(header, dict):
        raise FolderProblem(f"{path}: corrupt safetensors file (header is not an object).")
    data_size = size - 8 - header_len
    shapes: dict[str, list[int]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = meta["data_offsets"]
            shape = [int(d) for d in meta["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise FolderProblem(f"{path}: corrupt safetensors file (bad entry for tensor {name!r}).") from exc
        if end > data_size or start > end:
            raise FolderProblem(
                f"{path}: corrupt or truncated safetensors file (tensor {name!r} ends at byte {end}, "
                f"the data holds {data_size})."
            )
        shapes[name] = shape
    if not shapes:
        raise FolderProblem(f"{path}: safetensors file holds no tensors.")
    return shapes


def files_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _weights(folder: Path, *, prefix: str = "") -> list[Path]:
    safetensors = sorted(p for p in folder.glob(f"{prefix}*.safetensors") if p.is_file())
    if safetensors:
        return safetensors
    return sorted(p for p in folder.glob(f"{prefix}*.bin") if p.is_file() and "training_args" not in p.name)


def _all_shapes(files: list[Path]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            shapes.update(safetensors_shapes(path))
    return shapes


def inspect_model_folder(folder: str | Path) -> ModelFolderInfo:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FolderProblem(f"{path}: model folder does not exist.")
    config = _read_json(path / "config.json")
    if "model_type" not in config:
        raise FolderProblem(f"{path / 'config.json'}: no model_type; is this a Hugging Face model folder?")
    files = _weights(path, prefix="")
    files = [f for f in files if not f.name.startswith("adapter_")]
    if not files:
        raise FolderProblem(f"{path}: no weight files (*.safetensors or *.bin).")
    shapes = _all_shapes(files)
    parameters = 0
    for shape in shapes.values():
        count = 1
        for dim in shape:
            count *= dim
        parameters += count
    tokenizer_folder = path if any((path / name).is_file() for name in TOKENIZER_FILES) else None
    architectures = config.get("architectures") or [""]
    return ModelFolderInfo(
        folder=path.resolve(),
        config=config,
        architecture=str(architectures[0]),
        model_type=str(config.get("model_type", "")),
        dtype=str(config.get("torch_dtype") or config.get("dtype") or ""),
        weight_files=files,
        weights_hash=files_sha256(files),
        parameters=parameters,
        shapes=shapes,
        tokenizer_folder=tokenizer_folder.resolve() if tokenizer_folder else None,
    )


def _module_key(adapter_key: str) -> tuple[str, str] | None:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' → ('model.layers.0.self_attn.q_proj', 'A')."""
    for part in ("lora_A", "lora_B"):
        marker = f".{part}."
        if marker in adapter_key:
            module = adapter_key.split(marker)[0]
            module = module.removeprefix("base_model.model.")
            return module, part[-1]
    return None


def inspect_adapter_folder(folder: str | Path) -> AdapterFolderInfo:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FolderProblem(f"{path}: adapter folder does not exist.")
    config = _read_json(path / "adapter_config.json")
    peft_type = str(config.get("peft_type", ""))
    if peft_type.upper() != "LORA":
        raise FolderProblem(
            f"{path / 'adapter_config.json'}: peft_type {peft_type!r} is not supported (LoRA adapters only, "
            "including adapters trained with QLoRA)."
        )
    try:
        rank = int(config["r"])
        alpha = float(config.get("lora_alpha", rank))
    except (KeyError, TypeError, ValueError) as exc:
        raise FolderProblem(f"{path / 'adapter_config.json'}: missing or invalid rank 'r'.") from exc
    targets = config.get("target_modules") or []
    target_modules = [targets] if isinstance(targets, str) else [str(t) for t in targets]
    files = _weights(path, prefix="adapter_model")
    if not files:
        raise FolderProblem(f"{path}: no adapter weights (adapter_model.safetensors).")
    shapes = _all_shapes(files)
    provenance_path = path / "evalhub.json"
    provenance = _read_json(provenance_path) if provenance_path.is_file() else {}
    return AdapterFolderInfo(
        folder=path.resolve(),
        config=config,
        peft_type=peft_type.upper(),
        rank=rank,
        alpha=alpha,
        target_modules=target_modules,
        base_model_name_or_path=str(config.get("base_model_name_or_path") or ""),
        weight_files=files,
        weights_hash=files_sha256(files),
        shapes=shapes,
        provenance=provenance,
    )


def _last_part(value: str) -> str:
    return value.rstrip("/").split("/")[-1].lower()


def check_adapter_fits(*, adapter: AdapterFolderInfo, model: ModelFolderInfo, model_name: str) -> None:
    """Raise FolderProblem unless the adapter was trained for this base model and its shapes fit."""
    claimed = adapter.base_model_name_or_path
    if claimed:
        known = {
            _last_part(model_name),
            _last_part(str(model.folder)),
            _last_part(str(model.config.get("_name_or_path", ""))),
        }
        known.discard("")
        if _last_part(claimed) not in known:
            raise FolderProblem(
                f"{adapter.folder / 'adapter_config.json'}: base_model_name_or_path is {claimed!r}, "
                f"but the base model is {model_name!r} ({model.folder}). Register the adapter on the model it was trained for."
            )
    config_file = adapter.folder / "adapter_config.json"
    weights_file = adapter.weight_files[0]
    seen = 0
    for key, shape in adapter.shapes.items():
        parsed = _module_key(key)
        if parsed is None:
            continue
        module, side = parsed
        base_shape = model.shapes.get(f"{module}.weight")
        if base_shape is None:
            raise FolderProblem(
                f"{weights_file}: tensor {key!r} targets {module!r}, which the base model does not have."
            )
        if len(base_shape) != 2 or len(shape) != 2:
            continue
        out_features, in_features = base_shape
        if side == "A" and shape[1] != in_features:
            raise FolderProblem(
                f"{weights_file}: {key} has input size {shape[1]}, but {module} in the base model takes {in_features}."
            )
        if side == "B" and shape[0] != out_features:
            raise FolderProblem(
                f"{weights_file}: {key} has output size {shape[0]}, but {module} in the base model gives {out_features}."
            )
        seen += 1
    if seen == 0:
        raise FolderProblem(f"{weights_file}: holds no LoRA A/B tensors; see {config_file}.")
