"""evaluate module: ROUGE as computed by evalhub's metrics.text.rouge (values equal the library's)."""

from __future__ import annotations

from typing import Any

import evaluate

from metrics.evaluate_support import text_pair_info
from metrics.text import ROUGE_TYPES, rouge

_DESCRIPTION = """ROUGE F-measures equal to rouge-score 0.1.2's default RougeScorer (tokenizer="unicode" for
evalhub's Unicode-aware variant, the registry's *_unicode metrics). With use_aggregator=True (default) each value is the mean
F-measure over the items; otherwise one F-measure per item."""

_KWARGS = """
Args:
    predictions: list of strings.
    references: list of strings (one reference per prediction).
    rouge_types: subset of rouge1..rouge9, rougeL, rougeLsum (default all four standard ones).
    use_stemmer: Porter-stem ASCII words (default False).
    split_summaries: split sentences for rougeLsum (default False).
    tokenizer: "default" (rouge-score's, the default: its RougeScorer exactly), "unicode" or a rouge_score Tokenizer.
    use_aggregator: mean over items (default True) or per-item lists.
Returns:
    {"rouge1": float | list[float], ...}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return text_pair_info(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        rouge_types: list[str] | tuple[str, ...] = ROUGE_TYPES,
        use_stemmer: bool = False,
        split_summaries: bool = False,
        tokenizer: Any = "default",
        use_aggregator: bool = True,
    ) -> dict[str, Any]:
        types = tuple(rouge_types)
        scores = [
            rouge(
                p,
                r,
                rouge_types=types,
                use_stemmer=use_stemmer,
                split_summaries=split_summaries,
                tokenizer=tokenizer,
            )
            for p, r in zip(predictions, references, strict=True)
        ]
        per_type = {t: [s[t].fmeasure for s in scores] for t in types}
        if not use_aggregator:
            return per_type
        return {t: (sum(v) / len(v) if v else None) for t, v in per_type.items()}
