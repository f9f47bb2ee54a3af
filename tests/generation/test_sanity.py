"""Adapter sanity: broken, incompatible or do-nothing adapters fail before any work."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalhub.generation import AdapterIncompatible, AdapterIneffective, AdapterMissing
from evalhub.generation.hf_backend import HFBackend
from evalhub.generation.sanity import check_adapters
from tests.generation.factories import make_base_model, make_lora_adapter


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_weights(folder: Path, change) -> None:
    file = folder / "adapter_model.safetensors"
    tensors = load_file(str(file))
    save_file(change(tensors), str(file))


def test_good_adapters_pass_and_report_their_weights_hash(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    reports = check_adapters(tiny_family["base"], tiny_adapters)
    assert list(reports) == ["a", "b", "c"]
    for name, report in reports.items():
        file = tiny_adapters[name] / "adapter_model.safetensors"
        # The catalog's weights_hash: the file's name, then its bytes.
        assert report.weights_sha256 == hashlib.sha256(file.name.encode() + file.read_bytes()).hexdigest()
        assert report.max_logit_delta > 1e-2
    assert (reports["a"].modules, reports["b"].modules, reports["c"].modules) == (14, 4, 6)
    assert reports["b"].max_rank == 8


def test_all_zero_b_matrices_are_ineffective(tiny_family: dict[str, Path], tmp_path: Path) -> None:
    zeroed = _copy(tiny_family["a"], tmp_path / "zeroed")
    _rewrite_weights(zeroed, lambda t: {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in t.items()})
    with pytest.raises(AdapterIneffective, match="'zeroed'.*all zeros"):
        check_adapters(tiny_family["base"], {"a": tiny_family["a"], "zeroed": zeroed})


def test_tiny_but_nonzero_adapter_fails_the_logit_probe(tiny_family: dict[str, Path], tmp_path: Path) -> None:
    faint = _copy(tiny_family["a"], tmp_path / "faint")
    _rewrite_weights(faint, lambda t: {k: v * 1e-7 if "lora_B" in k else v for k, v in t.items()})
    with pytest.raises(AdapterIneffective, match="'faint'.*logits differ"):
        check_adapters(tiny_family["base"], {"faint": faint})


def test_adapter_whose_modules_match_nothing_in_the_base_is_incompatible(
    tiny_family: dict[str, Path], tmp_path: Path
) -> None:
    odd = _copy(tiny_family["a"], tmp_path / "odd")
    _rewrite_weights(
        odd, lambda t: {k.replace("self_attn.q_proj", "self_attn.qq_proj"): v for k, v in t.items()}
    )
    with pytest.raises(AdapterIncompatible, match="'odd'.*qq_proj"):
        check_adapters(tiny_family["base"], {"odd": odd})


def test_adapter_with_no_lora_weights_is_ineffective(tiny_family: dict[str, Path], tmp_path: Path) -> None:
    empty = _copy(tiny_family["a"], tmp_path / "empty")
    save_file({"unrelated": torch.ones(2)}, str(empty / "adapter_model.safetensors"))
    with pytest.raises(AdapterIneffective, match="matched nothing"):
        check_adapters(tiny_family["base"], {"empty": empty})


def test_missing_folder_config_or_weights_is_reported_by_name(
    tiny_family: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(AdapterMissing, match="'ghost'.*does not exist"):
        check_adapters(tiny_family["base"], {"ghost": tmp_path / "nope"})
    no_config = _copy(tiny_family["a"], tmp_path / "no-config")
    (no_config / "adapter_config.json").unlink()
    with pytest.raises(AdapterMissing, match="adapter_config.json is missing"):
        check_adapters(tiny_family["base"], {"no-config": no_config})
    no_weights = _copy(tiny_family["a"], tmp_path / "no-weights")
    (no_weights / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterMissing, match="no adapter_model.safetensors"):
        check_adapters(tiny_family["base"], {"no-weights": no_weights})


def test_adapter_for_another_base_model_is_incompatible(tiny_family: dict[str, Path], tmp_path: Path) -> None:
    other = _copy(tiny_family["a"], tmp_path / "other")
    cfg = json.loads((other / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"
    (other / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(AdapterIncompatible, match="'other'.*Llama-3.1-8B"):
        check_adapters(tiny_family["base"], {"other": other})
    # The name check can be switched off (a renamed copy of the same base).
    assert "other" in check_adapters(tiny_family["base"], {"other": other}, check_base_name=False)


def test_shape_mismatch_is_incompatible(tmp_path: Path) -> None:
    small = make_base_model(tmp_path / "small", layers=1)
    wide = make_base_model(tmp_path / "wide", hidden=192, heads=3, kv_heads=1, layers=1)
    adapter = make_lora_adapter(tmp_path / "for-wide", wide)
    with pytest.raises(AdapterIncompatible, match="'for-wide'.*LoRA maps .* but the base layer is"):
        check_adapters(small, {"for-wide": adapter}, check_base_name=False)


def test_backend_load_runs_the_static_checks(tiny_family: dict[str, Path], tmp_path: Path) -> None:
    zeroed = _copy(tiny_family["a"], tmp_path / "zeroed")
    _rewrite_weights(zeroed, lambda t: {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in t.items()})
    with pytest.raises(AdapterIneffective, match="'zeroed'"):
        HFBackend(device="cpu").load(tiny_family["base"], {"zeroed": zeroed})
    with pytest.raises(AdapterMissing, match="'ghost'"):
        HFBackend(device="cpu").load(tiny_family["base"], {"ghost": tmp_path / "ghost"})
