"""Every fast-engine family against transformers + peft on a tiny random model, float32.

Each family's model has its real differences switched on (q/k/v biases, q/k norms, sliding
windows shorter than prompt + generation, Gemma's GeGLU, (1 + w) norms, sandwich norms,
embedding scale, soft-capping, Gemma 3's local RoPE table), random norm weights and biases, and two
LoRA adapters of different ranks and targets mixed with base rows in one batch: greedy tokens
identical and logits within 1e-4, on the eager path and on the Triton kernels (CPU interpreter).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.generation.family_parity import FAMILY_CONFIGS, compare
from tests.generation.test_kernels import _interpret
from tests.tiny_models import build_base_model, build_lora_adapter

FAMILIES = list(FAMILY_CONFIGS)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Path]]]:
    built = {}
    for family, extra in FAMILY_CONFIGS.items():
        root = tmp_path_factory.mktemp(family)
        base = build_base_model(
            root / "base", architecture=family, config_extra=extra, init_1d_std=0.2, max_positions=64
        )
        built[family] = (
            base,
            {
                "a": build_lora_adapter(root / "a", base, rank=4, seed=1),
                "b": build_lora_adapter(root / "b", base, rank=8, targets=("q_proj", "v_proj"), seed=2),
            },
        )
    return built


def _check(result: dict[str, object]) -> None:
    assert result["reason"] is None, result
    assert result["same"] == result["rows"], result
    assert isinstance(result["max_logit_diff"], float)
    assert result["max_logit_diff"] < 1e-4, result


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_path_matches_transformers_and_peft(
    family_models: dict[str, tuple[Path, dict[str, Path]]], family: str
) -> None:
    base, adapters = family_models[family]
    _check(compare(base, adapters, fused=False))


@pytest.mark.parametrize("family", FAMILIES)
def test_chunked_prefill_matches_transformers_and_peft(
    family_models: dict[str, tuple[Path, dict[str, Path]]], family: str
) -> None:
    # Chunks of 4 over prompts of 3-12 tokens: chunks attend to the cache so far across the
    # families' sliding windows (5-7 positions) and Gemma's local/global layers.
    base, adapters = family_models[family]
    _check(compare(base, adapters, fused=False, prefill_chunk=4))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_triton_path_matches_transformers_and_peft(
    family_models: dict[str, tuple[Path, dict[str, Path]]], family: str
) -> None:
    base, adapters = family_models[family]
    script = "import sys; from tests.generation.family_parity import main; main(sys.argv[1:])"
    proc = _interpret(script, str(base), json.dumps({k: str(v) for k, v in adapters.items()}), "fused")
    _check(json.loads(proc.stdout.strip().splitlines()[-1]))


def _tiny(model_type: str, **fields: object) -> object:
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    config = CONFIG_MAPPING[model_type](
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, **fields,
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize(
    ("model_type", "fields", "reason"),
    [
        ("olmo", {}, "model_type 'olmo' is not one of the fast engine's families"),
        ("llama", {"hidden_act": "gelu"}, "hidden_act 'gelu' is not one of ['gelu_pytorch_tanh', 'silu']"),
        ("gemma2", {"hidden_activation": "relu"}, "hidden_activation 'relu' is not one of"),
        (
            "qwen3",
            {"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}},
            "rope type 'dynamic' depends on the sequence length",
        ),
        ("gemma3_text", {"use_bidirectional_attention": True}, "use_bidirectional_attention is set"),
    ],
)
def test_unsupported_reason_names_what_the_engine_cannot_do(
    model_type: str, fields: dict[str, object], reason: str
) -> None:
    from evalhub.generation.llama import unsupported_reason

    got = unsupported_reason(_tiny(model_type, **fields), {})  # type: ignore[arg-type]
    assert got is not None and got.startswith(reason), got


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"])
def test_every_family_is_served(model_type: str) -> None:
    from evalhub.generation.llama import unsupported_reason

    assert unsupported_reason(_tiny(model_type), {}) is None  # type: ignore[arg-type]
