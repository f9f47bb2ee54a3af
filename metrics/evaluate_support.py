"""What evalhub's Hugging Face ``evaluate`` module scripts (metrics/evaluate_modules/) share.

Kept outside the scripts: ``evaluate.load`` copies a script into its cache, and a script
imports this by absolute name, like it imports ``metrics.text``.
"""

from __future__ import annotations

import datasets
import evaluate


def text_pair_info(
    *, description: str, citation: str, inputs_description: str, multi_reference: bool = False
) -> evaluate.MetricInfo:
    """MetricInfo for a metric of (prediction, reference) strings.

    With ``multi_reference`` a reference may also be a list of strings (several per item),
    as sacrebleu's corpus metrics take them.
    """
    single = datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
    )
    features: datasets.Features | list[datasets.Features] = single
    if multi_reference:
        several = datasets.Features(
            {
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }
        )
        features = [several, single]
    return evaluate.MetricInfo(
        description=description, citation=citation, inputs_description=inputs_description, features=features
    )
