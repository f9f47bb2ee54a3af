"""Model and adapter folders on shapes and names only: which files hold the weights, their fingerprint,
and whether a LoRA adapter fits a base model.

One home for these rules, shared by the catalog (which reads safetensors headers when an adapter is
registered, and must not import torch) and the engine (which checks the tensors it has loaded). No torch
here: the inputs are file lists, tensor names and shapes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from evalhub.generation.errors import AdapterIncompatible, AdapterIneffective

ADAPTER_WEIGHTS_PREFIX = "adapter_model"

# base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight (peft drops the adapter name on save;
# older files keep it: ...q_proj.lora_A.default.weight)
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def weight_files(folder: Path, *, prefix: str = "") -> list[Path]:
    """The folder's weight files named ``prefix*``: safetensors when there are any, else ``.bin``."""
    safetensors = sorted(p for p in folder.glob(f"{prefix}*.safetensors") if p.is_file())
    if safetensors:
        return safetensors
    return sorted(p for p in folder.glob(f"{prefix}*.bin") if p.is_file() and "training_args" not in p.name)


def weights_fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over each weight file's name and bytes, in name order.

    This is the hash the catalog stores as ``weights_hash`` and a run re-checks before it starts, so
    changing it would make every registered adapter look modified.
    """
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def lora_key(tensor_name: str) -> tuple[str, str] | None:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' -> ('model.layers.0.self_attn.q_proj', 'A').

    None for tensors that are not a linear layer's LoRA A or B (embedding LoRA, DoRA magnitudes, saved modules).
    """
    match = _LORA_KEY.match(tensor_name)
    if match is None or "lora_embedding" in tensor_name:
        return None
    return match["module"], match["ab"]


_LORA_EMBEDDING_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_embedding_(?P<ab>[AB])(?:\.[^.]+)?$"
)


def lora_embedding_key(tensor_name: str) -> tuple[str, str] | None:
    """'base_model.model.model.embed_tokens.lora_embedding_A' -> ('model.embed_tokens', 'A'); else None.

    An embedding's LoRA A is [r, vocab] and B [dim, r]: the same chain as a linear layer's, with the
    vocabulary as the input size.
    """
    match = _LORA_EMBEDDING_KEY.match(tensor_name)
    return None if match is None else (match["module"], match["ab"])


def lora_module_shapes(tensor_shapes: Mapping[str, Sequence[int]]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Module path -> {"A": shape, "B": shape} from an adapter's tensor names and shapes."""
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in tensor_shapes.items():
        parsed = lora_key(name)
        if parsed is not None:
            modules.setdefault(parsed[0], {})[parsed[1]] = tuple(int(d) for d in shape)
    return modules


def linear_shapes_from_tensors(tensor_shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, int]]:
    """Module path -> (out, in) for every 2-D ``*.weight`` tensor of a base model's weight files."""
    return {
        name.removesuffix(".weight"): (int(shape[0]), int(shape[1]))
        for name, shape in tensor_shapes.items()
        if name.endswith(".weight") and len(shape) == 2
    }


def _norm_name(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1].lower()


def check_trained_for_base(
    adapter: str, *, declared: str, base_dir: str | Path, base_names: Iterable[str]
) -> None:
    """Raise AdapterIncompatible unless the adapter's ``base_model_name_or_path`` names this base model.

    It matches the base folder itself (same resolved path) or, case-insensitively, the last path part of
    any name the base model goes by (its folder, its config's ``_name_or_path``, its registered name).
    An adapter that declares no base passes: nothing to compare.
    """
    if not declared:
        return
    base_dir = Path(base_dir)
    try:
        if Path(declared).resolve() == base_dir.resolve():
            return
    except OSError:
        pass
    known = {_norm_name(str(base_dir)), *(_norm_name(n) for n in base_names)} - {""}
    if _norm_name(declared) not in known:
        raise AdapterIncompatible(adapter, f"was trained for base model {declared!r}, not {str(base_dir)!r}")


def check_lora_pairs(adapter: str, lora_shapes: Mapping[str, Mapping[str, Sequence[int]]]) -> None:
    """Raise AdapterIncompatible unless every module has a 2-D lora_A [r, in] and lora_B [out, r]."""
    for module, halves in sorted(lora_shapes.items()):
        if set(halves) != {"A", "B"}:
            raise AdapterIncompatible(
                adapter, f"module {module} has only lora_{''.join(sorted(halves))} weights"
            )
        a, b = halves["A"], halves["B"]
        if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            raise AdapterIncompatible(
                adapter, f"module {module}: lora_A {tuple(a)} and lora_B {tuple(b)} do not chain"
            )


def check_lora_shapes(
    adapter: str,
    *,
    lora_shapes: Mapping[str, Mapping[str, Sequence[int]]],
    module_shapes: Mapping[str, tuple[int, int]],
) -> None:
    """Raise unless the adapter has LoRA modules and each one's A and B fit the base layer it targets.

    ``lora_shapes``: module path -> {"A": [r, in], "B": [out, r]}; ``module_shapes``: the base model's
    linear module paths -> (out_features, in_features).
    """
    if not lora_shapes:
        raise AdapterIneffective(adapter, "contains no LoRA weights (target modules matched nothing)")
    check_lora_pairs(adapter, lora_shapes)
    for module, halves in sorted(lora_shapes.items()):
        shape = module_shapes.get(module)
        if shape is None:
            raise AdapterIncompatible(adapter, f"targets {module}, which the base model does not have")
        out_features, in_features = shape
        a, b = halves["A"], halves["B"]
        if a[1] != in_features or b[0] != out_features:
            raise AdapterIncompatible(
                adapter,
                f"module {module}: LoRA maps {a[1]}->{b[0]} but the base layer is {in_features}->{out_features}",
            )


#: How a QLoRA-style adapter's base was quantised while it was trained ("none": plain weights).
QUANTIZATIONS = ("none", "nf4", "fp4", "int8")
_QUANTIZATION_ALIASES = {
    "": "none",
    "no": "none",
    "4bit": "nf4",
    "8bit": "int8",
    "bnb-nf4": "nf4",
    "llm.int8": "int8",
}


def normalise_quantization(value: object) -> str:
    """'NF4', '4bit', None, ... -> one of QUANTIZATIONS; ValueError naming the choices otherwise."""
    text = "" if value is None else str(value).strip().lower()
    text = _QUANTIZATION_ALIASES.get(text, text)
    if text not in QUANTIZATIONS:
        raise ValueError(f"base quantization {value!r} is not one of {', '.join(QUANTIZATIONS)}")
    return text


def trained_quantization(config: Mapping[str, object], provenance: Mapping[str, object]) -> str:
    """The base quantisation an adapter was trained on: ``base_quantization`` in its evalhub.json
    provenance, else in adapter_config.json, else a bitsandbytes ``quantization_config`` there
    (load_in_4bit + bnb_4bit_quant_type, or load_in_8bit); "none" when nothing says."""
    for source in (provenance, config):
        if source.get("base_quantization") not in (None, ""):
            return normalise_quantization(source["base_quantization"])
    bnb = config.get("quantization_config")
    if isinstance(bnb, Mapping):
        if bnb.get("load_in_4bit"):
            return normalise_quantization(bnb.get("bnb_4bit_quant_type") or "nf4")
        if bnb.get("load_in_8bit"):
            return "int8"
    return "none"


def base_precision_note(evaluated: str, trained_on: str) -> str:
    """What a run records for an adapter's base: the precision it was evaluated in, and the adapter's
    training quantisation where they differ, e.g. "bf16 (adapter trained on nf4)"."""
    if trained_on in ("", "none") or trained_on == evaluated:
        return evaluated
    return f"{evaluated} (adapter trained on {trained_on})"
