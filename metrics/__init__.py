"""evalhub's automated metrics: plain Python, no Django, nothing from the apps.

Import the module you need; this package imports nothing itself, so ``import metrics.stats``
does not pull in torch or spaCy:

* ``metrics.text``: ROUGE, BLEU, chrF, embedding similarity, lengths and ratios
* ``metrics.perplexity``: perplexity of a causal LM (optionally PEFT-wrapped)
* ``metrics.checks``: expected-behaviour checks (refusal, contains, regex, JSON, PII, injection)
* ``metrics.pii``: offline PII detection and redaction
* ``metrics.registry``: metrics by name/version/config hash; ``score_many`` on every core
* ``metrics.stats``, ``metrics.agreement``, ``metrics.ranking``: comparisons and rater agreement
* ``metrics.judge``, ``metrics.routing``: a judge's calibration against the experts, and routing expert
  ratings with a corrected win-rate estimate (docs/judge.md)

See docs/metrics.md.
"""
