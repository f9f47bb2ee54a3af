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


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_triton_path_matches_transformers_and_peft(
    family_models: dict[str, tuple[Path, dict[str, Path]]], family: str
) -> None:
    base, adapters = family_models[family]
    script = "import sys; from tests.generation.family_parity import main; main(sys.argv[1:])"
    proc = _interpret(script, str(base), json.dumps({k: str(v) for k, v in adapters.items()}), "fused")
    _check(json.loads(proc.stdout.strip().splitlines()[-1]))
