"""Metric registry (metrics/registry.py): lookup, config hashes, custom metrics, score_many."""

import re
from pathlib import Path

import pytest

from metrics import text
from metrics.registry import Item, get_metric, list_metrics, register_metric, score_many, unregister_metric

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
BUILTINS = {
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "bleu",
    "chrf",
    "embedding_similarity",
    "length",
    "length_ratio",
    "compression_ratio",
}


def test_builtin_metrics_are_registered():
    assert {m.name for m in list_metrics()} >= BUILTINS
    for name in BUILTINS:
        m = get_metric(name)
        assert m.version
        assert isinstance(m.default_config, dict)
        assert re.fullmatch(r"[0-9a-f]{16}", m.config_hash())


def test_unknown_metric_names_the_registered_ones():
    with pytest.raises(KeyError, match="rougeL"):
        get_metric("rougeX")


def test_config_hash_is_stable_and_tracks_config_and_version():
    m = get_metric("rougeL")
    assert m.config_hash() == m.config_hash({}) == m.config_hash({"use_stemmer": False})
    assert m.config_hash({"use_stemmer": True}) != m.config_hash()
    assert get_metric("rouge1").config_hash() != m.config_hash()  # the name is part of it
    with pytest.raises(ValueError, match="no config option"):
        m.config_hash({"use_stemer": True})


def test_rouge_metrics_value_is_f_with_details():
    [v] = get_metric("rougeL").compute([("the cat sat", "the cat sat down", None)])
    assert v["value"] == pytest.approx(6 / 7)
    assert v["details"] == {"precision": 1.0, "recall": 0.75, "fmeasure": pytest.approx(6 / 7)}
    [s] = get_metric("rouge1").compute([("running dogs", "run dog")], {"use_stemmer": True})
    assert s["value"] == 1.0


def test_builtins_agree_with_the_text_functions():
    items = [
        Item("The dog bit the man.", "The dog had bit the man.", "A long document about a dog and a man.")
    ]
    assert get_metric("bleu").compute(items)[0]["value"] == text.bleu(items[0].prediction, items[0].reference)
    assert get_metric("chrf").compute(items)[0]["value"] == text.chrf(items[0].prediction, items[0].reference)
    assert get_metric("compression_ratio").compute(items)[0]["value"] == text.compression_ratio(
        items[0].prediction, items[0].input
    )
    assert get_metric("length").compute(items)[0] == {"value": 5.0, "details": {"chars": 20, "words": 5}}


def test_missing_reference_or_input_gives_none_with_a_reason():
    items = [Item("some output")]
    for name in ("rougeL", "bleu", "chrf", "length_ratio", "compression_ratio", "embedding_similarity"):
        [v] = get_metric(name).compute(items)
        assert v["value"] is None and v["details"]["reason"], name
    [v] = get_metric("compression_ratio").compute([Item("x", None, "")])
    assert v == {"value": None, "details": {"reason": "empty input"}}


def test_registering_a_taken_name_needs_replace():
    with pytest.raises(ValueError, match="already registered"):
        register_metric(name="bleu", version="9")(lambda items, config: [])


def test_class_metrics_are_supported():
    @register_metric(name="_test_upper", version="2", needs_reference=False)
    class Upper:
        def compute(self, items, config):
            return [{"value": float(it.prediction.isupper()), "details": {}} for it in items]

    try:
        assert get_metric("_test_upper").compute([("ABC",), ("abc",)]) == [
            {"value": 1.0, "details": {}},
            {"value": 0.0, "details": {}},
        ]
        assert get_metric("_test_upper").version == "2"
    finally:
        unregister_metric("_test_upper")


def test_a_metric_returning_the_wrong_number_of_values_is_an_error():
    register_metric(name="_test_broken", version="1")(lambda items, config: [])
    try:
        with pytest.raises(RuntimeError, match="returned 0 values for 1 items"):
            get_metric("_test_broken").compute([("a", "b", None)])
    finally:
        unregister_metric("_test_broken")


def test_docs_example_for_adding_a_metric_runs():
    doc = DOCS.read_text()
    section = doc.split("### Add your own metric", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    try:
        exec(compile(code, str(DOCS), "exec"), {})  # noqa: S102 - the example asserts its own result
        assert get_metric("exclamations").compute([("Hi!",)])[0]["value"] == 1.0
    finally:
        unregister_metric("exclamations")


def _items(n):
    import random

    rng = random.Random(5)
    words = [
        "the",
        "revenue",
        "quarter",
        "grew",
        "fell",
        "patient",
        "visit",
        "pressure",
        "doctor",
        "你好",
        "مرحبا",
        "🎉",
    ]
    out = []
    for i in range(n):
        pred = " ".join(rng.choices(words, k=rng.randint(0, 25)))
        ref = " ".join(rng.choices(words, k=rng.randint(0, 25)))
        out.append(Item(pred, ref if i % 7 else None, " ".join(rng.choices(words, k=80))))
    return out


def test_score_many_in_parallel_equals_one_process_and_keeps_order():
    items = _items(300)
    names = ["rouge1", "rougeL", "bleu", "chrf", "length", "length_ratio", "compression_ratio"]
    one = score_many(items, names, workers=1)
    many = score_many(items, names, workers=2, chunk_size=37)
    assert one == many
    assert len(one) == 300
    assert list(one[0]) == names
    for item, row in zip(items, one, strict=True):
        expected = get_metric("rougeL").compute([item])[0]
        assert row["rougeL"] == expected


def test_score_many_takes_configs_and_runs_serial_metrics_here(embedding_model):
    items = _items(20)
    rows = score_many(items, {"rouge1": {"use_stemmer": True}, "embedding_similarity": None}, workers=2)
    assert [r["rouge1"] for r in rows] == get_metric("rouge1").compute(items, {"use_stemmer": True})
    assert all(
        r["embedding_similarity"]["value"] is None
        for r, it in zip(rows, items, strict=True)
        if it.reference is None
    )
    assert score_many([], ["bleu"]) == []


NASTY = [
    Item("", "a reference", "an input"),
    Item("an output", "", ""),
    Item("", "", ""),
    Item("   \n\t ", " ", None),
    Item("你好世界和平", "你好世界", "这是一个很长的文件"),
    Item("🎉🎉🎉 👍", "🎉", "🎉🎉🎉🎉"),
    Item("مرحبا بالعالم", "مرحبا", "שלום עולם"),
    Item("null\x00byte and \u202e right-to-left override", "null byte", "x"),
    Item("word " * 20000, "word " * 15000, "word " * 100000),
    Item("only output"),
]
RANGES = {"bleu": (0, 100.0001), "chrf": (0, 100.0001), "embedding_similarity": (-1, 1)}


def test_every_builtin_metric_gives_a_defined_value_on_awkward_input(embedding_model):
    rows = score_many(NASTY, sorted(BUILTINS), workers=1)
    for item, row in zip(NASTY, rows, strict=True):
        for name, result in row.items():
            value = result["value"]
            assert value is None or isinstance(value, float), (name, item.prediction[:20], value)
            if value is None:
                assert result["details"].get("reason"), (name, item.prediction[:20])
                continue
            low, high = RANGES.get(name, (0, 1) if name.startswith("rouge") else (0, float("inf")))
            assert low <= value <= high, (name, item.prediction[:20], value)
    both_empty = rows[2]
    assert [both_empty[n]["value"] for n in ("rouge1", "rougeL", "bleu", "chrf", "embedding_similarity")] == [
        1.0,
        1.0,
        100.0,
        100.0,
        1.0,
    ]
    assert both_empty["compression_ratio"]["value"] is None
    assert rows[0]["rougeL"]["value"] == rows[0]["bleu"]["value"] == 0.0


def test_the_names_a_run_scores_are_registered_metrics_and_cover_every_rouge_variant():
    from metrics import registry, text

    assert set(registry.ROUGE_METRICS) == set(text.ROUGE_TYPES)
    assert all(registry.get_metric(name).name == name for name in registry.TEXT_METRICS)
    assert registry.PERPLEXITY_METRIC not in registry.TEXT_METRICS
    assert not registry.higher_is_better("length_ratio") and registry.higher_is_better("rougeL")


def test_reading_a_metric_name_loads_no_metric_library():
    import subprocess
    import sys

    code = (
        "import sys; from metrics.registry import TEXT_METRICS;"
        "print(sorted(m for m in ('rouge_score', 'nltk', 'sacrebleu', 'sentence_transformers', 'metrics.text')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=DOCS.parents[1]
    )
    assert out.stdout.strip() == "[]", out.stderr
