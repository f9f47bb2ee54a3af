"""Quantised bases for QLoRA adapters: how an adapter's training quantisation is read and
recorded, the refusal where bitsandbytes or a GPU is missing, and (where both are here) a base
loaded in 4-bit on the general path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from evalhub.generation import GenerationConfig, GenerationError, GenerationRequest
from evalhub.generation.folders import base_precision_note, normalise_quantization, trained_quantization
from evalhub.generation.hf_backend import HFBackend


def test_quantization_names_are_normalised_and_unknown_ones_refused() -> None:
    assert [normalise_quantization(v) for v in (None, "", "NF4", "4bit", "8bit", "fp4")] == [
        "none",
        "none",
        "nf4",
        "nf4",
        "int8",
        "fp4",
    ]
    with pytest.raises(ValueError, match="'q2' is not one of none, nf4, fp4, int8"):
        normalise_quantization("q2")


def test_the_training_quantisation_comes_from_provenance_then_the_adapter_config() -> None:
    bnb4 = {"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}}
    assert trained_quantization({}, {}) == "none"
    assert trained_quantization(bnb4, {}) == "fp4"
    assert trained_quantization({"quantization_config": {"load_in_8bit": True}}, {}) == "int8"
    assert trained_quantization({"base_quantization": "nf4"}, {}) == "nf4"
    assert trained_quantization(bnb4, {"base_quantization": "int8"}) == "int8"  # provenance wins


def test_the_recorded_precision_names_a_mismatch_only() -> None:
    assert base_precision_note("bf16", "nf4") == "bf16 (adapter trained on nf4)"
    assert base_precision_note("nf4", "nf4") == "nf4"
    assert base_precision_note("fp32", "none") == "fp32"


def test_backend_records_its_precision_and_refuses_4bit_without_a_gpu_or_bitsandbytes(
    tiny_family: dict[str, Path],
) -> None:
    assert HFBackend(device="cpu").precision == "fp32"
    assert HFBackend(device="cpu", dtype="bf16").precision == "bf16"
    be = HFBackend(device="cpu", quantization="nf4")
    assert be.precision == "nf4"
    with pytest.raises(GenerationError, match="nf4 base needs a CUDA GPU"):
        be.load(tiny_family["base"], {})


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="loading a base in 4-bit needs a CUDA GPU")
def test_a_base_loaded_in_nf4_serves_adapters_on_the_general_path(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    be = HFBackend(device="cuda", quantization="nf4")
    be.load(tiny_family["base"], tiny_adapters)
    assert be.path == "hf" and be.precision == "nf4"
    results = be.generate(
        [GenerationRequest(key=n or "base", prompt="t1 t2 t3", adapter=n) for n in (None, "a", "b")],
        GenerationConfig(max_new_tokens=6),
    )
    assert all(r.finish_reason in {"eos", "length"} and r.output_tokens >= 1 for r in results)
