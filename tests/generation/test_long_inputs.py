"""Long inputs: chunked prefill equals one-shot prefill and transformers + peft up to the model's
maximum context; a context longer than the model allows is a clear error; batches are sized from
the memory they need (proactive split), with the out-of-memory split as the last resort."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from evalhub.generation import GenerationConfig, GenerationRequest
from evalhub.generation.capacity import ContextTooLong, ModelShape, batch_bytes, check_context
from evalhub.generation.hf_backend import HFBackend
from evalhub.generation.llama import FastEngine
from tests.generation.test_hf_backend import _peft_generate
from tests.tiny_models import peft_reference

MAX_POSITIONS = 128


def _long_prompts(n: int, seed: int, shortest: int, longest: int) -> list[str]:
    rnd = random.Random(seed)
    return [
        " ".join(f"t{rnd.randrange(300)}" for _ in range(rnd.randrange(shortest, longest + 1)))
        for _ in range(n)
    ]


def _peft_logits(base: Path, adapters: dict[str, Path], prompt: str, adapter: str | None) -> torch.Tensor:
    """transformers + peft, float32: the next-token logits after the whole prompt."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    peft_model = peft_reference(base, adapters)
    enc = tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        out = peft_model(**enc, adapter_names=[adapter or "__base__"])
    return out.logits[0, -1]


@pytest.fixture(scope="module")
def long_backends(tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]) -> dict[str, HFBackend]:
    backends = {}
    for label, chunk in (("chunked", 16), ("one-shot", 4096)):
        be = HFBackend(device="cpu", max_batch_size=8, prefill_chunk=chunk)
        be.load(tiny_family["base"], tiny_adapters)
        assert be.path == "fast"
        backends[label] = be
    return backends


def test_chunked_prefill_up_to_the_maximum_context_matches_one_shot_and_peft(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path], long_backends: dict[str, HFBackend]
) -> None:
    max_new = 8
    # Up to prompt + new == max_position_embeddings, with left padding across several chunks
    # (the BOS token makes each prompt one longer than its words).
    prompts = _long_prompts(8, seed=21, shortest=40, longest=MAX_POSITIONS - max_new - 1)
    prompts[0] = " ".join(f"t{i % 290}" for i in range(MAX_POSITIONS - max_new - 1))
    names = [None, "a", "b", "c"]
    requests = [GenerationRequest(key=i, prompt=p, adapter=names[i % 4]) for i, p in enumerate(prompts)]
    config = GenerationConfig(max_new_tokens=max_new, truncation="reject")
    chunked = long_backends["chunked"].generate(requests, config)
    assert chunked[0].prompt_tokens == MAX_POSITIONS - max_new
    assert all(r.finish_reason != "rejected" for r in chunked)
    one_shot = long_backends["one-shot"].generate(requests, config)
    expected = _peft_generate(
        tiny_family["base"], tiny_adapters, prompts, [r.adapter for r in requests], max_new
    )
    assert [list(r.token_ids) for r in chunked] == expected
    assert [list(r.token_ids) for r in one_shot] == expected


@pytest.mark.parametrize("adapter", [None, "b"])
def test_chunked_prefill_logits_equal_peft_within_1e_4(
    tiny_family: dict[str, Path],
    tiny_adapters: dict[str, Path],
    long_backends: dict[str, HFBackend],
    adapter: str | None,
) -> None:
    be = long_backends["chunked"]
    engine = be._stepper
    assert isinstance(engine, FastEngine) and engine.prefill_chunk == 16
    prompt = " ".join(f"t{(7 * i) % 290}" for i in range(MAX_POSITIONS - 2))
    ids = be.tokenizer(prompt)["input_ids"]
    assert len(ids) == MAX_POSITIONS - 1  # 8 chunks, the last one partial
    index = None if adapter is None else be.adapter_index[adapter]
    st = engine.start(
        [ids], [index], [0], max_new=1, greedy=True, temperature=1.0, top_p=1.0, pad_id=be._pad_id
    )
    got = st.extra["prefill_logits"][0]
    want = _peft_logits(tiny_family["base"], tiny_adapters, prompt, adapter)
    assert float((got - want).abs().max()) < 1e-4
    assert int(st.tok[0]) == int(want.argmax())


def test_a_context_longer_than_the_model_allows_is_an_error_naming_the_numbers(
    long_backends: dict[str, HFBackend],
) -> None:
    engine = long_backends["chunked"]._stepper
    assert isinstance(engine, FastEngine)
    with pytest.raises(
        ContextTooLong, match=r"120 tokens \+ max_new_tokens=9 = 129 .* maximum context of 128"
    ):
        engine.start([[5] * 120], [None], [0], max_new=9, greedy=True, temperature=1.0, top_p=1.0, pad_id=0)
    check_context(120, 8, 128)  # exactly the context: fine


def test_prefill_chunk_must_be_positive(tiny_family: dict[str, Path]) -> None:
    be = HFBackend(device="cpu", prefill_chunk=0)
    with pytest.raises(ValueError, match="prefill_chunk must be >= 1"):
        be.load(tiny_family["base"], {})


def test_batches_are_sized_from_the_memory_budget_before_they_run(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    be = HFBackend(device="cpu", max_batch_size=16)
    be.load(tiny_family["base"], tiny_adapters)
    assert be.shape is not None
    prompts = _long_prompts(12, seed=22, shortest=90, longest=100)
    requests = [GenerationRequest(key=i, prompt=p) for i, p in enumerate(prompts)]
    config = GenerationConfig(max_new_tokens=4)
    unlimited: list[list] = []
    want = be.generate(requests, config, on_batch=unlimited.append)
    assert [len(b) for b in unlimited] == [12]
    # A budget for three rows of this width: the same results, in batches of at most three, and
    # no out-of-memory error on the way (the fault hook would see a batch larger than three).
    be.memory_budget = be._batch_bytes(3, 101, 4)
    assert be._batch_bytes(4, 101, 4) > be.memory_budget
    seen: list[int] = []
    be.fault_hook = seen.append
    sized: list[list] = []
    got = be.generate(requests, config, on_batch=sized.append)
    assert max(seen) <= 3 and sum(seen) == 12
    assert [r.token_ids for r in got] == [r.token_ids for r in want]


def test_the_memory_estimate_grows_with_rows_context_and_chunk() -> None:
    shape = ModelShape(
        layers=22,
        hidden=2048,
        intermediate=5632,
        heads=32,
        kv_heads=4,
        head_dim=64,
        vocab=32000,
        dtype_bytes=2,
    )
    assert shape.kv_bytes_per_token() == 2 * 22 * 4 * 64 * 2
    small = batch_bytes(shape, rows=8, prompt_tokens=4096, max_new=128, prefill_chunk=512)
    assert batch_bytes(shape, rows=16, prompt_tokens=4096, max_new=128, prefill_chunk=512) == 2 * small
    assert batch_bytes(shape, rows=8, prompt_tokens=4096, max_new=128, prefill_chunk=None) > 2 * small
    kv = 8 * (4096 + 128) * shape.kv_bytes_per_token()
    assert kv < small < 4 * kv


FUSED_SCRIPT = """
import json, sys
from evalhub.generation import GenerationConfig
from evalhub.generation.hf_backend import HFBackend
from tests.generation.test_hf_backend import _peft_generate, _prompts, _requests

base, adapters = sys.argv[1], json.loads(sys.argv[2])
be = HFBackend(device="cpu", fused_kernels=True, prefill_chunk=8, merge_single_adapter=False)
be.load(base, adapters)
assert be._stepper.fused_kernels and be._stepper.head is not None and be._stepper.embed_lora is not None
prompts = _prompts(6, seed=23, longest=40)
requests = _requests(prompts, [None, *adapters])
got = [list(r.token_ids) for r in be.generate(requests, GenerationConfig(max_new_tokens=8))]
want = _peft_generate(base, adapters, prompts, [r.adapter for r in requests], max_new=8)
print(json.dumps({"same": sum(g == w for g, w in zip(got, want)), "rows": len(got)}))
"""


@pytest.mark.slow
def test_fused_kernels_with_chunked_prefill_and_embedding_and_head_lora_match_peft(
    tiny_family: dict[str, Path], tmp_path: Path
) -> None:
    import json

    from tests.generation.factories import make_lora_adapter
    from tests.generation.test_kernels import _interpret

    base = tiny_family["base"]
    adapters = {
        "a": str(tiny_family["a"]),
        "emb": str(
            make_lora_adapter(tmp_path / "emb", base, rank=6, targets=("embed_tokens", "v_proj"), seed=6)
        ),
        "head": str(
            make_lora_adapter(tmp_path / "head", base, rank=3, targets=("lm_head", "down_proj"), seed=7)
        ),
    }
    proc = _interpret(FUSED_SCRIPT, str(base), json.dumps(adapters))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same"] == result["rows"], result
