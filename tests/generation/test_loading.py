"""The device and dtype rule every model load follows (engine, sanity check, perplexity)."""

from __future__ import annotations

import pytest
import torch

from evalhub.generation import GenerationError
from evalhub.generation.loading import resolve_device, resolve_dtype

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")


@needs_no_gpu
@pytest.mark.parametrize("setting", [None, "", "auto"])
def test_auto_means_the_cpu_where_there_is_no_gpu(setting: str | None) -> None:
    assert resolve_device(setting) == torch.device("cpu")


def test_a_named_device_is_taken_as_named() -> None:
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_dtype_is_bfloat16_on_a_gpu_and_float32_on_the_cpu() -> None:
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    assert resolve_dtype(torch.float64, torch.device("cuda")) == torch.float64


def test_an_unknown_dtype_name_is_a_clear_error() -> None:
    with pytest.raises(GenerationError, match="unknown dtype 'int3'"):
        resolve_dtype("int3", torch.device("cpu"))


def test_a_soft_capped_gemma2_base_is_loaded_with_the_attention_that_applies_the_cap(tmp_path) -> None:
    """transformers' SDPA attention drops Gemma 2's score soft-capping; the general path (the fast
    engine's fallback) must load such a base eager, or its outputs are silently other ones."""
    import torch
    from transformers import AutoModelForCausalLM

    from evalhub.generation.loading import load_base_model
    from tests.generation.family_parity import FAMILY_CONFIGS
    from tests.tiny_models import build_base_model

    base = build_base_model(
        tmp_path / "gemma2", architecture="gemma2", config_extra=FAMILY_CONFIGS["gemma2"], init_1d_std=0.2,
        max_positions=64,
    )  # fmt: skip
    loaded = load_base_model(base, dtype=torch.float32).model
    ids = torch.tensor([[3, 17, 42, 9, 71, 5, 28, 11]])
    eager = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    sdpa = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa")
    with torch.no_grad():
        got, want, dropped = (m(ids).logits for m in (loaded.eval(), eager.eval(), sdpa.eval()))
    assert (want - dropped).abs().max() > 1e-3  # the cap matters for this model: the test can fail
    assert torch.allclose(got, want, atol=1e-5)
