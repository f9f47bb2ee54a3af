"""Text metrics (metrics/text.py): known values, sacrebleu's documented examples, bad input."""

import math

import pytest
from rouge_score import tokenizers as rouge_tokenizers

from metrics.text import (
    ROUGE_TYPES,
    UnicodeTokenizer,
    bleu,
    chrf,
    compression_ratio,
    corpus_bleu,
    corpus_chrf,
    embedding_similarity,
    length_ratio,
    rouge,
    rouge_batch,
    text_length,
    word_tokens,
)
from tests.lazy import lazy_import

sacrebleu = lazy_import("sacrebleu")  # the reference implementation, imported by the tests that compare

# sacrebleu's README example (three segments, two reference streams).
SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
REF_STREAMS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
REFS_PER_ITEM = [list(refs) for refs in zip(*REF_STREAMS, strict=True)]


def f(scores, kind):
    return scores[kind].fmeasure


def test_rouge_hand_computed_case():
    s = rouge("the cat sat on the mat", "the cat is on the mat")
    # unigrams: the x2, cat, on, mat shared of 6 each; bigrams: the-cat, on-the, the-mat of 5;
    # LCS "the cat on the mat" = 5 tokens.
    assert s["rouge1"].precision == pytest.approx(5 / 6)
    assert s["rouge1"].recall == pytest.approx(5 / 6)
    assert f(s, "rouge2") == pytest.approx(3 / 5)
    assert f(s, "rougeL") == pytest.approx(5 / 6)
    assert f(s, "rougeLsum") == pytest.approx(5 / 6)


def test_rouge_precision_and_recall_differ_for_unequal_lengths():
    s = rouge("the cat", "the cat sat down")
    assert s["rouge1"].precision == 1.0
    assert s["rouge1"].recall == 0.5
    assert s["rouge1"].fmeasure == pytest.approx(2 * 0.5 / 1.5)


def test_rouge_stemmer_matches_inflections():
    assert f(rouge("running dogs", "run dog"), "rouge1") == 0.0
    assert f(rouge("running dogs", "run dog", use_stemmer=True), "rouge1") == 1.0


def test_rouge_split_summaries_changes_rougelsum_only():
    pred = "The cat sat. The dog ran."
    ref = "The dog ran. The cat sat."
    joined = rouge(pred, ref)
    split = rouge(pred, ref, split_summaries=True)
    assert f(split, "rougeLsum") == 1.0
    assert f(joined, "rougeLsum") < 1.0
    assert f(split, "rougeL") == f(joined, "rougeL")


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_unicode_tokenizer_equals_rouge_default_on_ascii(use_stemmer):
    texts = [
        "The company's Q3 revenue rose 12.5% to $4,200 million (year-over-year)!",
        "foo_bar baz--qux; running, jumped & flies 2024-01-01",
        "Patients were prescribed 20mg daily; follow-up in 3 weeks.",
    ]
    ours = UnicodeTokenizer(use_stemmer)
    theirs = rouge_tokenizers.DefaultTokenizer(use_stemmer)
    for t in texts:
        assert ours.tokenize(t) == theirs.tokenize(t)


def test_unicode_tokenizer_scores_cjk_text_by_character():
    s = rouge("你好世界", "你好世", tokenizer="unicode")
    assert s["rouge1"].precision == pytest.approx(3 / 4)
    assert s["rouge1"].recall == 1.0
    assert f(rouge("你好世界", "再见", tokenizer="unicode"), "rouge1") == 0.0
    # rouge-score's own tokenizer (the default) drops every CJK character: no token on either side.
    assert f(rouge("你好世界", "你好世界"), "rouge1") == 0.0


def test_rouge_custom_tokenizer_is_used():
    class Whitespace(rouge_tokenizers.Tokenizer):
        def tokenize(self, text):
            return text.split()

    # Case-sensitive whitespace tokens: "The" != "the".
    assert f(rouge("The cat", "the cat", tokenizer=Whitespace()), "rouge1") == 0.5


def test_rouge_rejects_unknown_tokenizer_name():
    with pytest.raises(ValueError):
        rouge("a", "b", tokenizer="klingon")


@pytest.mark.parametrize(
    ("pred", "ref", "expected", "expected_unicode"),
    [
        ("", "the cat", 0.0, 0.0),
        ("the cat", "", 0.0, 0.0),
        ("", "", 0.0, 1.0),
        ("  ", "\n", 0.0, 1.0),
        ("!!!", "the cat", 0.0, 0.0),
    ],
)
def test_rouge_defined_values_for_empty_input(pred, ref, expected, expected_unicode):
    # The default is rouge-score's value (no token: 0.0); the Unicode variant keeps evalhub's 1.0
    # for two empty texts.
    s, u = rouge(pred, ref), rouge(pred, ref, tokenizer="unicode")
    for kind in ROUGE_TYPES:
        assert s[kind].precision == s[kind].recall == s[kind].fmeasure == expected
        assert u[kind].precision == u[kind].recall == u[kind].fmeasure == expected_unicode


def test_rouge_batch_matches_single_calls_and_checks_lengths():
    preds, refs = ["a b", "c d e"], ["a", "e d c"]
    assert rouge_batch(preds, refs) == [rouge(p, r) for p, r in zip(preds, refs, strict=True)]
    with pytest.raises(ValueError):
        rouge_batch(["a"], ["a", "b"])


def test_corpus_bleu_matches_sacrebleu_documented_example():
    # sacrebleu README: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ...)".
    assert corpus_bleu(SYS, REFS_PER_ITEM) == pytest.approx(48.530827, abs=1e-5)
    assert corpus_bleu(SYS, REFS_PER_ITEM) == pytest.approx(sacrebleu.corpus_bleu(SYS, REF_STREAMS).score)


def test_corpus_chrf_matches_sacrebleu_documented_example():
    # sacrebleu README: "chrF2 = 59.73".
    assert corpus_chrf(SYS, REFS_PER_ITEM) == pytest.approx(59.727518, abs=1e-5)


def test_sentence_bleu_and_chrf_match_sacrebleu_functions():
    for hyp, refs in zip(SYS, REFS_PER_ITEM, strict=True):
        assert bleu(hyp, refs) == pytest.approx(sacrebleu.sentence_bleu(hyp, refs).score)
        assert chrf(hyp, refs) == pytest.approx(sacrebleu.sentence_chrf(hyp, refs).score)
        assert chrf(hyp, refs, word_order=2) == pytest.approx(
            sacrebleu.sentence_chrf(hyp, refs, word_order=2).score
        )
    assert bleu("The dog bit the man.", "The dog bit the man.") == pytest.approx(100.0)
    assert bleu("The dog bit the man.", "Revenue fell sharply in the quarter.") < 10


def test_corpus_bleu_single_reference_strings():
    assert corpus_bleu(SYS, REF_STREAMS[0]) == pytest.approx(
        sacrebleu.corpus_bleu(SYS, [REF_STREAMS[0]]).score
    )


@pytest.mark.parametrize("metric", [bleu, chrf])
def test_bleu_and_chrf_defined_values_for_empty_input(metric):
    assert metric("", "the cat sat") == 0.0
    assert metric("the cat sat", "") == 0.0
    assert metric("", "") == 100.0
    assert corpus_bleu(["", ""], ["", ""]) == 100.0
    assert corpus_chrf([""], [""]) == 100.0


def test_chrf_handles_cjk_without_spaces():
    assert chrf("你好世界", "你好世界") == pytest.approx(100.0)
    assert 0 < chrf("你好世界和平", "你好世界") < 100


def test_embedding_similarity_identical_related_unrelated(embedding_model):
    same, related, unrelated = embedding_similarity(
        ["The company's revenue grew in the third quarter."] * 3,
        [
            "The company's revenue grew in the third quarter.",
            "Third-quarter sales at the firm increased.",
            "The patient should drink more water and rest.",
        ],
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert related > unrelated
    assert related > 0.5
    assert unrelated < 0.3


def test_embedding_similarity_empty_inputs_need_no_model():
    assert embedding_similarity(["", "", "x"], ["", "y", " "]) == [1.0, 0.0, 0.0]
    assert embedding_similarity([], []) == []


def test_embedding_similarity_unicode_and_long_text(embedding_model):
    long_text = "revenue growth " * 5000
    values = embedding_similarity(
        ["你好世界 🎉", "مرحبا بالعالم", long_text], ["你好世界", "مرحبا", long_text]
    )
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert values[2] == pytest.approx(1.0, abs=1e-5)


def test_lengths_and_ratios():
    assert text_length("Hello, world! 你好 🎉") == text_length("Hello, world! 你好 🎉")
    n = text_length("Hello, world! 你好 🎉")
    assert n.chars == 18
    assert n.words == 4  # Hello, world, 你, 好 (emoji and punctuation are not words)
    assert word_tokens("مرحبا بالعالم") == ["مرحبا", "بالعالم"]
    assert compression_ratio("abc", "abcdef") == 0.5
    assert compression_ratio("one two", "one two three four", unit="words") == 0.5
    assert compression_ratio("abc", "") is None
    assert compression_ratio("", "") is None
    assert compression_ratio("", "abc") == 0.0
    assert length_ratio("a b c", "a b") == 1.5
    assert length_ratio("abc", "ab", unit="chars") == 1.5
    assert length_ratio("a", "") is None


def test_very_long_text_is_scored():
    long_pred = "the quarterly revenue grew strongly " * 2000
    long_ref = "the quarterly revenue fell sharply " * 2000
    s = rouge(long_pred, long_ref, rouge_types=("rouge1", "rouge2"))
    assert 0 < f(s, "rouge1") < 1
    assert 0 <= bleu(long_pred, long_ref) <= 100
    assert 0 <= chrf(long_pred, long_ref) <= 100
    assert math.isfinite(compression_ratio(long_pred, long_ref))


def _random_texts(seed, n, length):
    import random

    rng = random.Random(seed)
    words = [
        "the",
        "a",
        "revenue",
        "grew",
        "fell",
        "quarter",
        "patient",
        "visit",
        "blood",
        "pressure",
        "doctor",
        "said",
        "company",
        "up",
        "down",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(0, length)
        text = " ".join(rng.choice(words) for _ in range(k))
        # Some multi-sentence texts for rougeLsum.
        out.append(text.replace(" said ", " said.\n", 1))
    return out


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score_library_on_random_text(use_stemmer):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    preds, refs = _random_texts(1, 150, 40), _random_texts(2, 150, 40)
    for p, r in zip(preds, refs, strict=True):
        ours = rouge(p, r, use_stemmer=use_stemmer)
        theirs = scorer.score(r, p)
        for kind in ROUGE_TYPES:
            assert ours[kind].precision == theirs[kind].precision
            assert ours[kind].recall == theirs[kind].recall
            assert ours[kind].fmeasure == theirs[kind].fmeasure


# Text a default scorer must survive: accents, other scripts, emoji, full-width and odd case
# mappings (Turkish dotted I and the Kelvin sign lower-case to ASCII), markup, empty and blank text.
VARIED = [
    "",
    " ",
    "\n\n",
    "The café's crème brûlée cost €12.50 — naïve façade.",
    "the cafe's creme brulee cost 12 50 naive facade",
    "Müller & Söhne GmbH meldete 3,2 Mio. € Umsatz.\nDer Gewinn stieg um 12 %.",
    "营业收入增长12%\uff0c净利润为3.5亿元。\n公司CEO表示满意。",
    "营业收入增长12%\uff0c净利润为3.5亿元。",
    "売上高は前年比12%増の450億円。",
    "매출은 12% 증가했다.",
    "الإيرادات ارتفعت 12% في الربع الثالث",
    "Выручка выросла на 12% до 4,2 млрд рублей.",
    "Revenue rose 12% 🚀🚀 to $4.2B 📈",
    "🚀📈🎉",
    "\uff21\uff22\uff23 \uff11\uff12\uff13 full-width \uff31\uff13 revenue",
    "\u0130stanbul \u212aelvin 5\u212a \ufb01nance \u00df stra\u00dfe",
    "istanbul kelvin 5k finance ss strasse",
    "<b>Revenue</b> rose 12%.\nMargins fell.\n\nOutlook: stable.",
    "Revenue rose 12 percent. Margins fell. Outlook stable.",
    "a a a a b b b c",
    "running jumped flies happily studies",
]


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score_default_scorer_on_any_text(use_stemmer):
    """The plain names are rouge-score's default RougeScorer to the last bit, non-ASCII and empty included."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    single = {t: rouge_scorer.RougeScorer([t], use_stemmer=use_stemmer) for t in ROUGE_TYPES}
    for p in VARIED:
        for r in VARIED:
            ours = rouge(p, r, use_stemmer=use_stemmer)
            theirs = scorer.score(r, p)
            for kind in ROUGE_TYPES:
                assert ours[kind].to_dict() == theirs[kind]._asdict(), (p, r, kind)
                # One type at a time too (rouge-score skips whole-text tokens for rougeLsum alone).
                alone = rouge(p, r, rouge_types=(kind,), use_stemmer=use_stemmer)[kind]
                assert alone.to_dict() == single[kind].score(r, p)[kind]._asdict()


def test_unicode_variant_differs_from_rouge_score_only_off_ascii():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"])
    german = ("Müller meldete Umsatz", "Müller meldete Gewinn")
    assert f(rouge(*german, tokenizer="unicode"), "rouge1") == pytest.approx(2 / 3)
    assert f(rouge(*german), "rouge1") == scorer.score(german[1], german[0])["rouge1"].fmeasure
    ascii_pair = ("Revenue rose 12% to $4.2B", "revenue rose by 12 percent")
    assert rouge(*ascii_pair, tokenizer="unicode") == rouge(*ascii_pair)


def test_lcs_indices_equal_rouge_score_lcs_ind():
    import random

    from rouge_score import rouge_scorer

    from metrics.text import _lcs_indices

    rng = random.Random(7)
    for _ in range(300):
        ref = [rng.choice("abcde") for _ in range(rng.randint(0, 25))]
        can = [rng.choice("abcdef") for _ in range(rng.randint(0, 25))]
        assert _lcs_indices(ref, can) == rouge_scorer.lcs_ind(ref, can)


def test_long_texts_get_rougel_and_rougelsum_exactly_and_quickly():
    import time

    from rouge_score import rouge_scorer

    pred = " ".join(_random_texts(3, 1, 6000)[0].split()[:6000] * 2)
    ref = " ".join(_random_texts(4, 1, 6000)[0].split()[:6000] * 2)
    t0 = time.perf_counter()
    s = rouge(pred, ref, rouge_types=("rougeL", "rougeLsum"))
    assert time.perf_counter() - t0 < 20
    assert 0 < s["rougeL"].fmeasure < 1
    assert 0 < s["rougeLsum"].fmeasure < 1
    # Many sentences: rougeLsum against rouge-score's own tables on a size they still handle.
    many_p = "\n".join(" ".join(pred.split()[i : i + 12]) for i in range(0, 900, 12))
    many_r = "\n".join(" ".join(ref.split()[i : i + 9]) for i in range(0, 700, 9))
    theirs_lsum = rouge_scorer.RougeScorer(["rougeLsum"]).score(many_r, many_p)["rougeLsum"]
    assert rouge(many_p, many_r, rouge_types=("rougeLsum",))["rougeLsum"].to_dict() == theirs_lsum._asdict()
    # Exact rougeL against rouge-score's own table on a size it can still handle.
    short_p, short_r = " ".join(pred.split()[:400]), " ".join(ref.split()[:300])
    theirs = rouge_scorer.RougeScorer(["rougeL"]).score(short_r, short_p)["rougeL"]
    assert rouge(short_p, short_r, rouge_types=("rougeL",))["rougeL"].fmeasure == pytest.approx(
        theirs.fmeasure
    )


def test_unknown_rouge_type_is_rejected():
    with pytest.raises(ValueError):
        rouge("a", "b", rouge_types=("rougeX",))
