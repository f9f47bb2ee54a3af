"""Writes for runs: create, start (adapter sanity, chunking), generate a chunk, cancel, resume, fail.

A run is split into chunks of cases; each chunk is one Celery task that generates every adapter
and sample of its cases. Writes are idempotent by construction: outputs are unique on (run,
adapter, case, sample) and a chunk generates only the outputs its run does not have yet, so a
redelivered or repeated task writes nothing twice. Counters are recounted or incremented under a
lock on the run row, so two workers finishing batches at once cannot lose an update.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.catalog.inspection import inspect_adapter_folder
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.errors import Conflict, ValidationFailed
from evalhub.generation import (
    AdapterError,
    GenerationConfig,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    available_backends,
)
from evalhub.generation.folders import base_precision_note
from evalhub.runs import progress
from evalhub.runs.engine import (
    EngineSpec,
    configured_device,
    configured_quantization,
    engine_for,
    engine_release,
)
from evalhub.runs.hooks import on_run_completed, on_run_failed
from evalhub.runs.models import AdapterRole, ChunkStatus, Output, Run, RunAdapter, RunChunk, RunStatus
from evalhub.suites.models import Case, SuiteVersion
from evalhub.suites.services import suite_version_lock

log = logging.getLogger(__name__)

REJECTED = "rejected"
#: A chunk delivered this many times without finishing fails its run: each delivery killed its
#: worker (out of memory, the hard time limit), so redelivering it forever would stall the queue.
MAX_CHUNK_ATTEMPTS = 5


class RunStopped(Exception):
    """Raised inside a chunk when its run is no longer running (cancelled or failed meanwhile)."""


# ---- checks ------------------------------------------------------------------------------------


def check_generation_config(data: dict[str, Any] | None, *, samples: int) -> GenerationConfig:
    """The engine's config from a run's settings; `samples` (the run's field) wins over data's."""
    values = dict(data or {})
    values["samples"] = samples
    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]] if values["stop"] else []
    try:
        return GenerationConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"Invalid generation settings: {exc}", fields={"generation_config": [str(exc)]}
        ) from exc


def check_adapter_folders(*, base_model: BaseModel, adapters: Iterable[Adapter]) -> None:
    """Cheap static checks (no torch): folders exist and the adapter files are the ones registered."""
    if not (Path(base_model.folder) / "config.json").is_file():
        raise ValidationFailed(
            f"Base model {base_model.name}: {base_model.folder} is missing or has no config.json.",
            fields={"base_model": ["Folder missing."]},
        )
    for adapter in adapters:
        if adapter.base_model_id != base_model.pk:
            raise ValidationFailed(
                f"Adapter {adapter.label} is registered on base model {adapter.base_model.name}, "
                f"not {base_model.name}.",
                fields={"adapters": [f"{adapter.label}: another base model."]},
            )
        try:
            info = inspect_adapter_folder(adapter.folder)
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"Adapter {adapter.label}: {exc}", fields={"adapters": [f"{adapter.label}: {exc}"]}
            ) from exc
        if info.weights_hash != adapter.weights_hash:
            raise ValidationFailed(
                f"Adapter {adapter.label}: the weights in {adapter.folder} changed since registration "
                f"(hash {info.weights_hash[:12]}, registered {adapter.weights_hash[:12]}); register them "
                "as a new version.",
                fields={"adapters": [f"{adapter.label}: weights changed."]},
            )


# ---- create and start -------------------------------------------------------------------------


def run_create(
    *,
    project: Project,
    suite_version: SuiteVersion,
    base_model: BaseModel,
    adapters: Sequence[Adapter],
    baseline: Adapter | None = None,
    backend: str = "hf",
    generation_config: dict[str, Any] | None = None,
    samples_per_case: int = 1,
    force_regenerate: bool = False,
    judge_checks: bool = False,
    judge_adapter: Adapter | None = None,
    name: str = "",
    actor: Any = None,
) -> Run:
    """Validate a run's settings and store it (PENDING); `run_start` starts it.

    The baseline, when given, is one more adapter of the run with the role baseline. Every
    adapter must be on `base_model` in `project`, with its files unchanged since registration.
    `judge_checks` asks for the suite's pending checks to be evaluated by the judge once the outputs
    are final: the base model, with `judge_adapter` when given (on the same base model).
    """
    if suite_version.suite.project_id != project.pk:
        raise ValidationFailed(
            "The suite belongs to another project.", fields={"suite_version": ["Not in this project."]}
        )
    if base_model.project_id != project.pk:
        raise ValidationFailed(
            "The base model belongs to another project.", fields={"base_model": ["Not in this project."]}
        )
    if baseline is not None and baseline.pk in {a.pk for a in adapters}:
        # Said, not silently deduplicated: the user meant two different adapters.
        message = (
            f"{baseline.label} is both a candidate and the baseline: drop it from the candidates"
            " or choose another baseline."
        )
        raise ValidationFailed(message, fields={"baseline": [message]})
    chosen: dict[int, Adapter] = {}
    for adapter in [*adapters, *([baseline] if baseline else [])]:
        if adapter.project_id != project.pk:
            raise ValidationFailed(
                f"Adapter {adapter.label} belongs to another project.",
                fields={"adapters": [f"{adapter.label}: not in this project."]},
            )
        chosen[adapter.pk] = adapter
    if not chosen:
        raise ValidationFailed("A run needs at least one adapter.", fields={"adapters": ["Choose one or more."]})
    if backend not in available_backends():
        raise ValidationFailed(
            f"Unknown backend {backend!r}; choose one of {', '.join(available_backends())}.",
            fields={"backend": ["Unknown backend."]},
        )
    if samples_per_case < 1:
        raise ValidationFailed("samples_per_case must be at least 1.", fields={"samples_per_case": [">= 1"]})
    config = check_generation_config(generation_config, samples=samples_per_case)
    if not Case.objects.filter(version=suite_version).exists():
        raise ValidationFailed("The suite version has no cases.", fields={"suite_version": ["No cases."]})
    check_adapter_folders(base_model=base_model, adapters=chosen.values())
    _check_judge_adapter(project=project, base_model=base_model, judge_checks=judge_checks, adapter=judge_adapter)

    with transaction.atomic():
        run = Run.objects.create(
            project=project,
            name=name.strip() or f"{suite_version} · {', '.join(a.label for a in chosen.values())}"[:200],
            suite_version=suite_version,
            base_model=base_model,
            backend=backend,
            generation_config=config.to_dict(),
            config_hash=config.config_hash(),
            samples_per_case=samples_per_case,
            force_regenerate=force_regenerate,
            judge_checks=judge_checks,
            judge_adapter=judge_adapter if judge_checks else None,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        RunAdapter.objects.bulk_create(
            RunAdapter(
                run=run,
                adapter=adapter,
                role=AdapterRole.BASELINE if baseline is not None and adapter.pk == baseline.pk
                else AdapterRole.CANDIDATE,
            )
            for adapter in chosen.values()
        )
        suite_version_lock(version=suite_version, actor=actor, note=f"used by run {run.pk}")
        audit_record(
            actor=actor,
            action="run.create",
            obj=run,
            after={
                "suite_version": suite_version.pk,
                "adapters": [a.label for a in chosen.values()],
                "baseline": baseline.label if baseline else None,
                "backend": backend,
                "config_hash": run.config_hash,
                "force_regenerate": force_regenerate,
                "judge_checks": judge_checks,
                "judge_adapter": judge_adapter.label if judge_adapter else None,
            },
        )
    return run


def _check_judge_adapter(
    *, project: Project, base_model: BaseModel, judge_checks: bool, adapter: Adapter | None
) -> None:
    """The judge's adapter: only with judge_checks, in the project, on the run's base model, files intact."""
    if adapter is None:
        return
    if not judge_checks:
        message = "A judge adapter is used only when the pending checks are evaluated by the judge."
        raise ValidationFailed(message, fields={"judge_adapter": [message]})
    if adapter.project_id != project.pk:
        raise ValidationFailed(
            f"Adapter {adapter.label} belongs to another project.",
            fields={"judge_adapter": [f"{adapter.label}: not in this project."]},
        )
    if adapter.base_model_id != base_model.pk:
        message = f"The judge adapter {adapter.label} is not on the run's base model {base_model.name}."
        raise ValidationFailed(message, fields={"judge_adapter": [message]})
    check_adapter_folders(base_model=base_model, adapters=[adapter])


def _enqueue_prepare(run_id: int) -> None:
    from evalhub.runs.tasks import prepare_run

    transaction.on_commit(lambda: prepare_run.delay(run_id=run_id))


def _enqueue_chunks(run_id: int, indexes: Sequence[int]) -> None:
    from evalhub.runs.tasks import generate_chunk

    def send() -> None:
        for index in indexes:
            generate_chunk.delay(run_id=run_id, chunk_index=index)

    if indexes:
        transaction.on_commit(send)


def run_start(*, run: Run, actor: Any = None) -> Run:
    """Start a PENDING run: re-check the adapter folders, then enqueue the sanity check and chunks.

    Without a broker (the embedded default) the whole run executes in this call, after the commit.
    A missing or changed adapter fails the run here, before any work is queued.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.PENDING:
            raise Conflict(f"Run {run.pk} is {run.get_status_display().lower()}; only a pending run starts.")
        adapters = [ra.adapter for ra in run.run_adapters.select_related("adapter", "adapter__base_model")]
        try:
            check_adapter_folders(base_model=run.base_model, adapters=adapters)
        except ValidationFailed as exc:
            _fail_locked(run, f"Not started: {exc}")
            audit_record(actor=actor, action="run.start", obj=run, after={"status": run.status}, note=str(exc))
            return run
        run.status = RunStatus.RUNNING
        run.started_at = timezone.now()
        run.error = ""
        run.save(update_fields=["status", "started_at", "error"])
        audit_record(actor=actor, action="run.start", obj=run, after={"status": run.status})
        _enqueue_prepare(run.pk)
    run.refresh_from_db()
    return run


def _plan_chunks(run: Run, case_ids: list[int], units_per_case: int) -> list[RunChunk]:
    size = max(1, int(getattr(settings, "EVALHUB_GENERATION_CHUNK_SIZE", 32)))
    per_chunk = max(1, size // units_per_case)
    return [
        RunChunk(
            run=run,
            index=index,
            case_ids=case_ids[start : start + per_chunk],
            size=len(case_ids[start : start + per_chunk]) * units_per_case,
        )
        for index, start in enumerate(range(0, len(case_ids), per_chunk))
    ]


def sanity_check(*, run: Run) -> dict[str, dict[str, Any]]:
    """Load every adapter on the base model and check that it changes the model's logits.

    Returns label -> sanity record; raises the engine's AdapterError / GenerationError naming the
    adapter that is missing, incompatible or ineffective.
    """
    from evalhub.generation.sanity import check_adapters

    # On the device and in the dtype generation uses: a large model in float32 on the CPU would not fit.
    run_adapters = {ra.adapter.label: ra.adapter for ra in run.run_adapters.select_related("adapter")}
    adapters = {label: adapter.folder for label, adapter in run_adapters.items()}
    reports = check_adapters(
        run.base_model.folder,
        adapters,
        device=configured_device(),
        dtype=None,
        quantization=configured_quantization(),
    )
    checked_at = timezone.now().isoformat()
    return {
        label: {
            "ok": True,
            # The precision generation runs the base in (the same device, dtype and quantisation), and
            # the adapter's training quantisation where it differs: "bf16 (adapter trained on nf4)".
            "base_precision": base_precision_note(report.base_precision, run_adapters[label].base_quantization),
            "weights_sha256": report.weights_sha256,
            "modules": report.modules,
            "max_rank": report.max_rank,
            "max_logit_delta": report.max_logit_delta,
            "checked_at": checked_at,
        }
        for label, report in reports.items()
    }


def run_prepare(*, run_id: int) -> None:
    """Task body: the adapter sanity check, then the chunks. Harmless when delivered twice.

    Any adapter problem fails the run with the engine's message before any output is generated.
    """
    run = Run.objects.select_related("base_model", "suite_version").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return
    existing = list(run.chunks.exclude(status=ChunkStatus.DONE).values_list("index", flat=True))
    if run.chunks.exists():  # a redelivery after the chunks were made: just make sure they run
        _enqueue_chunks(run.pk, existing)
        return
    try:
        records = sanity_check(run=run)
    except (AdapterError, GenerationError) as exc:
        label = getattr(exc, "adapter", "")
        RunAdapter.objects.filter(run=run, adapter__in=_adapters_by_label(run, label)).update(
            sanity={"ok": False, "error": str(exc), "checked_at": timezone.now().isoformat()}
        )
        run_fail(run_id=run.pk, error=f"Adapter sanity check failed, nothing was generated: {exc}")
        return
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING or run.chunks.exists():
            return
        run_adapters = list(run.run_adapters.select_related("adapter"))
        for ra in run_adapters:
            ra.sanity = records.get(ra.adapter.label, {})
        RunAdapter.objects.bulk_update(run_adapters, ["sanity"])
        case_ids = list(Case.objects.filter(version_id=run.suite_version_id).order_by("position", "pk")
                        .values_list("pk", flat=True))
        units = len(run_adapters) * run.samples_per_case
        chunks = RunChunk.objects.bulk_create(_plan_chunks(run, case_ids, units))
        run.total = len(case_ids) * units
        run.save(update_fields=["total"])
        _enqueue_chunks(run.pk, [c.index for c in chunks])
    progress.notify(run_id)


def _adapters_by_label(run: Run, label: str) -> list[int]:
    return [ra.adapter_id for ra in run.run_adapters.select_related("adapter") if ra.adapter.label == label]


# ---- generation --------------------------------------------------------------------------------


def output_cache_key(
    *, backend: str, base_hash: str, adapter_hash: str, case_hash: str, generation_hash: str, sample: int
) -> str:
    """The content address of one output: same weights, case, settings and sample, same output."""
    parts = [backend, base_hash, adapter_hash, case_hash, generation_hash, str(sample)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def generation_hash(config: GenerationConfig) -> str:
    """The config hash without the sample count: sample 0 of a 1-sample and a 5-sample run match."""
    return dataclasses.replace(config, samples=1).config_hash()


@dataclasses.dataclass(frozen=True)
class _Item:
    adapter_id: int
    case_id: int
    sample: int


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lease_chunk(run_id: int, chunk_index: int) -> RunChunk | None:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        chunk = RunChunk.objects.select_for_update().get(run_id=run_id, index=chunk_index)
        if run.status != RunStatus.RUNNING or chunk.status == ChunkStatus.DONE:
            return None
        if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            _fail_locked(
                run,
                f"Chunk {chunk.index} was started {chunk.attempts} times without finishing (last on "
                f"{chunk.leased_by}); its worker probably died each time (out of memory or the hard time "
                "limit). Try a smaller EVALHUB_GENERATION_CHUNK_SIZE or max_new_tokens, then resume.",
            )
            return None
        chunk.status = ChunkStatus.RUNNING
        chunk.attempts = F("attempts") + 1
        chunk.leased_by = _worker_name()
        chunk.leased_at = timezone.now()
        chunk.save(update_fields=["status", "attempts", "leased_by", "leased_at"])
        chunk.refresh_from_db()
        return chunk


def _outputs_save(*, run_id: int, rows: list[Output], seconds: float = 0.0) -> str:
    """Insert the rows the run does not have yet and update its counters; returns the run status."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("pk", "status").get(pk=run_id)
        have = set(
            Output.objects.filter(run_id=run_id, case_id__in={r.case_id for r in rows}).values_list(
                "adapter_id", "case_id", "sample"
            )
        )
        new = [r for r in rows if (r.adapter_id, r.case_id, r.sample) not in have]
        # ignore_conflicts is the second line of defence; the lock above is the first.
        Output.objects.bulk_create(new, ignore_conflicts=True)
        reused = sum(1 for r in new if r.reused_from_id is not None)
        tokens = sum(r.output_tokens for r in new if r.reused_from_id is None)
        Run.objects.filter(pk=run_id).update(
            done=Output.objects.filter(run_id=run_id).count(),
            reused=F("reused") + reused,
            output_tokens=F("output_tokens") + tokens,
            generation_seconds=F("generation_seconds") + (seconds if new else 0.0),
        )
        status = run.status
    progress.notify(run_id)
    return status


def _reuse(run: Run, missing: dict[_Item, str]) -> list[Output]:
    """Copies of earlier outputs (same project) with the same cache key, one per missing item."""
    sources: dict[str, Output] = {}
    earlier = (
        Output.objects.filter(cache_key__in=set(missing.values()), run__project_id=run.project_id)
        .exclude(run_id=run.pk)
        .exclude(finish_reason=REJECTED)
        .order_by("created_at", "pk")
    )
    for output in earlier:
        sources.setdefault(output.cache_key, output)
    copies = []
    for item, key in missing.items():
        source = sources.get(key)
        if source is None:
            continue
        copies.append(
            Output(
                run_id=run.pk,
                adapter_id=item.adapter_id,
                case_id=item.case_id,
                sample=item.sample,
                text=source.text,
                prompt_tokens=source.prompt_tokens,
                output_tokens=source.output_tokens,
                finish_reason=source.finish_reason,
                latency_ms=source.latency_ms,
                backend=source.backend,
                seed=source.seed,
                config_hash=run.config_hash,
                cache_key=key,
                truncated=source.truncated,
                error=source.error,
                reused_from_id=source.reused_from_id or source.pk,
            )
        )
    return copies


def run_generate_chunk(*, run_id: int, chunk_index: int) -> None:
    """Task body: generate what chunk `chunk_index` of the run still lacks, saving batch by batch.

    Checks the run's status first (a cancelled run, a finished chunk or a redelivery of either
    does nothing), reuses cached outputs unless the run forces regeneration, keeps the loaded
    engine for the next chunk, and completes the run when its last chunk is done. An adapter or
    engine error fails the run with the engine's message.
    """
    chunk = _lease_chunk(run_id, chunk_index)
    if chunk is None:
        return
    run = Run.objects.select_related("base_model").get(pk=run_id)
    config = GenerationConfig.from_dict(run.generation_config)
    gen_hash = generation_hash(config)
    run_adapters = list(run.run_adapters.select_related("adapter").order_by("pk"))
    adapters = {ra.adapter_id: ra.adapter for ra in run_adapters}
    cases = {c.pk: c for c in Case.objects.filter(pk__in=chunk.case_ids).only("pk", "input", "content_hash")}
    have = set(
        Output.objects.filter(run_id=run_id, case_id__in=chunk.case_ids).values_list(
            "adapter_id", "case_id", "sample"
        )
    )
    missing: dict[_Item, str] = {}
    for case_id in chunk.case_ids:
        for adapter_id, adapter in adapters.items():
            for sample in range(run.samples_per_case):
                if (adapter_id, case_id, sample) in have:
                    continue
                missing[_Item(adapter_id, case_id, sample)] = output_cache_key(
                    backend=run.backend,
                    base_hash=run.base_model.weights_hash,
                    adapter_hash=adapter.weights_hash,
                    case_hash=cases[case_id].content_hash,
                    generation_hash=gen_hash,
                    sample=sample,
                )
    try:
        if missing and not run.force_regenerate:
            copies = _reuse(run, missing)
            if copies:
                if _outputs_save(run_id=run_id, rows=copies) != RunStatus.RUNNING:
                    raise RunStopped
                for copy in copies:
                    missing.pop(_Item(copy.adapter_id, copy.case_id, copy.sample), None)
        if missing:
            _generate(run, config, adapters, cases, missing)
    except RunStopped:
        RunChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING).update(status=ChunkStatus.PENDING)
        return
    except (AdapterError, GenerationError) as exc:
        engine_release()
        run_fail(run_id=run_id, error=f"Generation failed in chunk {chunk_index}: {exc}")
        return
    _chunk_finish(run_id=run_id, chunk=chunk)


def _generate(
    run: Run,
    config: GenerationConfig,
    adapters: dict[int, Adapter],
    cases: dict[int, Case],
    missing: dict[_Item, str],
) -> None:
    labels = {adapter_id: adapter.label for adapter_id, adapter in adapters.items()}
    by_label = {label: adapter_id for adapter_id, label in labels.items()}
    spec = EngineSpec(
        backend=run.backend,
        base_folder=run.base_model.folder,
        base_hash=run.base_model.weights_hash,
        adapters=frozenset((a.label, a.folder, a.weights_hash) for a in adapters.values()),
    )
    # The request key is the case's content hash, so a sample's seed depends on the case's content
    # (not on database ids) and every adapter sees the same seed for the same case and sample.
    cases_by_hash: dict[str, list[int]] = {}
    for case_id in {item.case_id for item in missing}:
        cases_by_hash.setdefault(cases[case_id].content_hash, []).append(case_id)
    requests: dict[tuple[int, str, int], GenerationRequest] = {}
    for item in missing:
        case = cases[item.case_id]
        requests[(item.adapter_id, case.content_hash, item.sample)] = GenerationRequest(
            key=case.content_hash, prompt=case.input, adapter=labels[item.adapter_id], sample=item.sample
        )
    engine = engine_for(spec)
    clock = [time.perf_counter()]

    def save_batch(results: list[GenerationResult]) -> None:
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        rows = []
        for result in results:
            adapter_id = by_label[str(result.adapter)]
            for case_id in cases_by_hash.get(str(result.key), []):
                item = _Item(adapter_id, case_id, result.sample)
                if item in missing:
                    rows.append(_output_from_result(run, item, missing[item], result))
        if _outputs_save(run_id=run.pk, rows=rows, seconds=seconds) != RunStatus.RUNNING:
            raise RunStopped

    engine.generate(list(requests.values()), config, on_batch=save_batch)


def _output_from_result(run: Run, item: _Item, cache_key: str, result: GenerationResult) -> Output:
    return Output(
        run_id=run.pk,
        adapter_id=item.adapter_id,
        case_id=item.case_id,
        sample=item.sample,
        text=result.text,
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        finish_reason=result.finish_reason,
        latency_ms=result.latency_ms,
        backend=run.backend,
        seed=result.seed,
        config_hash=run.config_hash,
        cache_key=cache_key,
        truncated=result.truncated,
        error=result.error,
    )


def _chunk_finish(*, run_id: int, chunk: RunChunk) -> None:
    """Mark the chunk done if all its outputs exist, and complete the run after its last chunk."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        count = Output.objects.filter(run_id=run_id, case_id__in=chunk.case_ids).count()
        if count < chunk.size:
            if run.status == RunStatus.RUNNING:
                _fail_locked(run, f"Chunk {chunk.index} ended with {chunk.size - count} outputs missing.")
            return
        RunChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.DONE, finished_at=timezone.now())
        _complete_if_done_locked(run)


def _complete_if_done_locked(run: Run) -> None:
    """Assumes the run row is locked (select_for_update) inside a transaction."""
    if run.status != RunStatus.RUNNING or run.chunks.exclude(status=ChunkStatus.DONE).exists():
        return
    if not run.chunks.exists():
        return
    run.done = Output.objects.filter(run_id=run.pk).count()
    run.status = RunStatus.COMPLETED
    run.finished_at = timezone.now()
    run.save(update_fields=["done", "status", "finished_at"])
    audit_record(actor=None, action="run.complete", obj=run, after={"done": run.done, "reused": run.reused})
    run_id = run.pk
    transaction.on_commit(lambda: on_run_completed(run_id))


# ---- cancel, resume, fail ----------------------------------------------------------------------


def run_cancel(*, run: Run, actor: Any = None) -> Run:
    """Stop a pending or running run. Workers stop after their current batch; saved outputs stay."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            raise Conflict(f"Run {run.pk} is {run.get_status_display().lower()}; it cannot be cancelled.")
        before = {"status": run.status}
        run.status = RunStatus.CANCELLED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        audit_record(actor=actor, action="run.cancel", obj=run, before=before, after={"status": run.status})
    return run


def run_resume(*, run: Run, actor: Any = None) -> Run:
    """Continue a cancelled, failed or stalled running run: re-enqueue every chunk not done.

    Outputs already saved are kept, so only what is missing is generated. A run that failed
    before its chunks existed (for example on the adapter sanity check) is checked again.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in (RunStatus.PENDING, RunStatus.COMPLETED):
            raise Conflict(f"Run {run.pk} is {run.get_status_display().lower()}; there is nothing to resume.")
        before = {"status": run.status}
        run.status = RunStatus.RUNNING
        run.error = ""
        run.finished_at = None
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "started_at"])
        audit_record(actor=actor, action="run.resume", obj=run, before=before, after={"status": run.status})
        if not run.chunks.exists():
            _enqueue_prepare(run.pk)
        else:
            pending = list(run.chunks.exclude(status=ChunkStatus.DONE).values_list("index", flat=True))
            run.chunks.filter(index__in=pending).update(status=ChunkStatus.PENDING, attempts=0)
            _enqueue_chunks(run.pk, pending)
            if not pending:
                _complete_if_done_locked(run)
    run.refresh_from_db()
    return run


def _fail_locked(run: Run, error: str) -> None:
    run.status = RunStatus.FAILED
    run.error = error[:5000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    audit_record(actor=None, action="run.fail", obj=run, after={"status": run.status}, note=run.error)
    run_id, reason = run.pk, run.error
    transaction.on_commit(lambda: on_run_failed(run_id, reason))


def run_fail(*, run_id: int, error: str) -> None:
    """Mark a pending or running run failed with a message for the user (a task gave up)."""
    log.warning("run %s failed: %s", run_id, error)
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is not None and run.status in (RunStatus.PENDING, RunStatus.RUNNING):
            _fail_locked(run, error)
    progress.notify(run_id)
