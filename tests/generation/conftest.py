"""Tiny models shared by the generation tests (built once per session, in a tmp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generation.factories import make_base_model, make_lora_adapter


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer GQA Llama (head_dim 64) and three LoRA adapters with different shapes.

    a: rank 4 on every linear; b: rank 8 rsLoRA on q/v only; c: rank 2 on o/gate/down with an
    alpha_pattern override for down_proj.
    """
    root = tmp_path_factory.mktemp("tiny")
    base = make_base_model(root / "base")
    return {
        "base": base,
        "a": make_lora_adapter(root / "a", base, seed=1),
        "b": make_lora_adapter(root / "b", base, rank=8, targets=("q_proj", "v_proj"), rslora=True, seed=2),
        "c": make_lora_adapter(
            root / "c",
            base,
            rank=2,
            targets=("o_proj", "gate_proj", "down_proj"),
            alpha_pattern={"down_proj": 4},
            seed=3,
        ),
    }


@pytest.fixture(scope="session")
def tiny_adapters(tiny_family: dict[str, Path]) -> dict[str, Path]:
    return {name: path for name, path in tiny_family.items() if name != "base"}
