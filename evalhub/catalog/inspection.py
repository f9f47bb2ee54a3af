"""Reading local Hugging Face model folders and PEFT adapter folders without loading the weights.

Everything here reads headers and JSON only (no torch import), so registering a 70B model is as quick
as registering the fixture model. Each problem raises `FolderProblem` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalhub.errors import ValidationFailed
from evalhub.generation.errors import AdapterError
from evalhub.generation.folders import (
    ADAPTER_WEIGHTS_PREFIX,
    check_lora_shapes,
    check_trained_for_base,
    linear_shapes_from_tensors,
    lora_module_shapes,
    trained_quantization,
    weight_files,
    weights_fingerprint,
)

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
    base_quantization: str = "none"


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
    files = [f for f in weight_files(path) if not f.name.startswith("adapter_")]
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
        weights_hash=weights_fingerprint(files),
        parameters=parameters,
        shapes=shapes,
        tokenizer_folder=tokenizer_folder.resolve() if tokenizer_folder else None,
    )


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
    files = weight_files(path, prefix=ADAPTER_WEIGHTS_PREFIX)
    if not files:
        raise FolderProblem(f"{path}: no adapter weights (adapter_model.safetensors).")
    shapes = _all_shapes(files)
    provenance_path = path / "evalhub.json"
    provenance = _read_json(provenance_path) if provenance_path.is_file() else {}
    try:
        quantization = trained_quantization(config, provenance)
    except ValueError as exc:
        raise FolderProblem(f"{path}: {exc} (evalhub.json or adapter_config.json).") from exc
    return AdapterFolderInfo(
        folder=path.resolve(),
        config=config,
        peft_type=peft_type.upper(),
        rank=rank,
        alpha=alpha,
        target_modules=target_modules,
        base_model_name_or_path=str(config.get("base_model_name_or_path") or ""),
        weight_files=files,
        weights_hash=weights_fingerprint(files),
        shapes=shapes,
        provenance=provenance,
        base_quantization=quantization,
    )


def check_adapter_fits(*, adapter: AdapterFolderInfo, model: ModelFolderInfo, model_name: str) -> None:
    """Raise FolderProblem unless the adapter was trained for this base model and its shapes fit.

    The rules are the engine's (`evalhub.generation.folders`), applied to the safetensors headers, so an
    adapter the catalog accepts is one the engine loads; here the message names the file at fault.
    """
    try:
        check_trained_for_base(
            adapter.folder.name,
            declared=adapter.base_model_name_or_path,
            base_dir=model.folder,
            base_names=[model_name, str(model.config.get("_name_or_path", ""))],
        )
    except AdapterError as exc:
        raise FolderProblem(
            f"{adapter.folder / 'adapter_config.json'}: base_model_name_or_path is "
            f"{adapter.base_model_name_or_path!r}, but the base model is {model_name!r} ({model.folder}). "
            "Register the adapter on the model it was trained for."
        ) from exc
    try:
        check_lora_shapes(
            adapter.folder.name,
            lora_shapes=lora_module_shapes(adapter.shapes),
            module_shapes=linear_shapes_from_tensors(model.shapes),
        )
    except AdapterError as exc:
        raise FolderProblem(f"{adapter.weight_files[0]}: {exc.reason}.") from exc
