"""Metric registry: every automatic metric is found by name, with a version and a config hash.

A metric takes a batch of ``(prediction, reference, input)`` items and a config dict and returns
one ``{"value": float | None, "details": dict}`` per item. :func:`score_many` runs several
metrics over many items, spreading the CPU-bound ones over worker processes.

It is also the one home of the metric names the rest of the project uses (`TEXT_METRICS`, what a run
scores; `PERPLEXITY_METRIC`, `CHECKS_METRIC`), so this module imports no metric library until a metric
runs: reading a name costs nothing (rouge-score's NLTK import alone takes seconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple, TypedDict

__all__ = [
    "CHECKS_METRIC",
    "JUDGE_CHECKS_METRIC",
    "PERPLEXITY_METRIC",
    "ROUGE_METRICS",
    "ROUGE_UNICODE_METRICS",
    "TEXT_METRICS",
    "Item",
    "Metric",
    "MetricValue",
    "get_metric",
    "higher_is_better",
    "list_metrics",
    "register_metric",
    "score_many",
    "unregister_metric",
]


# The ROUGE variants registered as metrics of their own (metrics.text.ROUGE_TYPES, which a test keeps equal).
# These names mean rouge-score 0.1.2's default RougeScorer exactly, so they compare with published numbers.
ROUGE_METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
#: The same with metrics.text.UnicodeTokenizer (letters of every script count), for non-English
#: suites. Not scored on every run; before version 2 of the plain names they were stored under those.
ROUGE_UNICODE_METRICS: tuple[str, ...] = tuple(f"{name}_unicode" for name in ROUGE_METRICS)
#: What every output of a run is scored with, in the order reports show them.
TEXT_METRICS: tuple[str, ...] = (
    *ROUGE_METRICS,
    "bleu",
    "chrf",
    "embedding_similarity",
    "length_ratio",
    "compression_ratio",
)
#: Scored by evalhub rather than through this registry: perplexity needs the model under test, and the
#: checks come from each case's expected behaviour (metrics.checks).
PERPLEXITY_METRIC = "perplexity"
CHECKS_METRIC = "checks"
#: The pending checks of imported suites, evaluated by a judge (evalhub.runs.judged_checks): kept apart
#: from CHECKS_METRIC, so a judge's verdict is never counted as a deterministic check's.
JUDGE_CHECKS_METRIC = "judge_checks"
# Where a higher value is not better: a ratio aims at 1, perplexity is better lower.
_NOT_HIGHER_IS_BETTER = frozenset({"length", "length_ratio", "compression_ratio", PERPLEXITY_METRIC})


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric means a better output (plots of quality trends use it)."""
    return name not in _NOT_HIGHER_IS_BETTER


def _text() -> ModuleType:
    from metrics import text

    return text


class Item(NamedTuple):
    """One case to score: the model's output, the expected output and the input (either may be None)."""

    prediction: str
    reference: str | None = None
    input: str | None = None


class MetricValue(TypedDict):
    value: float | None
    details: dict[str, Any]


MetricFn = Callable[[Sequence[Item], Mapping[str, Any]], list[MetricValue]]


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``parallel`` metrics are pure CPU work, safe to run in worker processes;
    the others (a model held in memory, say) run in the calling process, batched."""

    name: str
    version: str
    fn: MetricFn
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    needs_reference: bool = True
    parallel: bool = True

    def resolve_config(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``config``; unknown keys are an error (a typo would otherwise be silent)."""
        merged = dict(self.default_config)
        for key, value in (config or {}).items():
            if key not in merged:
                raise ValueError(f"metric {self.name!r} has no config option {key!r} (has: {sorted(merged)})")
            merged[key] = value
        return merged

    def config_hash(self, config: Mapping[str, Any] | None = None) -> str:
        """Stable id of (name, version, full config): equal hashes mean comparable scores."""
        payload = {"name": self.name, "version": self.version, "config": self.resolve_config(config)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def compute(
        self, items: Iterable[Item | tuple[Any, ...]], config: Mapping[str, Any] | None = None
    ) -> list[MetricValue]:
        batch = [_as_item(it) for it in items]
        values = self.fn(batch, self.resolve_config(config))
        if len(values) != len(batch):
            raise RuntimeError(f"metric {self.name!r} returned {len(values)} values for {len(batch)} items")
        return values


_REGISTRY: dict[str, Metric] = {}


def _as_item(item: Item | tuple[Any, ...]) -> Item:
    if isinstance(item, Item):
        return item
    return Item(*item)


def register_metric(
    *,
    name: str,
    version: str,
    default_config: Mapping[str, Any] | None = None,
    description: str = "",
    needs_reference: bool = True,
    parallel: bool = True,
    replace: bool = False,
) -> Callable[[Any], Any]:
    """Decorator registering a function ``fn(items, config) -> list[MetricValue]``, or a class
    whose instances (made with no arguments) are such callables or have such a ``compute``.

    Registering a taken name raises unless ``replace=True``. Returns the decorated object unchanged.
    """

    def decorate(obj: Any) -> Any:
        if name in _REGISTRY and not replace:
            raise ValueError(f"metric {name!r} is already registered (pass replace=True to override)")
        if isinstance(obj, type):
            instance = obj()
            fn = getattr(instance, "compute", instance)
        else:
            fn = obj
        if not callable(fn):
            raise TypeError(f"metric {name!r}: {obj!r} is not callable")
        _REGISTRY[name] = Metric(
            name=name,
            version=str(version),
            fn=fn,
            default_config=dict(default_config or {}),
            description=description or (obj.__doc__ or "").strip().split("\n")[0],
            needs_reference=needs_reference,
            parallel=parallel,
        )
        return obj

    return decorate


def unregister_metric(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_metric(name: str) -> Metric:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def list_metrics() -> list[Metric]:
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


# --- running many metrics over many items ---------------------------------------------------


def _score_chunk(
    names: Sequence[str], configs: Sequence[Mapping[str, Any]], items: Sequence[Item]
) -> list[dict[str, MetricValue]]:
    per_metric = [get_metric(n).compute(items, c) for n, c in zip(names, configs, strict=True)]
    return [{n: vals[i] for n, vals in zip(names, per_metric, strict=True)} for i in range(len(items))]


def _pool_context() -> multiprocessing.context.BaseContext | None:
    """fork where available: workers inherit the registry, metrics registered at run time included."""
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def score_many(
    items: Sequence[Item | tuple[Any, ...]],
    metrics: Sequence[str] | Mapping[str, Mapping[str, Any] | None],
    *,
    workers: int | None = None,
    chunk_size: int | None = None,
) -> list[dict[str, MetricValue]]:
    """Score every item with every metric; one ``{metric_name: MetricValue}`` dict per item, in order.

    ``metrics`` is a list of names or a ``{name: config}`` mapping. ``parallel`` metrics are split
    into chunks over ``workers`` processes (default ``os.cpu_count()``); the result is identical
    to ``workers=1``. Other metrics run here, on the whole batch at once. Inside a daemon process
    (a Celery prefork worker, say), which may not start children, everything runs here.
    """
    spec = dict.fromkeys(metrics) if not isinstance(metrics, Mapping) else dict(metrics)
    batch = [_as_item(it) for it in items]
    resolved = {name: get_metric(name) for name in spec}
    configs = {name: resolved[name].resolve_config(spec[name]) for name in spec}
    results: list[dict[str, MetricValue]] = [{} for _ in batch]
    if not batch:
        return results

    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    if multiprocessing.current_process().daemon:
        n_workers = 1
    parallel = [n for n in spec if resolved[n].parallel]
    serial = [n for n in spec if not resolved[n].parallel]

    if parallel:
        names = parallel
        cfgs = [configs[n] for n in names]
        if n_workers == 1 or len(batch) < 2:
            chunks_out = [_score_chunk(names, cfgs, batch)]
        else:
            size = chunk_size or max(64, math.ceil(len(batch) / (n_workers * 4)))
            chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
            with ProcessPoolExecutor(
                max_workers=min(n_workers, len(chunks)), mp_context=_pool_context()
            ) as pool:
                chunks_out = list(pool.map(_score_chunk, [names] * len(chunks), [cfgs] * len(chunks), chunks))
        flat = [row for chunk in chunks_out for row in chunk]
        for i, row in enumerate(flat):
            results[i].update(row)
    for name in serial:
        for i, value in enumerate(resolved[name].compute(batch, configs[name])):
            results[i][name] = value
    # Keep the caller's metric order in each row.
    return [{n: row[n] for n in spec} for row in results]


# --- built-in metrics ---------------------------------------------------------------------------

# Plain names: only what rouge-score's RougeScorer lets vary while staying itself (its sentence
# splitter needs NLTK data, so split_summaries is offered on the Unicode variant only).
_ROUGE_DEFAULTS: dict[str, Any] = {"use_stemmer": False}
_ROUGE_UNICODE_DEFAULTS: dict[str, Any] = {"use_stemmer": False, "split_summaries": False}


def _reference(item: Item) -> str:
    return item.reference if item.reference is not None else ""


def _make_rouge(rouge_type: str, tokenizer: str) -> MetricFn:
    def compute(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
        out: list[MetricValue] = []
        for it in items:
            if it.reference is None:
                out.append({"value": None, "details": {"reason": "no reference"}})
                continue
            score = _text().rouge(
                it.prediction, it.reference, rouge_types=(rouge_type,), tokenizer=tokenizer, **config
            )[rouge_type]
            out.append({"value": score.fmeasure, "details": score.to_dict()})
        return out

    compute.__doc__ = (
        f"{rouge_type} F-measure (details: precision, recall, fmeasure), rouge-score's default scorer."
        if tokenizer == "default"
        else f"{rouge_type} F-measure with the Unicode-aware tokenizer (letters of every script count)."
    )
    return compute


# Version 2: the plain names became rouge-score's default tokenizer (version 1 used the Unicode one,
# whose rows migration runs/0005 moved to the _unicode names).
for _rt, _rt_unicode in zip(ROUGE_METRICS, ROUGE_UNICODE_METRICS, strict=True):
    register_metric(name=_rt, version="2", default_config=_ROUGE_DEFAULTS)(_make_rouge(_rt, "default"))
    register_metric(name=_rt_unicode, version="1", default_config=_ROUGE_UNICODE_DEFAULTS)(
        _make_rouge(_rt, "unicode")
    )


def _no_reference() -> MetricValue:
    return {"value": None, "details": {"reason": "no reference"}}


@register_metric(
    name="bleu", version="1", default_config={"tokenize": "13a", "lowercase": False, "smooth_method": "exp"}
)
def _bleu_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Sentence BLEU, 0-100, via sacrebleu."""
    return [
        {"value": _text().bleu(it.prediction, it.reference, **config), "details": {}}
        if it.reference is not None
        else _no_reference()
        for it in items
    ]


@register_metric(name="chrf", version="1", default_config={"char_order": 6, "word_order": 0, "beta": 2})
def _chrf_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Sentence chrF, 0-100, via sacrebleu (word_order=2: chrF++)."""
    return [
        {"value": _text().chrf(it.prediction, it.reference, **config), "details": {}}
        if it.reference is not None
        else _no_reference()
        for it in items
    ]


@register_metric(
    name="embedding_similarity",
    version="1",
    default_config={"batch_size": 64, "device": "cpu"},
    parallel=False,
)
def _embedding_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings of prediction and reference."""
    with_ref = [i for i, it in enumerate(items) if it.reference is not None]
    sims = _text().embedding_similarity(
        [items[i].prediction for i in with_ref], [_reference(items[i]) for i in with_ref], **config
    )
    out: list[MetricValue] = [_no_reference() for _ in items]
    for i, s in zip(with_ref, sims, strict=True):
        out[i] = {"value": s, "details": {"model": "all-MiniLM-L6-v2"}}
    return out


@register_metric(name="length", version="1", default_config={}, needs_reference=False)
def _length_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Length of the prediction in words (details: chars, words)."""
    out: list[MetricValue] = []
    for it in items:
        n = _text().text_length(it.prediction)
        out.append({"value": float(n.words), "details": {"chars": n.chars, "words": n.words}})
    return out


@register_metric(name="length_ratio", version="1", default_config={"unit": "words"})
def _length_ratio_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Prediction length / reference length (None when the reference is empty)."""
    out: list[MetricValue] = []
    for it in items:
        if it.reference is None:
            out.append(_no_reference())
            continue
        value = _text().length_ratio(it.prediction, it.reference, **config)
        out.append({"value": value, "details": {} if value is not None else {"reason": "empty reference"}})
    return out


@register_metric(
    name="compression_ratio", version="1", default_config={"unit": "chars"}, needs_reference=False
)
def _compression_metric(items: Sequence[Item], config: Mapping[str, Any]) -> list[MetricValue]:
    """Output length / input length (None without an input or with an empty one)."""
    out: list[MetricValue] = []
    for it in items:
        if it.input is None:
            out.append({"value": None, "details": {"reason": "no input"}})
            continue
        value = _text().compression_ratio(it.prediction, it.input, **config)
        out.append({"value": value, "details": {} if value is not None else {"reason": "empty input"}})
    return out
