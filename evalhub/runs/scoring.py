"""Automatic scoring of a completed run: text metrics, adversarial checks and perplexity.

Each score is one MetricScore row keyed on (run, adapter, case, sample, metric, config hash). Scoring
first reads which of those rows exist and computes only the missing ones (a redelivered task or a
second call costs a query and writes nothing), and writes with `ignore_conflicts`, so two deliveries
racing still write nothing twice. `force=True` deletes the run's rows of that metric first, for a
recomputation with new code.

Text metrics and checks run on the `cpu` queue; perplexity loads the model and runs on `gpu`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from evalhub.errors import Conflict
from evalhub.runs.models import MetricScore, Output, Run, RunStatus
from evalhub.suites.models import Split

log = logging.getLogger(__name__)

TEXT_METRICS: tuple[str, ...] = (
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "bleu",
    "chrf",
    "embedding_similarity",
    "length_ratio",
    "compression_ratio",
)
CHECKS_METRIC = "checks"
CHECKS_VERSION = "1"
PERPLEXITY_METRIC = "perplexity"
PERPLEXITY_VERSION = "1"
PERPLEXITY_CONFIG: dict[str, Any] = {"add_bos": True, "max_length": 1024, "stride": 512, "batch_size": 8}
BATCH = 2000


def _save(rows: list[MetricScore]) -> int:
    """Insert rows that are not stored yet; returns how many were new when the caller read them."""
    if rows:
        MetricScore.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def run_is_scorable(*, run_id: int) -> bool:
    """Whether the run exists and is completed: a task delivered for anything else does nothing."""
    return Run.objects.filter(pk=run_id, status=RunStatus.COMPLETED).exists()


def check_run_scorable(*, run: Run) -> None:
    """Refuse to score a run whose outputs are not final (`manage.py score_run` asks this first)."""
    if run.status != RunStatus.COMPLETED:
        raise Conflict(
            f"Run {run.pk} is {run.get_status_display().lower()}; it is scored once it has completed."
        )


def _config_hash(config: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _outputs(run: Run) -> Iterable[list[tuple[Any, ...]]]:
    rows = (
        Output.objects.filter(run=run)
        .order_by("id")
        .values_list(
            "id",
            "adapter_id",
            "case_id",
            "sample",
            "text",
            "case__reference",
            "case__input",
            "case__expected",
        )
    )
    batch: list[tuple[Any, ...]] = []
    for row in rows.iterator(chunk_size=BATCH):
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def score_text(
    *, run_id: int, metrics: Sequence[str] = TEXT_METRICS, force: bool = False, workers: int | None = None
) -> int:
    """Reference-based text metrics for every output whose case has a reference, plus adversarial checks."""
    from metrics.checks import run_checks
    from metrics.registry import Item, get_metric, score_many

    run = Run.objects.get(pk=run_id)
    resolved = {name: get_metric(name) for name in metrics}
    hashes = {name: metric.config_hash() for name, metric in resolved.items()}
    checks_hash = _config_hash({"metric": CHECKS_METRIC, "version": CHECKS_VERSION})
    if force:
        MetricScore.objects.filter(run=run, metric__in=[*metrics, CHECKS_METRIC]).delete()
    wanted = {**hashes, CHECKS_METRIC: checks_hash}
    written = 0
    for batch in _outputs(run):
        stored = set(
            MetricScore.objects.filter(
                output_id__in=[row[0] for row in batch], metric__in=list(wanted)
            ).values_list("output_id", "metric", "config_hash")
        )
        todo = {row[0]: {name for name, h in wanted.items() if (row[0], name, h) not in stored} for row in batch}
        with_reference = [row for row in batch if row[5] and todo[row[0]] - {CHECKS_METRIC}]
        scored = score_many(
            [Item(row[4], row[5], row[6]) for row in with_reference], list(metrics), workers=workers
        )
        rows = [
            MetricScore(
                run_id=run_id,
                adapter_id=row[1],
                case_id=row[2],
                output_id=row[0],
                sample=row[3],
                metric=name,
                metric_version=resolved[name].version,
                config_hash=hashes[name],
                value=value["value"],
                details=value["details"],
            )
            for row, values in zip(with_reference, scored, strict=True)
            for name, value in values.items()
        ]
        for row in batch:
            expected = row[7] or []
            if not expected or CHECKS_METRIC not in todo[row[0]]:
                continue
            results = run_checks(row[4], expected, input_text=row[6])
            passed = sum(result.passed for result in results)
            rows.append(
                MetricScore(
                    run_id=run_id,
                    adapter_id=row[1],
                    case_id=row[2],
                    output_id=row[0],
                    sample=row[3],
                    metric=CHECKS_METRIC,
                    metric_version=CHECKS_VERSION,
                    config_hash=checks_hash,
                    value=passed / len(results),
                    passed=passed == len(results),
                    details={
                        "results": [{"type": r.type, "passed": r.passed, "reason": r.reason} for r in results]
                    },
                )
            )
        # A partly scored output is scored again in full; only its missing rows are written.
        rows = [row for row in rows if (row.output_id, row.metric, row.config_hash) not in stored]
        with transaction.atomic():
            written += _save(rows)
    return written


def score_perplexity(*, run_id: int, force: bool = False, device: str | None = None) -> int:
    """Perplexity of each adapter of the run on the references of the held-out real split.

    An adapter whose every held-out case is stored already is skipped, so a redelivered task
    loads no model.
    """
    run = Run.objects.select_related("base_model").get(pk=run_id)
    cases = list(
        run.suite_version.cases.filter(split=Split.HELDOUT)
        .exclude(reference="")
        .order_by("position")
        .values_list("id", "reference")
    )
    if force:
        MetricScore.objects.filter(run=run, metric=PERPLEXITY_METRIC).delete()
    if not cases:
        return 0
    config_hash = _config_hash(
        {"metric": PERPLEXITY_METRIC, "version": PERPLEXITY_VERSION, **PERPLEXITY_CONFIG}
    )
    stored = set(
        MetricScore.objects.filter(run=run, metric=PERPLEXITY_METRIC, config_hash=config_hash).values_list(
            "adapter_id", "case_id"
        )
    )
    adapters = [
        run_adapter.adapter
        for run_adapter in run.run_adapters.select_related("adapter").order_by("pk")
        if any((run_adapter.adapter_id, case_id) not in stored for case_id, _ in cases)
    ]
    if not adapters:
        return 0

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metrics.perplexity import score_perplexity as perplexity

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(run.base_model.tokenizer)
    base: Any = AutoModelForCausalLM.from_pretrained(run.base_model.folder, dtype=dtype)
    base = base.to(device).eval()
    # A window longer than the model's context would score tokens at positions it never saw.
    window, stride = PERPLEXITY_CONFIG["max_length"], PERPLEXITY_CONFIG["stride"]
    context = getattr(base.config, "max_position_embeddings", None)
    if isinstance(context, int) and 2 <= context < window:
        window, stride = context, min(stride, context // 2)
    model: Any = None
    written = 0
    for adapter in adapters:
        name = f"a{adapter.pk}"
        if model is None:
            model = PeftModel.from_pretrained(base, adapter.folder, adapter_name=name).eval()
        else:
            model.load_adapter(adapter.folder, adapter_name=name)
        model.set_adapter(name)
        result = perplexity(
            model,
            tokenizer,
            [reference for _, reference in cases],
            device=device,
            batch_size=PERPLEXITY_CONFIG["batch_size"],
            max_length=window,
            stride=stride,
            add_bos=PERPLEXITY_CONFIG["add_bos"],
        )
        rows = [
            MetricScore(
                run_id=run_id,
                adapter_id=adapter.pk,
                case_id=case_id,
                output=None,
                sample=0,
                metric=PERPLEXITY_METRIC,
                metric_version=PERPLEXITY_VERSION,
                config_hash=config_hash,
                value=text.perplexity,
                details={
                    "nll_sum": text.nll_sum,
                    "n_tokens": text.n_tokens,
                    "corpus_perplexity": result.perplexity,
                    "window": window,
                    "stride": stride,
                },
            )
            for (case_id, _), text in zip(cases, result.texts, strict=True)
            if (adapter.pk, case_id) not in stored
        ]
        with transaction.atomic():
            written += _save(rows)
    return written


def run_score(*, run_id: int, force: bool = False) -> dict[str, int]:
    """Score a completed run in this process (the embedded mode, the demo and the CLI use it)."""
    run = Run.objects.get(pk=run_id)
    if run.status != RunStatus.COMPLETED:
        log.info("run %s is %s; scoring waits for completion", run_id, run.status)
        return {}
    return {
        "text": score_text(run_id=run_id, force=force),
        "perplexity": score_perplexity(run_id=run_id, force=force),
    }


def run_score_enqueue(*, run_id: int) -> None:
    """The run-completed hook: text metrics on the cpu queue, perplexity on the gpu queue.

    `EVALHUB_SCORE_ON_COMPLETE=false` turns automatic scoring off (tests of generation alone use it).
    """
    from django.conf import settings

    if not getattr(settings, "EVALHUB_SCORE_ON_COMPLETE", True):
        return
    score_enqueue(run_id=run_id)


def score_enqueue(*, run_id: int, force: bool = False) -> None:
    """Send the run's scoring tasks to the workers (in this process when no broker is configured).

    Call it after the commit that made the run completed (the hook runs on commit).
    """
    from evalhub.runs.scoring_tasks import score_perplexity_task, score_text_task

    score_text_task.delay(run_id=run_id, force=force)
    score_perplexity_task.delay(run_id=run_id, force=force)
