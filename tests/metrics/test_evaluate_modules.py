"""The shipped `evaluate` module scripts load offline by path and equal the library's values."""

import os
from pathlib import Path

import pytest

from metrics import text
from tests.lazy import lazy_import

os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

evaluate = lazy_import("evaluate")  # a declared dependency; it imports torch and transformers (~4 s)

MODULES = Path(__file__).resolve().parents[2] / "metrics" / "evaluate_modules"
PREDS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him.", "", "你好世界"]
REFS = ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog.", "", "你好世"]


@pytest.fixture(scope="module")
def load():
    cache = {}

    def _load(name):
        if name not in cache:
            cache[name] = evaluate.load(str(MODULES / name))
        return cache[name]

    return _load


def test_rouge_module_equals_library(load):
    out = load("rouge").compute(predictions=PREDS, references=REFS)
    for kind in text.ROUGE_TYPES:
        per_item = [text.rouge(p, r)[kind].fmeasure for p, r in zip(PREDS, REFS, strict=True)]
        assert out[kind] == sum(per_item) / len(per_item)
    per = load("rouge").compute(predictions=PREDS, references=REFS, use_aggregator=False, use_stemmer=True)
    assert per["rougeL"] == [
        text.rouge(p, r, use_stemmer=True)["rougeL"].fmeasure for p, r in zip(PREDS, REFS, strict=True)
    ]


def test_sacrebleu_module_equals_library(load):
    module = load("sacrebleu")
    assert module.compute(predictions=PREDS, references=REFS)["score"] == text.corpus_bleu(PREDS, REFS)
    multi = [[r, "A completely different reference."] for r in REFS]
    out = module.compute(predictions=PREDS, references=multi, sentence_level=True)
    assert out["score"] == text.corpus_bleu(PREDS, multi)
    assert out["sentence_scores"] == [text.bleu(p, r) for p, r in zip(PREDS, multi, strict=True)]


def test_chrf_module_equals_library(load):
    out = load("chrf").compute(predictions=PREDS, references=REFS, word_order=2, sentence_level=True)
    assert out["score"] == text.corpus_chrf(PREDS, REFS, word_order=2)
    assert out["sentence_scores"] == [text.chrf(p, r, word_order=2) for p, r in zip(PREDS, REFS, strict=True)]


def test_embedding_similarity_module_equals_library(load, embedding_model):
    out = load("embedding_similarity").compute(predictions=PREDS, references=REFS)
    assert out["scores"] == text.embedding_similarity(PREDS, REFS)
    assert out["mean"] == pytest.approx(sum(out["scores"]) / len(PREDS))
