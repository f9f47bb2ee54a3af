"""evaluate module: corpus BLEU (0-100) as computed by evalhub's metrics.text.corpus_bleu."""

from __future__ import annotations

from typing import Any

import evaluate

from metrics.evaluate_support import text_pair_info
from metrics.text import bleu, corpus_bleu

_DESCRIPTION = """Corpus BLEU via sacrebleu (0-100), with evalhub's defined value for all-empty input
(100.0). Optionally also sentence-level BLEU per item."""

_KWARGS = """
Args:
    predictions: list of strings.
    references: list of strings, or list of lists of strings (several references per item).
    tokenize: sacrebleu tokenizer (default "13a").
    lowercase: default False.
    smooth_method: default "exp".
    sentence_level: also return "sentence_scores" (default False).
Returns:
    {"score": float, "sentence_scores": list[float] (if asked)}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Sacrebleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return text_pair_info(
            description=_DESCRIPTION,
            citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores.",
            inputs_description=_KWARGS,
            multi_reference=True,
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str] | list[list[str]],
        tokenize: str = "13a",
        lowercase: bool = False,
        smooth_method: str = "exp",
        sentence_level: bool = False,
    ) -> dict[str, Any]:
        opts: dict[str, Any] = {"tokenize": tokenize, "lowercase": lowercase, "smooth_method": smooth_method}
        out: dict[str, Any] = {"score": corpus_bleu(predictions, references, **opts)}
        if sentence_level:
            out["sentence_scores"] = [
                bleu(p, r, **opts) for p, r in zip(predictions, references, strict=True)
            ]
        return out
