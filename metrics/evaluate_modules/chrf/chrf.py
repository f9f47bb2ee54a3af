"""evaluate module: corpus chrF (0-100) as computed by evalhub's metrics.text.corpus_chrf."""

from __future__ import annotations

from typing import Any

import evaluate

from metrics.evaluate_support import text_pair_info
from metrics.text import chrf, corpus_chrf

_DESCRIPTION = """Corpus chrF via sacrebleu (0-100; word_order=2 gives chrF++), with evalhub's defined
value for all-empty input (100.0). Optionally also sentence-level chrF per item."""

_KWARGS = """
Args:
    predictions: list of strings.
    references: list of strings, or list of lists of strings.
    char_order: default 6. word_order: default 0. beta: default 2.
    sentence_level: also return "sentence_scores" (default False).
Returns:
    {"score": float, "char_order": int, "word_order": int, "beta": int, "sentence_scores": ...}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Chrf(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return text_pair_info(
            description=_DESCRIPTION,
            citation="Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation.",
            inputs_description=_KWARGS,
            multi_reference=True,
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str] | list[list[str]],
        char_order: int = 6,
        word_order: int = 0,
        beta: int = 2,
        sentence_level: bool = False,
    ) -> dict[str, Any]:
        opts = {"char_order": char_order, "word_order": word_order, "beta": beta}
        out: dict[str, Any] = {"score": corpus_chrf(predictions, references, **opts), **opts}
        if sentence_level:
            out["sentence_scores"] = [
                chrf(p, r, **opts) for p, r in zip(predictions, references, strict=True)
            ]
        return out
