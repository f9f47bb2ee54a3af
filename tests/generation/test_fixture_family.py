"""The engine on the project's own fixture family (fixtures/models, fixtures/suites)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalhub.generation import AdapterIneffective, GenerationConfig, expand_requests
from evalhub.generation.hf_backend import HFBackend
from evalhub.generation.sanity import check_adapters

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "fixtures" / "models"
SUITE = REPO / "fixtures" / "suites" / "summaries.jsonl"
ADAPTERS = ["summariser-v1", "summariser-v2", "tone-v1", "synthetic-bad"]

pytestmark = pytest.mark.skipif(
    not (MODELS / "base" / "config.json").is_file(), reason="fixture models not built"
)


@pytest.fixture(scope="module")
def adapters() -> dict[str, Path]:
    return {name: MODELS / name for name in ADAPTERS}


@pytest.fixture(scope="module")
def cases() -> dict[str, str]:
    rows = [json.loads(line) for line in SUITE.read_text().splitlines()[:6]]
    return {row["id"]: row["input"] for row in rows}


def test_greedy_outputs_equal_peft_generate_on_the_fixture_suite(
    adapters: dict[str, Path], cases: dict[str, str]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = GenerationConfig(max_new_tokens=32)
    backend = HFBackend(device="cpu")
    backend.load(MODELS / "base", adapters)
    assert backend.path == "fast"
    requests = expand_requests(cases, [None, *ADAPTERS], config)
    results = backend.generate(requests, config)

    tokenizer = AutoTokenizer.from_pretrained(MODELS / "base")
    tokenizer.padding_side = "left"
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(MODELS / "base", dtype=torch.float32),
        str(adapters[ADAPTERS[0]]),
        adapter_name=ADAPTERS[0],
    )
    for name in ADAPTERS[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    model.eval()
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r.prompt}], add_generation_prompt=True, tokenize=False
        )
        for r in requests
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(
        **enc, max_new_tokens=32, do_sample=False, adapter_names=[r.adapter or "__base__" for r in requests]
    )
    expected = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        expected.append(
            row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row
        )
    assert [list(r.token_ids) for r in results] == expected
    # The adapters were trained to do different things: their outputs differ.
    by_adapter = {a: [r.text for r in results if r.adapter == a] for a in [None, *ADAPTERS]}
    assert len({tuple(v) for v in by_adapter.values()}) == 5
    assert all(r.finish_reason in {"eos", "length"} for r in results)


def test_sanity_check_passes_for_all_four_fixture_adapters(adapters: dict[str, Path]) -> None:
    reports = check_adapters(MODELS / "base", adapters)
    assert list(reports) == ADAPTERS
    assert all(r.max_logit_delta > 0.1 and len(r.weights_sha256) == 64 for r in reports.values())
    assert len({r.weights_sha256 for r in reports.values()}) == 4


def test_sanity_check_fails_for_a_zeroed_copy(adapters: dict[str, Path], tmp_path: Path) -> None:
    zeroed = shutil.copytree(adapters["summariser-v1"], tmp_path / "summariser-v1-zeroed")
    file = zeroed / "adapter_model.safetensors"
    tensors = load_file(str(file))
    save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}, str(file))
    with pytest.raises(AdapterIneffective, match="summariser-v1-zeroed"):
        check_adapters(MODELS / "base", {**adapters, "summariser-v1-zeroed": zeroed})
