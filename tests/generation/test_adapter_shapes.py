"""Adapter shapes in one batch on the fast engine, against transformers + peft in float32: mixed
ranks and target modules, rsLoRA, LoRA on the embeddings and the LM head (greedy tokens identical,
logits within 1e-4); DoRA on merged weights, one adapter per batch (and on peft, its fallback);
and the named fallback for an adapter carrying its own embedding weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalhub.generation import GenerationConfig, GenerationError, GenerationRequest
from evalhub.generation.adapters import read_adapter
from evalhub.generation.hf_backend import HFBackend
from evalhub.generation.llama import FastEngine
from tests.generation.factories import make_lora_adapter
from tests.generation.test_hf_backend import _peft_generate, _prompts, _requests
from tests.tiny_models import peft_reference

NAMES: list[str | None] = [None, "a", "b", "c", "emb", "head"]


@pytest.fixture(scope="module")
def shapes_family(tiny_family: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny family's base and its three adapters (conftest.tiny_family: rank 4 everywhere; rank 8
    rsLoRA on q/v; rank 2 on o/gate/down with an alpha pattern), plus rank 6 on embed_tokens + k and
    rank 3 on lm_head + up, rsLoRA."""
    root = tmp_path_factory.mktemp("shapes")
    base = tiny_family["base"]
    return {
        **tiny_family,
        "emb": make_lora_adapter(root / "emb", base, rank=6, targets=("embed_tokens", "k_proj"), seed=6),
        "head": make_lora_adapter(
            root / "head", base, rank=3, targets=("lm_head", "up_proj"), rslora=True, seed=7
        ),
    }


def _adapters(family: dict[str, Path], names: list[str]) -> dict[str, Path]:
    return {n: family[n] for n in names}


def _peft_batch_logits(
    base: Path, adapters: dict[str, Path], prompts: list[str], names: list[str | None]
) -> torch.Tensor:
    """transformers + peft, float32, one left-padded mixed batch: each row's next-token logits."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    peft_model = peft_reference(base, adapters)
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return peft_model(**enc, adapter_names=[n or "__base__" for n in names]).logits[:, -1]


def _one_adapter_generate(
    base: Path, adapter: Path | None, prompts: list[str], max_new: int
) -> list[list[int]]:
    """Reference without adapter_names: HF generate() on the base, or with one peft adapter active."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=max_new, do_sample=False)
    eos = tokenizer.eos_token_id
    rows = out[:, enc["input_ids"].shape[1] :].tolist()
    return [row[: row.index(eos) + 1] if eos in row else row for row in rows]


def test_rslora_scale_is_alpha_over_the_square_root_of_the_rank(shapes_family: dict[str, Path]) -> None:
    rs = read_adapter("b", shapes_family["b"])
    assert [m.scale for m in rs.modules.values()] == pytest.approx([8 / math.sqrt(8)] * len(rs.modules))
    plain = read_adapter("a", shapes_family["a"])
    assert [m.scale for m in plain.modules.values()] == pytest.approx([8 / 4] * len(plain.modules))


def test_embedding_and_head_lora_are_read_with_their_shapes(shapes_family: dict[str, Path]) -> None:
    emb = read_adapter("emb", shapes_family["emb"])
    assert emb.embedding_modules == {"model.embed_tokens"}
    assert tuple(emb.modules["model.embed_tokens"].a.shape) == (6, 320)  # [r, vocab]
    assert tuple(emb.modules["model.embed_tokens"].b.shape) == (128, 6)  # [hidden, r]
    assert not emb.unsupported
    assert set(emb.saved_weights) == {"model.embed_tokens"}  # peft saved the (unchanged) table
    head = read_adapter("head", shapes_family["head"])
    assert tuple(head.modules["lm_head"].b.shape) == (320, 3)


@pytest.mark.slow
@pytest.mark.parametrize("merge", [False, True], ids=["mixed-rows", "merged-per-adapter"])
def test_every_shape_in_one_batch_matches_peft_tokens_and_logits(
    shapes_family: dict[str, Path], merge: bool
) -> None:
    adapters = _adapters(shapes_family, ["a", "b", "c", "emb", "head"])
    be = HFBackend(device="cpu", max_batch_size=12, merge_single_adapter=merge)
    be.load(shapes_family["base"], adapters)
    assert be.path == "fast", "every shape here is served by the fast engine"
    engine = be._stepper
    assert isinstance(engine, FastEngine)
    assert engine.head is not None and engine.embed_lora is not None
    prompts = _prompts(12, seed=31)
    requests = _requests(prompts, NAMES)
    got = be.generate(requests, GenerationConfig(max_new_tokens=16))
    want = _peft_generate(shapes_family["base"], adapters, prompts, [r.adapter for r in requests], max_new=16)
    assert [list(r.token_ids) for r in got] == want
    # Each adapter changes the output of the same prompt.
    per_adapter = be.generate(
        [GenerationRequest(key=str(n), prompt=prompts[1], adapter=n) for n in NAMES],
        GenerationConfig(max_new_tokens=12),
    )
    assert len({r.token_ids for r in per_adapter}) == len(NAMES)
    # Logits of the first token, one mixed batch (or one batch per adapter when merged).
    tok = be.tokenizer
    for group in [NAMES] if not merge else [[n] * 3 for n in NAMES[1:]]:
        texts = prompts[: len(group)]
        ids = [tok(t)["input_ids"] for t in texts]
        index = [None if n is None else be.adapter_index[n] for n in group]
        st = engine.start(
            ids, index, [0] * len(ids), max_new=1, greedy=True, temperature=1, top_p=1, pad_id=be._pad_id
        )
        assert st.mode == ("merged" if merge else "mixed")
        want_logits = _peft_batch_logits(shapes_family["base"], adapters, texts, group)
        assert float((st.extra["prefill_logits"] - want_logits).abs().max()) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["fast-engine-merged", "peft-fallback"])
def test_dora_runs_one_adapter_per_batch_and_matches_peft(
    shapes_family: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, fast: bool
) -> None:
    dora = make_lora_adapter(
        tmp_path_factory.mktemp("dora") / "dora", shapes_family["base"], rank=4, dora=True, seed=8
    )
    adapters = {"a": shapes_family["a"], "dora": dora}
    assert read_adapter("dora", dora).modules["model.layers.0.self_attn.q_proj"].magnitude is not None
    be = HFBackend(device="cpu", fast=fast)
    be.load(shapes_family["base"], adapters)
    assert be.path == ("fast" if fast else "hf") and be.one_adapter_per_batch
    prompts = _prompts(6, seed=32)
    names: list[str | None] = [None, "a", "dora"]
    seen: list[list] = []
    got = be.generate(_requests(prompts, names), GenerationConfig(max_new_tokens=10), on_batch=seen.append)
    assert [len({r.adapter for r in batch}) for batch in seen] == [1, 1, 1]  # peft mixes no DoRA batch
    for name in names:  # peft refuses DoRA in a mixed batch: the reference runs one adapter at a time
        rows = [i for i in range(6) if names[i % 3] == name]
        want = _one_adapter_generate(
            shapes_family["base"], adapters.get(name or ""), [prompts[i] for i in rows], max_new=10
        )
        assert [list(got[i].token_ids) for i in rows] == want
    if fast:
        engine = be._stepper
        assert isinstance(engine, FastEngine)
        with pytest.raises(GenerationError, match="'dora' uses DoRA: .* in batches of its own"):
            engine.start(
                [[5, 6], [7]], [0, 1], [0, 0], max_new=2, greedy=True, temperature=1, top_p=1, pad_id=0
            )


def test_an_adapter_with_its_own_embedding_weights_is_a_named_fallback(
    shapes_family: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As an adapter trained with a retrained vocabulary table saves it: different from the base's.
    folder = tmp_path / "own-emb"
    folder.mkdir()
    (folder / "adapter_config.json").write_text((shapes_family["emb"] / "adapter_config.json").read_text())
    tensors = load_file(str(shapes_family["emb"] / "adapter_model.safetensors"))
    key = next(k for k in tensors if k.endswith("embed_tokens.base_layer.weight"))
    tensors[key] = tensors[key] + 0.01
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    assert json.loads((folder / "adapter_config.json").read_text())["target_modules"]
    be = HFBackend(device="cpu")
    with caplog.at_level("WARNING", logger="evalhub.generation.hf_backend"):
        be.load(shapes_family["base"], {"own": folder})
    assert be.path == "hf"
    assert "carries its own model.embed_tokens weights" in caplog.text
