"""Automatic scoring of a completed run: text metrics, adversarial checks and perplexity, and, when the
run asks for it, the suite's pending checks evaluated by the judge (evalhub.runs.judged_checks).

Each score is one MetricScore row keyed on (run, adapter, case, sample, metric, config hash). Scoring
first reads which of those rows exist and computes only the missing ones (a redelivered task or a
second call costs a query and writes nothing), and writes with `ignore_conflicts`, so two deliveries
racing still write nothing twice. `force=True` deletes the run's rows of that metric first, for a
recomputation with new code.

Text metrics and checks run on the `cpu` queue; perplexity and the judge load a model and run on `gpu`. Each
kind's state (queued, running, done, failed with the error) is kept in one RunScoring row, written
here only, so the run page, the API and the CLI can say whether a run's scores are complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from evalhub.audit.services import audit_record
from evalhub.errors import Conflict
from evalhub.runs.engine import configured_device
from evalhub.runs.hooks import on_scoring_finished
from evalhub.runs.models import MetricScore, Output, Run, RunScoring, RunStatus, ScoringKind, ScoringStatus
from evalhub.suites.models import Split
from metrics.registry import CHECKS_METRIC, PERPLEXITY_METRIC, TEXT_METRICS

log = logging.getLogger(__name__)

CHECKS_VERSION = "1"
PERPLEXITY_VERSION = "1"
PERPLEXITY_CONFIG: dict[str, Any] = {"add_bos": True, "max_length": 1024, "stride": 512, "batch_size": 8}
BATCH = 2000
ERROR_MAX_CHARS = 2000


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
        todo = {
            row[0]: {name for name, h in wanted.items() if (row[0], name, h) not in stored} for row in batch
        }
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
            if not results:  # only pending checks (kept for a judge): nothing to score here
                continue
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

    from evalhub.generation.loading import load_base_model, peft_attach, resolve_device, resolve_dtype
    from metrics.perplexity import score_perplexity as perplexity

    # The engine's device rule and loader: EVALHUB_DEVICE decides here as it does for generation.
    dev = resolve_device(device or configured_device())
    loaded = load_base_model(
        run.base_model.folder, dtype=resolve_dtype(None, dev), tokenizer_dir=run.base_model.tokenizer or None
    )
    tokenizer, base = loaded.tokenizer, loaded.model.to(dev)
    # A window longer than the model's context would score tokens at positions it never saw.
    window, stride = PERPLEXITY_CONFIG["max_length"], PERPLEXITY_CONFIG["stride"]
    context = getattr(base.config, "max_position_embeddings", None)
    if isinstance(context, int) and 2 <= context < window:
        window, stride = context, min(stride, context // 2)
    model: Any = None
    written = 0
    for adapter in adapters:
        name = f"a{adapter.pk}"
        model = peft_attach(model if model is not None else base, name, adapter.folder)
        model.set_adapter(name)
        result = perplexity(
            model,
            tokenizer,
            [reference for _, reference in cases],
            device=dev,
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


# ---- scoring state ----------------------------------------------------------------------------


def _scoring_set(*, run_id: int, kind: str, **values: Any) -> RunScoring:
    scoring, _ = RunScoring.objects.update_or_create(run_id=run_id, kind=kind, defaults=values)
    return scoring


def _error_text(exc: BaseException) -> str:
    """The exception's class and message, short enough for a page and an API answer."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def scoring_give_up(*, run_id: int, kind: str, exc: BaseException) -> None:
    """Record the kind failed with the error (a task gave up, or its send failed); never raise over the
    original error (the database may be what failed)."""
    log.error("%s scoring of run %s failed: %s", kind, run_id, _error_text(exc), exc_info=exc)
    try:
        _scoring_set(
            run_id=run_id,
            kind=kind,
            status=ScoringStatus.FAILED,
            error=_error_text(exc),
            finished_at=timezone.now(),
        )
    except Exception:
        log.exception("could not record the failed %s scoring of run %s", kind, run_id)
        return
    try:
        _finished_check(run_id)
    except Exception:
        log.exception("could not check whether run %s's scoring finished", run_id)


def _score_judge_checks(*, run_id: int, force: bool = False) -> int:
    from evalhub.runs.judged_checks import score_judge_checks

    return score_judge_checks(run_id=run_id, force=force)


def _scorer(kind: str) -> Callable[..., int]:
    # Looked up at call time, so a test can replace one scorer.
    scorers: dict[str, Callable[..., int]] = {
        ScoringKind.TEXT: score_text,
        ScoringKind.PERPLEXITY: score_perplexity,
        ScoringKind.JUDGE_CHECKS: _score_judge_checks,
    }
    return scorers[kind]


def run_scoring_kinds(run: Run) -> tuple[str, ...]:
    """The kinds of scoring a run asks for: text and perplexity always, the judge's checks on request."""
    kinds: tuple[str, ...] = (ScoringKind.TEXT, ScoringKind.PERPLEXITY)
    return (*kinds, ScoringKind.JUDGE_CHECKS) if run.judge_checks else kinds


def run_score_kind(
    *, run_id: int, kind: str, force: bool = False, retry_on: tuple[type[BaseException], ...] = ()
) -> int:
    """Score one kind of a completed run in this process, recording running, then done or failed.

    An exception of a type in `retry_on` is re-raised with the state left running: the task that
    passes it retries. Any other exception is recorded as failed (and logged) and re-raised.
    """
    _scoring_set(
        run_id=run_id,
        kind=kind,
        status=ScoringStatus.RUNNING,
        error="",
        started_at=timezone.now(),
        finished_at=None,
    )
    try:
        written = _scorer(kind)(run_id=run_id, force=force)
    except retry_on:
        log.warning("%s scoring of run %s hit a transient error; it is retried", kind, run_id, exc_info=True)
        raise
    except Exception as exc:
        scoring_give_up(run_id=run_id, kind=kind, exc=exc)
        raise
    _scoring_set(
        run_id=run_id, kind=kind, status=ScoringStatus.DONE, written=written, finished_at=timezone.now()
    )
    _finished_check(run_id)
    return written


def _finished_check(run_id: int) -> None:
    """Call the scoring-finished hooks when no kind is queued or running any more (after the commit).

    Two kinds finishing at once may both call them: the hooks are idempotent (they lock their own rows).
    """
    unfinished = RunScoring.objects.filter(run_id=run_id, status__in=[ScoringStatus.QUEUED, ScoringStatus.RUNNING])
    if not unfinished.exists():
        transaction.on_commit(lambda: on_scoring_finished(run_id))


def run_score(*, run_id: int, force: bool = False) -> dict[str, int]:
    """Score a completed run in this process (the embedded mode, the demo and the CLI use it).

    Raises the first scorer's error after recording it; the other kind is still scored first.
    """
    run = Run.objects.get(pk=run_id)
    if run.status != RunStatus.COMPLETED:
        log.info("run %s is %s; scoring waits for completion", run_id, run.status)
        return {}
    written: dict[str, int] = {}
    error: Exception | None = None
    for kind in run_scoring_kinds(run):
        try:
            written[kind] = run_score_kind(run_id=run_id, kind=kind, force=force)
        except Exception as exc:
            error = error or exc
    if error is not None:
        raise error
    return written


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

    Call it after the commit that made the run completed (the hook runs on commit). Each kind is
    marked queued before its task is sent. A task that cannot be sent (the broker is down), or that
    fails when it runs here, leaves its kind failed with the error, and the other kind is still sent:
    nothing is raised, the state says what happened.
    """
    # Every kind is queued before any is sent, so one finishing in process does not look like the last.
    kinds = run_scoring_kinds(Run.objects.get(pk=run_id))
    for kind in kinds:
        _scoring_queued(run_id=run_id, kind=kind)
    for kind in kinds:
        _scoring_deliver(run_id=run_id, kind=kind, force=force)


def scoring_send(*, run_id: int, kind: str, force: bool = False) -> None:
    """Mark one kind of the run's scoring queued and send its task (see `score_enqueue`); the watchdog
    sends a kind again this way when its message was lost (a broker restarted without persistence)."""
    _scoring_queued(run_id=run_id, kind=kind)
    _scoring_deliver(run_id=run_id, kind=kind, force=force)


def _scoring_queued(*, run_id: int, kind: str) -> None:
    _scoring_set(
        run_id=run_id,
        kind=kind,
        status=ScoringStatus.QUEUED,
        error="",
        written=0,
        started_at=None,
        finished_at=None,
    )


def _scoring_deliver(*, run_id: int, kind: str, force: bool) -> None:
    from evalhub.runs import tasks as run_tasks

    tasks: dict[str, Any] = {
        ScoringKind.PERPLEXITY: run_tasks.score_perplexity,
        ScoringKind.JUDGE_CHECKS: run_tasks.score_judge_checks,
    }
    task = tasks.get(kind, run_tasks.score_text)
    try:
        task.delay(run_id=run_id, force=force)
    except Exception as exc:
        # In process the task has recorded its failure already; a send that failed has not.
        if RunScoring.objects.filter(run_id=run_id, kind=kind, status=ScoringStatus.QUEUED).exists():
            scoring_give_up(run_id=run_id, kind=kind, exc=exc)


def run_rescore(*, run: Run, force: bool = False, actor: Any = None) -> None:
    """Score a completed run again on request (API, web button): the missing scores, or all with force.

    Raises Conflict for a run that has not completed. With no broker the scoring runs before this
    returns; the returned states say how it went (a failure is a state, not an exception).
    """
    check_run_scorable(run=run)
    audit_record(actor=actor, action="run.score", obj=run, after={"force": force})
    score_enqueue(run_id=run.pk, force=force)
