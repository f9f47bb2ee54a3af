"""Perplexity (metrics/perplexity.py) against independent Hugging Face computations."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from metrics.perplexity import plan_windows, score_perplexity, score_perplexity_ids

REL = 1e-4
VOCAB = 256


def rel_close(a, b, rel=REL):
    return abs(a - b) <= rel * abs(b)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="sdpa",
    )
    m = LlamaForCausalLM(config).eval()
    # Random init leaves logits near uniform; sharpen them so perplexities differ between texts.
    with torch.no_grad():
        m.lm_head.weight.mul_(20)
    return m


@pytest.fixture(scope="module")
def tokenizer():
    # Byte-ish word-level tokenizer over characters: offline, deterministic, has a BOS.
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz .,!?'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        vocab[ch] = 4 + i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def hf_perplexity(model, ids):
    """Independent reference: exp of the mean loss that transformers itself computes."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids]))
    return math.exp(out.loss.item())


def random_ids(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (n,), generator=g).tolist()


def test_matches_hf_loss_per_text_with_padding_in_the_batch(model):
    seqs = [[1, *random_ids(n, seed)] for seed, n in enumerate([5, 40, 17, 63, 2, 31])]
    result = score_perplexity_ids(model, seqs, batch_size=4, device="cpu")
    for seq, got in zip(seqs, result.texts, strict=True):
        assert got.n_tokens == len(seq) - 1
        assert rel_close(got.perplexity, hf_perplexity(model, seq))


def test_batching_does_not_change_results(model):
    seqs = [[1, *random_ids(n, 10 + n)] for n in (3, 50, 20, 9)]
    one = score_perplexity_ids(model, seqs, batch_size=1, device="cpu")
    many = score_perplexity_ids(model, seqs, batch_size=4, device="cpu")
    for a, b in zip(one.texts, many.texts, strict=True):
        assert a.n_tokens == b.n_tokens
        assert rel_close(a.nll_sum, b.nll_sum)


def test_corpus_perplexity_is_token_weighted(model):
    seqs = [[1, *random_ids(n, 20 + n)] for n in (4, 60)]
    result = score_perplexity_ids(model, seqs, device="cpu")
    total_nll = sum(t.nll_sum for t in result.texts)
    total = sum(t.n_tokens for t in result.texts)
    assert result.n_tokens == total == 64
    assert rel_close(result.perplexity, math.exp(total_nll / total))
    # Not the mean of per-text perplexities.
    mean_ppl = sum(t.perplexity for t in result.texts) / 2
    assert not rel_close(result.perplexity, mean_ppl, 1e-3)


def test_text_api_prepends_bos_and_matches_hf(model, tokenizer):
    texts = ["hello world", "the quick brown fox jumps over the lazy dog.", "a"]
    result = score_perplexity(model, tokenizer, texts, batch_size=2, device="cpu")
    assert result.config["bos"] is True
    for text, got in zip(texts, result.texts, strict=True):
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        assert got.n_tokens == len(text)  # every character token scored, the first from BOS
        assert rel_close(got.perplexity, hf_perplexity(model, ids))


def test_without_bos_the_first_token_is_not_scored(model, tokenizer):
    text = "hello world"
    result = score_perplexity(model, tokenizer, [text], add_bos=False, device="cpu")
    assert result.config["bos"] is False
    assert result.texts[0].n_tokens == len(text) - 1
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert rel_close(result.texts[0].perplexity, hf_perplexity(model, ids))


def test_empty_text_has_no_perplexity(model, tokenizer):
    result = score_perplexity(model, tokenizer, ["", "ab"], device="cpu")
    assert result.texts[0].n_tokens == 0
    assert result.texts[0].perplexity is None
    assert result.n_tokens == 2
    assert score_perplexity(model, tokenizer, [""], device="cpu").perplexity is None
    assert score_perplexity(model, tokenizer, [], device="cpu").perplexity is None


def test_plan_windows_scores_each_position_once():
    for n, m, s in [(10, 4, 2), (100, 32, 8), (7, 16, 8), (33, 8, 7), (2, 4, 1)]:
        scored = []
        for begin, end, score_from in plan_windows(n, m, s):
            assert end - begin <= m
            scored.extend(range(begin + score_from, end))
            if begin > 0:
                assert score_from >= m - s or end == n  # at least max_length - stride of context
        assert sorted(scored) == list(range(1, n))


def test_plan_windows_rejects_a_stride_without_overlap():
    with pytest.raises(ValueError):
        plan_windows(10, 4, 4)


def hf_windowed_nll(model, ids, max_length, stride):
    """Hugging Face's perplexity-guide loop, written out independently of plan_windows."""
    ids_t = torch.tensor([ids])
    nll_sum, n_scored, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        trg_len = end - prev_end
        window = ids_t[:, begin:end]
        labels = window.clone()
        labels[:, :-trg_len] = -100
        with torch.no_grad():
            logits = model(input_ids=window).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum"
        )
        nll_sum += loss.item()
        n_scored += int((labels[0, 1:] != -100).sum())
        prev_end = end
        if end == len(ids):
            break
    return nll_sum, n_scored


def test_sliding_window_matches_the_direct_windowed_computation(model):
    long_seq = [1, *random_ids(150, 99)]
    short_seq = [1, *random_ids(20, 98)]
    result = score_perplexity_ids(model, [long_seq, short_seq], max_length=48, stride=16, device="cpu")
    nll, n = hf_windowed_nll(model, long_seq, 48, 16)
    assert result.texts[0].n_tokens == n == 150
    assert rel_close(result.texts[0].nll_sum, nll)
    # A text shorter than the window is scored in one piece, as without windows.
    assert rel_close(result.texts[1].perplexity, hf_perplexity(model, short_seq))
    # The window changes the answer for the long text (less context than the full sequence).
    full = score_perplexity_ids(model, [long_seq], max_length=512, device="cpu")
    assert not rel_close(full.texts[0].nll_sum, nll, 1e-3)


def test_small_loss_chunks_give_the_same_answer(model):
    seqs = [[1, *random_ids(n, 40 + n)] for n in (30, 12)]
    a = score_perplexity_ids(model, seqs, device="cpu")
    b = score_perplexity_ids(model, seqs, device="cpu", loss_chunk_tokens=7)
    for x, y in zip(a.texts, b.texts, strict=True):
        assert rel_close(x.nll_sum, y.nll_sum)


def test_lora_wrapped_model_scores_with_adapters_active(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base = LlamaForCausalLM(model.config).eval()
    base.load_state_dict(model.state_dict())
    lora = get_peft_model(
        base,
        LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
        ),
    ).eval()
    seqs = [[1, *random_ids(n, 70 + n)] for n in (25, 8)]
    with_lora = score_perplexity_ids(lora, seqs, device="cpu")
    plain = score_perplexity_ids(model, seqs, device="cpu")
    for seq, got, ref in zip(seqs, with_lora.texts, plain.texts, strict=True):
        assert rel_close(got.perplexity, hf_perplexity(lora, seq))
        assert not rel_close(got.perplexity, ref.perplexity, 1e-3)


def test_rejects_non_string_texts(model, tokenizer):
    with pytest.raises(TypeError):
        score_perplexity(model, tokenizer, [None], device="cpu")  # type: ignore[list-item]


# --- the shipped fixture model family (tiny Llama + LoRA adapters) ----------------------------

# EVALHUB_FIXTURE_MODELS points elsewhere while fixtures/models is being rebuilt.
FIXTURES = Path(
    os.environ.get("EVALHUB_FIXTURE_MODELS", Path(__file__).resolve().parents[2] / "fixtures" / "models")
)


@pytest.fixture(scope="module")
def fixture_base():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "base", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(FIXTURES / "base")
    return model, tok


@pytest.fixture(scope="module")
def suite_texts():
    rows = [
        json.loads(line)
        for line in (FIXTURES.parent / "suites" / "summaries.jsonl").read_text().splitlines()[:6]
    ]
    return [r["input"] for r in rows] + [r["reference"] for r in rows]


def hf_text_perplexity(model, tok, text):
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    return hf_perplexity(model, ids)


def test_fixture_model_matches_hf_per_text_with_padding(fixture_base, suite_texts):
    model, tok = fixture_base
    result = score_perplexity(model, tok, suite_texts, batch_size=5, device="cpu")
    assert result.config["bos"] is True
    for text, got in zip(suite_texts, result.texts, strict=True):
        assert got.n_tokens == len(tok(text, add_special_tokens=False)["input_ids"])
        assert rel_close(got.perplexity, hf_text_perplexity(model, tok, text))
    # The model was trained on this kind of text: far better than uniform over its vocabulary.
    assert result.perplexity < model.config.vocab_size / 10


def test_fixture_model_sliding_window(fixture_base, suite_texts):
    model, tok = fixture_base
    long_text = " ".join(suite_texts)
    ids = [tok.bos_token_id, *tok(long_text, add_special_tokens=False)["input_ids"]]
    assert len(ids) > 300
    result = score_perplexity(model, tok, [long_text], max_length=128, stride=48, device="cpu")
    nll, n = hf_windowed_nll(model, ids, 128, 48)
    assert result.texts[0].n_tokens == n == len(ids) - 1
    assert rel_close(result.texts[0].nll_sum, nll)


@pytest.mark.parametrize("adapter", ["summariser-v1", "tone-v1"])
def test_fixture_lora_adapter_matches_hf(fixture_base, suite_texts, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_model, tok = fixture_base
    fresh = AutoModelForCausalLM.from_pretrained(FIXTURES / "base", dtype=torch.float32).eval()
    lora = PeftModel.from_pretrained(fresh, FIXTURES / adapter).eval()
    texts = suite_texts[:4]
    with_adapter = score_perplexity(lora, tok, texts, batch_size=3, device="cpu")
    without = score_perplexity(base_model, tok, texts, batch_size=3, device="cpu")
    for text, got, base in zip(texts, with_adapter.texts, without.texts, strict=True):
        assert rel_close(got.perplexity, hf_text_perplexity(lora, tok, text))
        assert not rel_close(got.perplexity, base.perplexity, 1e-3)  # the adapter is active
    with lora.disable_adapter():
        disabled = score_perplexity(lora, tok, texts, batch_size=3, device="cpu")
    for a, b in zip(disabled.texts, without.texts, strict=True):
        assert rel_close(a.perplexity, b.perplexity)


def _failing_compile(body):
    def broken(*args, **kwargs):
        raise RuntimeError("inductor exploded")

    for layer in body.layers:
        layer._compiled_call_impl = broken


def test_auto_compile_failure_falls_back_to_eager(model, monkeypatch, caplog):
    import metrics.perplexity as ppl

    seqs = [[1, *random_ids(n, 80 + n)] for n in (12, 30)]
    eager = score_perplexity_ids(model, seqs, device="cpu", compile_body=False)
    monkeypatch.setattr(ppl, "_auto_compile", lambda dev: True)
    monkeypatch.setattr(ppl, "_compile_model", _failing_compile)
    result = score_perplexity_ids(model, seqs, device="cpu")  # compile_body=None: auto
    assert [t.nll_sum for t in result.texts] == pytest.approx([t.nll_sum for t in eager.texts], rel=REL)
    assert "torch.compile failed" in caplog.text
    assert all(layer._compiled_call_impl is None for layer in model.model.layers)


def test_explicit_compile_failure_raises(model, monkeypatch):
    import metrics.perplexity as ppl

    monkeypatch.setattr(ppl, "_compile_model", _failing_compile)
    try:
        with pytest.raises(RuntimeError, match="inductor exploded"):
            score_perplexity_ids(model, [[1, 5, 6, 7]], device="cpu", compile_body=True)
    finally:
        ppl._uncompile_model(model.model)
