"""The hf backend: greedy equality with peft generate(), sampling, stops, truncation, OOM split."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from evalhub.generation import AdapterError, GenerationConfig, GenerationRequest, get_backend
from evalhub.generation.hf_backend import HFBackend
from tests.generation.factories import make_base_model
from tests.tiny_models import peft_reference

ADAPTER_CYCLE = [None, "a", "b", "c"]


def _prompts(n: int, seed: int = 0, longest: int = 24) -> list[str]:
    rnd = random.Random(seed)
    return [" ".join(f"t{rnd.randrange(300)}" for _ in range(rnd.randrange(1, longest))) for _ in range(n)]


def _requests(prompts: list[str], adapters: list[str | None] = ADAPTER_CYCLE) -> list[GenerationRequest]:
    return [
        GenerationRequest(key=i, prompt=p, adapter=adapters[i % len(adapters)]) for i, p in enumerate(prompts)
    ]


def _peft_generate(
    base: Path, adapters: dict[str, Path], prompts: list[str], names: list[str | None], max_new: int
) -> list[list[int]]:
    """Reference: HF generate() + peft mixed-adapter batch, left padding, float32."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    peft_model = peft_reference(base, adapters)
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    out = peft_model.generate(
        **enc, max_new_tokens=max_new, do_sample=False, adapter_names=[n or "__base__" for n in names]
    )
    rows = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        eos = tokenizer.eos_token_id
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.fixture(scope="module")
def backend(tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]) -> HFBackend:
    be = get_backend("hf", device="cpu", max_batch_size=16)
    be.load(tiny_family["base"], tiny_adapters)
    assert isinstance(be, HFBackend)
    return be


@pytest.mark.parametrize("fast", [True, False], ids=["fast-engine", "hf-forward"])
def test_greedy_matches_peft_generate_with_mixed_adapters_and_left_padding(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path], backend: HFBackend, fast: bool
) -> None:
    if fast:
        be = backend
        assert be.path == "fast"
    else:
        be = HFBackend(device="cpu", fast=False)
        be.load(tiny_family["base"], tiny_adapters)
        assert be.path == "hf"
    prompts = _prompts(12, seed=1)
    requests = _requests(prompts)
    results = be.generate(requests, GenerationConfig(max_new_tokens=24, use_chat_template=False))
    expected = _peft_generate(
        tiny_family["base"], tiny_adapters, prompts, [r.adapter for r in requests], max_new=24
    )
    assert [list(r.token_ids) for r in results] == expected
    assert {r.finish_reason for r in results} <= {"eos", "length"}
    # The adapters matter: the same prompt gives different outputs under different adapters.
    per_adapter = be.generate(
        [GenerationRequest(key=a, prompt=prompts[0], adapter=a) for a in ADAPTER_CYCLE],
        GenerationConfig(max_new_tokens=12),
    )
    assert len({r.token_ids for r in per_adapter}) == 4


def test_results_come_back_in_request_order_with_counts(backend: HFBackend) -> None:
    prompts = _prompts(7, seed=2)
    results = backend.generate(_requests(prompts), GenerationConfig(max_new_tokens=5))
    assert [r.key for r in results] == list(range(7))
    for prompt, result in zip(prompts, results, strict=True):
        assert result.prompt_tokens == len(prompt.split()) + 1  # + BOS
        assert 1 <= result.output_tokens <= 5
        assert result.latency_ms > 0
        assert not result.truncated


def test_max_new_tokens_bounds_the_output(backend: HFBackend) -> None:
    results = backend.generate(_requests(_prompts(4, seed=3)), GenerationConfig(max_new_tokens=3))
    for r in results:
        assert r.output_tokens <= 3
        assert (r.finish_reason == "length") == (r.output_tokens == 3 and r.token_ids[-1] != 319)


def test_stop_string_trims_the_output_and_counts_tokens_to_the_stop(backend: HFBackend) -> None:
    request = [GenerationRequest(key="k", prompt="t5 t6 t7", adapter="a")]
    full = backend.generate(request, GenerationConfig(max_new_tokens=20))[0]
    words = full.text.split()
    assert len(words) >= 6, full
    stop = " " + words[4] + " "  # a whole word: cannot match inside an earlier, longer word
    first = full.text.find(stop)
    stopped = backend.generate(request, GenerationConfig(max_new_tokens=20, stop=(stop, "never-there")))[0]
    assert stopped.finish_reason == "stop_string"
    assert stopped.text == full.text[:first]
    assert stop not in stopped.text
    # The stop string is complete once the token after the word arrives.
    assert stopped.output_tokens == full.text[: first + len(stop)].count(" ") + 1
    assert stopped.token_ids == full.token_ids[: stopped.output_tokens]


def test_eos_ends_a_row_and_is_not_in_the_text(backend: HFBackend) -> None:
    results = backend.generate(_requests(_prompts(40, seed=4)), GenerationConfig(max_new_tokens=30))
    ended = [r for r in results if r.finish_reason == "eos"]
    assert ended, "expected some rows of a random model to hit EOS within 30 tokens"
    for r in ended:
        assert r.token_ids[-1] == 319
        assert "</s>" not in r.text
        assert r.output_tokens == len(r.token_ids)


def test_seeded_sampling_is_reproducible_and_independent_of_batch_composition(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path], backend: HFBackend
) -> None:
    config = GenerationConfig(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7, samples=2)
    prompts = _prompts(10, seed=5)
    requests = [
        GenerationRequest(key=(i, s), prompt=p, adapter=ADAPTER_CYCLE[i % 4], sample=s)
        for i, p in enumerate(prompts)
        for s in range(2)
    ]
    together = {r.key: r.token_ids for r in backend.generate(requests, config)}
    # Other batch sizes, another order, other neighbours, and the slower path: same samples.
    small = HFBackend(device="cpu", max_batch_size=3)
    small.load(tiny_family["base"], tiny_adapters)
    shuffled = list(reversed(requests)) + _requests(_prompts(5, seed=99))
    apart = {r.key: r.token_ids for r in small.generate(shuffled, config)}
    assert all(together[k] == apart[k] for k in together)
    # Samples of one case differ from each other, and another config seed changes them.
    assert sum(together[(i, 0)] != together[(i, 1)] for i in range(10)) >= 8
    reseeded = backend.generate(requests, GenerationConfig(**{**config.to_dict(), "seed": 8}))
    assert sum(together[r.key] != r.token_ids for r in reseeded) >= 16
    # And sampling is not greedy in disguise.
    greedy = backend.generate(requests, GenerationConfig(max_new_tokens=16))
    assert sum(together[r.key] != r.token_ids for r in greedy) >= 16


def test_long_prompt_is_cut_from_the_left_and_flagged(backend: HFBackend) -> None:
    words = [f"t{i}" for i in range(40)]
    config = GenerationConfig(max_new_tokens=8, max_prompt_tokens=10)
    long_result, short_result = backend.generate(
        [
            GenerationRequest(key=1, prompt=" ".join(words)),
            GenerationRequest(key=2, prompt=" ".join(words[-9:])),
        ],
        config,
    )
    assert long_result.truncated and not short_result.truncated
    assert long_result.prompt_tokens == 10  # BOS + the last 9 words
    assert long_result.token_ids == short_result.token_ids


def test_prompt_that_does_not_fit_the_context_is_truncated_to_the_context(backend: HFBackend) -> None:
    prompt = " ".join(f"t{i % 300}" for i in range(400))  # context is 128 positions
    result = backend.generate([GenerationRequest(key=1, prompt=prompt)], GenerationConfig(max_new_tokens=8))[
        0
    ]
    assert result.truncated
    assert result.prompt_tokens == 128 - 8
    assert result.output_tokens >= 1


def test_reject_policy_answers_rejected_without_failing_the_batch(backend: HFBackend) -> None:
    config = GenerationConfig(max_new_tokens=6, max_prompt_tokens=10, truncation="reject")
    seen: list[list] = []
    results = backend.generate(
        [
            GenerationRequest(key="long", prompt=" ".join(f"t{i}" for i in range(30))),
            GenerationRequest(key="ok", prompt="t1 t2 t3", adapter="b"),
        ],
        config,
        on_batch=seen.append,
    )
    rejected, fine = results
    assert rejected.finish_reason == "rejected" and rejected.text == "" and rejected.output_tokens == 0
    assert "31 tokens" in rejected.error and "reject" in rejected.error
    assert fine.finish_reason in {"length", "eos"} and fine.output_tokens >= 1
    assert sorted(r.key for batch in seen for r in batch) == ["long", "ok"]


def test_out_of_memory_batch_is_split_in_half_and_retried(backend: HFBackend) -> None:
    requests = _requests(_prompts(13, seed=6))
    config = GenerationConfig(max_new_tokens=6)
    expected = backend.generate(requests, config)
    sizes: list[int] = []

    def oom_above_three(size: int) -> None:
        sizes.append(size)
        if size > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    backend.fault_hook = oom_above_three
    try:
        got = backend.generate(requests, config)
    finally:
        backend.fault_hook = None
    assert sizes[:3] == [13, 6, 3]
    assert max(s for s in sizes if s <= 3) == 3
    assert [r.token_ids for r in got] == [r.token_ids for r in expected]


def test_request_that_is_out_of_memory_alone_is_rejected_not_raised(backend: HFBackend) -> None:
    def always_oom(size: int) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    backend.fault_hook = always_oom
    try:
        results = backend.generate(_requests(_prompts(2, seed=7)), GenerationConfig(max_new_tokens=4))
    finally:
        backend.fault_hook = None
    assert [r.finish_reason for r in results] == ["rejected", "rejected"]
    assert all("out of memory" in r.error for r in results)


def test_on_batch_reports_every_result_once(backend: HFBackend) -> None:
    seen: list[list] = []
    small = backend.max_batch_size
    backend.max_batch_size = 4
    try:
        backend.generate(
            _requests(_prompts(10, seed=8)), GenerationConfig(max_new_tokens=3), on_batch=seen.append
        )
    finally:
        backend.max_batch_size = small
    assert [len(b) for b in seen] == [4, 4, 2]
    assert sorted(r.key for b in seen for r in b) == list(range(10))


def test_unknown_adapter_in_a_request_is_an_adapter_error(backend: HFBackend) -> None:
    with pytest.raises(AdapterError, match="'zzz'"):
        backend.generate(
            [GenerationRequest(key=1, prompt="t1", adapter="zzz")], GenerationConfig(max_new_tokens=2)
        )


def test_chat_template_is_applied_only_when_switched_on(tmp_path: Path) -> None:
    base = make_base_model(tmp_path / "chat", chat_template=True, layers=1)
    be = HFBackend(device="cpu")
    be.load(base, {})
    templated, plain, written_out = be.generate(
        [
            GenerationRequest(key=1, prompt="t9 t8"),
            GenerationRequest(key=2, prompt="t9 t8"),
            GenerationRequest(key=3, prompt="t1 t9 t8 t2 t3"),
        ],
        GenerationConfig(max_new_tokens=10),
    )[0:1] + be.generate(
        [GenerationRequest(key=2, prompt="t9 t8"), GenerationRequest(key=3, prompt="t1 t9 t8 t2 t3")],
        GenerationConfig(max_new_tokens=10, use_chat_template=False),
    )
    assert templated.prompt_tokens == 6  # <s> t1 t9 t8 t2 t3
    assert plain.prompt_tokens == 3  # <s> t9 t8
    assert templated.token_ids == written_out.token_ids


@pytest.mark.parametrize(
    "kwargs",
    [
        {
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            }
        },
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"tie": True, "kv_heads": 2},
    ],
    ids=["llama3-rope", "linear-rope", "tied-mha"],
)
def test_greedy_matches_generate_for_rope_scaling_and_tied_embeddings(tmp_path: Path, kwargs: dict) -> None:
    from tests.generation.factories import make_lora_adapter

    base = make_base_model(tmp_path / "m", **kwargs)
    adapters = {"x": make_lora_adapter(tmp_path / "x", base, rank=4, seed=4)}
    be = HFBackend(device="cpu")
    be.load(base, adapters)
    assert be.path == "fast"
    prompts = _prompts(6, seed=9, longest=60)
    names: list[str | None] = [None, "x"]
    results = be.generate(_requests(prompts, names), GenerationConfig(max_new_tokens=16))
    expected = _peft_generate(base, adapters, prompts, [names[i % 2] for i in range(6)], max_new=16)
    assert [list(r.token_ids) for r in results] == expected


def test_single_adapter_batches_on_merged_weights_match_peft(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    be = HFBackend(device="cpu", merge_single_adapter=True, max_batch_size=6)
    be.load(tiny_family["base"], tiny_adapters)
    prompts = _prompts(6, seed=10)
    order = ("b", "a", "c")
    expected = _peft_generate(
        tiny_family["base"], tiny_adapters, prompts * 3, [n for n in order for _ in range(6)], max_new=16
    )
    engine = be._stepper
    for i, name in enumerate(order):  # re-merging into the same buffers for each adapter
        results = be.generate(_requests(prompts, [name]), GenerationConfig(max_new_tokens=16))
        assert engine._merged_for == be.adapter_index[name]  # type: ignore[union-attr]
        assert [list(r.token_ids) for r in results] == expected[6 * i : 6 * i + 6]


def test_batches_are_grouped_by_adapter(backend: HFBackend) -> None:
    seen: list[list] = []
    size = backend.max_batch_size
    backend.max_batch_size = 5
    try:
        backend.generate(
            _requests(_prompts(20, seed=11)), GenerationConfig(max_new_tokens=2), on_batch=seen.append
        )
    finally:
        backend.max_batch_size = size
    assert [len({r.adapter for r in batch}) for batch in seen] == [1, 1, 1, 1]


def test_other_architectures_fall_back_to_the_hf_path_and_still_match(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.generation.factories import make_lora_adapter

    base = make_base_model(tmp_path / "olmo", architecture="olmo", layers=1)
    adapters = {"m": make_lora_adapter(tmp_path / "m", base, rank=4, seed=5)}
    be = HFBackend(device="cpu")
    with caplog.at_level("WARNING", logger="evalhub.generation.hf_backend"):
        be.load(base, adapters)
    assert be.path == "hf"
    assert "model_type 'olmo' is not one of the fast engine's families" in caplog.text
    prompts = _prompts(4, seed=13)
    names: list[str | None] = [None, "m"]
    results = be.generate(_requests(prompts, names), GenerationConfig(max_new_tokens=10))
    expected = _peft_generate(base, adapters, prompts, [names[i % 2] for i in range(4)], max_new=10)
    assert [list(r.token_ids) for r in results] == expected
