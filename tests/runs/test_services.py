"""Runs through the services, executing in process (eager Celery): the behaviour a run promises."""

from __future__ import annotations

import shutil

import pytest
import torch

from evalhub.errors import Conflict, ValidationFailed
from evalhub.runs import engine, progress
from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunStatus
from evalhub.runs.selectors import run_progress
from evalhub.runs.services import (
    _outputs_save,
    run_cancel,
    run_create,
    run_generate_chunk,
    run_resume,
    run_start,
)
from evalhub.suites.models import SuiteVersion
from tests.runs.conftest import make_suite_version, words

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


@pytest.fixture(autouse=True)
def small_chunks(settings):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 4


def start(project, tiny, version, adapters=("alpha",), baseline="beta", **kwargs) -> Run:
    kwargs.setdefault("generation_config", {"max_new_tokens": 6})
    run = run_create(
        project=project,
        suite_version=version,
        base_model=tiny["base"],
        adapters=[tiny[name] for name in adapters],
        baseline=tiny[baseline] if baseline else None,
        **kwargs,
    )
    return run_start(run=run)


def keys(run: Run) -> list[tuple[int, int, int]]:
    return sorted(Output.objects.filter(run=run).values_list("adapter_id", "case_id", "sample"))


def test_a_run_stores_one_output_per_adapter_case_and_sample_with_its_details(project, tiny, suite_version):
    run = start(project, tiny, suite_version, samples_per_case=2,
                generation_config={"max_new_tokens": 6, "temperature": 0.8, "top_p": 0.9, "seed": 7})

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.total == 6 * 2 * 2 == run.done == Output.objects.filter(run=run).count()
    assert len(set(keys(run))) == run.total
    assert RunChunk.objects.filter(run=run).count() == 6  # 4 outputs per chunk = 1 case x 2 adapters x 2 samples
    assert not RunChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
    output = Output.objects.filter(run=run).first()
    assert output.text and output.prompt_tokens > 0 and 0 < output.output_tokens <= 6
    assert output.finish_reason in {"eos", "length", "stop_string", "stop"}
    assert output.latency_ms > 0 and output.backend == "hf" and output.seed is not None
    assert output.config_hash == run.config_hash and len(output.cache_key) == 64
    # Samples of one case differ in seed; adapters share the seed of a (case, sample).
    seeds = set(Output.objects.filter(run=run, case=output.case).values_list("sample", "seed"))
    assert len(seeds) == 2
    assert SuiteVersion.objects.get(pk=suite_version.pk).locked_at is not None


def test_sanity_results_and_roles_are_recorded(project, tiny, suite_version):
    run = start(project, tiny, suite_version)
    rows = {ra.adapter.name: ra for ra in run.run_adapters.select_related("adapter")}
    assert rows["beta"].role == "baseline" and rows["alpha"].role == "candidate"
    for ra in rows.values():
        assert ra.sanity["ok"] is True
        assert ra.sanity["max_logit_delta"] > 0
        assert len(ra.sanity["weights_sha256"]) == 64


def test_running_a_chunk_again_writes_nothing_twice(project, tiny, suite_version):
    run = start(project, tiny, suite_version)
    before = keys(run)
    # A redelivery of a finished chunk does nothing.
    run_generate_chunk(run_id=run.pk, chunk_index=0)
    # A redelivery of a chunk that died mid-way: its run still running, the chunk leased, some of
    # its outputs saved. It generates only what is missing.
    chunk = RunChunk.objects.get(run=run, index=1)
    lost = Output.objects.filter(run=run, case_id=chunk.case_ids[0]).order_by("pk").first()
    lost.delete()
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, done=run.total - 1)
    RunChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.RUNNING)
    run_generate_chunk(run_id=run.pk, chunk_index=1)
    run_generate_chunk(run_id=run.pk, chunk_index=1)

    run.refresh_from_db()
    assert keys(run) == before
    assert run.status == RunStatus.COMPLETED and run.done == run.total
    assert RunChunk.objects.get(pk=chunk.pk).attempts == 2


def test_saving_the_same_outputs_twice_keeps_one_copy(project, tiny, suite_version):
    run = start(project, tiny, suite_version)
    rows = list(Output.objects.filter(run=run))
    for row in rows:
        row.pk = None
    _outputs_save(run_id=run.pk, rows=rows)
    assert Output.objects.filter(run=run).count() == run.total
    run.refresh_from_db()
    assert run.done == run.total


def test_outputs_are_reused_across_runs_unless_regeneration_is_forced(project, tiny, suite_version):
    first = start(project, tiny, suite_version)
    second = start(project, tiny, suite_version)
    assert second.status == RunStatus.COMPLETED
    assert second.reused == second.total == first.total
    assert second.output_tokens == 0
    for output in Output.objects.filter(run=second):
        source = Output.objects.get(pk=output.reused_from_id)
        assert source.run_id == first.pk and source.text == output.text

    forced = start(project, tiny, suite_version, force_regenerate=True)
    assert forced.reused == 0 and forced.output_tokens > 0
    assert not Output.objects.filter(run=forced, reused_from__isnull=False).exists()
    # Greedy decoding: regenerating gives the same text.
    assert sorted(Output.objects.filter(run=forced).values_list("text", flat=True)) == sorted(
        Output.objects.filter(run=first).values_list("text", flat=True)
    )

    other_config = start(project, tiny, suite_version, generation_config={"max_new_tokens": 5})
    assert other_config.reused == 0


def test_the_cache_follows_case_content_across_suite_versions(project, tiny, suite_version):
    first = start(project, tiny, suite_version)
    inputs = list(suite_version.cases.order_by("position").values_list("input", flat=True))
    newer = make_suite_version(project, [*inputs, words(100, 9)], number=2)
    second = start(project, tiny, newer)
    assert second.total == first.total + 2
    assert second.reused == first.total


def test_a_cancelled_run_stops_and_resumes_to_exactly_the_missing_outputs(project, tiny, suite_version):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"], tiny["beta"]], generation_config={"max_new_tokens": 6})

    def cancel_after_first_batch(run_id: int) -> None:
        current = Run.objects.get(pk=run_id)
        if current.done > 0 and current.status == RunStatus.RUNNING:
            run_cancel(run=current)

    with progress.listening(cancel_after_first_batch):
        run_start(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert 0 < run.done < run.total
    with pytest.raises(Conflict):
        run_cancel(run=run)

    run = run_resume(run=run)
    assert run.status == RunStatus.COMPLETED
    assert run.done == run.total == len(set(keys(run))) == Output.objects.filter(run=run).count()
    with pytest.raises(Conflict):
        run_resume(run=run)


def test_an_over_long_case_is_truncated_from_the_left_with_a_flag(project, tiny):
    version = make_suite_version(project, [words(0, 10), words(3, 400)])
    run = start(project, tiny, version, baseline=None)
    assert run.status == RunStatus.COMPLETED
    long_output = Output.objects.get(run=run, case__key="c1")
    assert long_output.truncated and long_output.finish_reason != "rejected"
    assert long_output.prompt_tokens <= 256 - 6
    assert not Output.objects.get(run=run, case__key="c0").truncated
    assert run_progress(run=run)["truncated"] == 1


def test_an_over_long_case_is_rejected_when_the_run_says_so(project, tiny):
    version = make_suite_version(project, [words(0, 10), words(3, 400)])
    run = start(project, tiny, version, baseline=None,
                generation_config={"max_new_tokens": 6, "truncation": "reject"})
    assert run.status == RunStatus.COMPLETED
    rejected = Output.objects.get(run=run, case__key="c1")
    assert rejected.finish_reason == "rejected" and rejected.text == "" and "reject" in rejected.error
    assert run_progress(run=run)["rejected"] == 1


def test_an_adapter_that_changes_nothing_fails_the_run_before_any_work(project, tiny, suite_version):
    run = start(project, tiny, suite_version, adapters=("alpha", "zero"))
    assert run.status == RunStatus.FAILED
    assert "zero@1" in run.error and "changes nothing" in run.error
    assert not Output.objects.filter(run=run).exists()
    assert not RunChunk.objects.filter(run=run).exists()
    assert run.run_adapters.get(adapter__name="zero").sanity["ok"] is False


def test_a_missing_adapter_folder_is_a_clear_error_before_any_work(project, tiny, suite_version, tmp_path):
    from evalhub.catalog.services import adapter_register

    folder = tmp_path / "gone"
    shutil.copytree(tiny["alpha"].folder, folder)
    gone = adapter_register(project=project, base_model=tiny["base"], folder=str(folder), name="gone")
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"], adapters=[gone])
    shutil.rmtree(folder)

    with pytest.raises(ValidationFailed, match="gone@1.*adapter folder does not exist"):
        run_create(project=project, suite_version=suite_version, base_model=tiny["base"], adapters=[gone])
    run = run_start(run=run)
    assert run.status == RunStatus.FAILED and "adapter folder does not exist" in run.error
    assert not RunChunk.objects.filter(run=run).exists()


def test_bad_settings_are_refused_with_the_field_named(project, tiny, suite_version, other_project):
    base = dict(project=project, suite_version=suite_version, base_model=tiny["base"], adapters=[tiny["alpha"]])
    with pytest.raises(ValidationFailed) as exc:
        run_create(**base, generation_config={"temperature": -1})
    assert "generation_config" in exc.value.fields
    with pytest.raises(ValidationFailed, match="Unknown backend"):
        run_create(**base, backend="nope")
    with pytest.raises(ValidationFailed, match="unknown generation config fields"):
        run_create(**base, generation_config={"beam": 3})
    with pytest.raises(ValidationFailed, match="another project"):
        run_create(**{**base, "project": other_project})
    with pytest.raises(ValidationFailed, match="at least one adapter"):
        run_create(**{**base, "adapters": []})


def test_a_batch_that_runs_out_of_memory_is_split_and_retried(project, tiny, suite_version, monkeypatch):
    sizes: list[int] = []
    real_get_backend = engine.get_backend

    def oom_above_two(size: int) -> None:
        sizes.append(size)
        if size > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    def get_backend(name, **options):
        backend = real_get_backend(name, **options)
        backend.fault_hook = oom_above_two
        return backend

    monkeypatch.setattr(engine, "get_backend", get_backend)
    run = start(project, tiny, suite_version)
    assert run.status == RunStatus.COMPLETED
    assert run.done == run.total
    assert max(sizes) > 2 and sizes.count(2) >= 1


def test_an_engine_error_fails_the_run_with_its_message(project, tiny, suite_version, monkeypatch):
    from evalhub.generation import GenerationError

    class Broken:
        name = "hf"

        def load(self, base_model_dir, adapters):
            raise GenerationError("the GPU caught fire")

        def close(self):
            pass

    monkeypatch.setattr(engine, "get_backend", lambda name, **options: Broken())
    run = start(project, tiny, suite_version)
    assert run.status == RunStatus.FAILED
    assert "the GPU caught fire" in run.error


def test_progress_reports_done_total_speed_and_time_left(project, tiny, suite_version):
    seen: list[dict] = []
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 6})
    with progress.listening(lambda run_id: seen.append(run_progress(run=Run.objects.get(pk=run_id)))):
        run_start(run=run)
    running = [p for p in seen if p["status"] == RunStatus.RUNNING and 0 < p["done"] < p["total"]]
    assert running, seen
    assert all(p["eta_seconds"] is not None and p["eta_seconds"] >= 0 for p in running)
    final = run_progress(run=run)
    assert final["done"] == final["total"] == 6 and final["percent"] == 100.0
    assert final["finished"] and final["eta_seconds"] is None
    run.refresh_from_db()
    assert final["tokens_per_second"] == pytest.approx(run.output_tokens / run.generation_seconds, abs=0.1)
    assert final["chunks_done"] == final["chunks_total"] == 2


def test_completion_calls_the_hooks_once(project, tiny, suite_version, monkeypatch):
    from evalhub.runs import hooks

    calls: list[int] = []
    monkeypatch.setattr(hooks, "RUN_COMPLETED_HOOKS", ["tests.runs.test_services.record_completion"])
    monkeypatch.setattr("tests.runs.test_services.COMPLETED", calls)
    run = start(project, tiny, suite_version)
    assert calls == [run.pk]


COMPLETED: list[int] = []


def record_completion(*, run_id: int) -> None:
    COMPLETED.append(run_id)


def failing_hook(*, run_id: int) -> None:
    raise RuntimeError(f"scoring broke on run {run_id}")


def test_a_failing_hook_is_logged_as_itself_and_leaves_the_run_completed(
    project, tiny, suite_version, monkeypatch, caplog
):
    from evalhub.runs import hooks

    calls: list[int] = []
    monkeypatch.setattr(
        hooks,
        "RUN_COMPLETED_HOOKS",
        ["tests.runs.test_services.failing_hook", "tests.runs.test_services.record_completion"],
    )
    monkeypatch.setattr("tests.runs.test_services.COMPLETED", calls)
    with caplog.at_level("ERROR", logger="evalhub.runs.hooks"):
        run = start(project, tiny, suite_version)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and not run.error
    assert calls == [run.pk]  # the next hook still ran
    assert "tests.runs.test_services.failing_hook failed" in caplog.text
    assert "gave up" not in caplog.text


def test_a_chunk_that_keeps_killing_its_worker_fails_the_run_instead_of_looping(project, tiny, suite_version):
    from evalhub.runs.services import MAX_CHUNK_ATTEMPTS

    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 3})
    run = run_start(run=run)
    # As if every delivery of chunk 0 had died with its worker: running, attempts used up.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    RunChunk.objects.filter(run=run, index=0).update(
        status=ChunkStatus.RUNNING, attempts=MAX_CHUNK_ATTEMPTS, leased_by="gpu-7:123")
    Output.objects.filter(run=run, case_id__in=RunChunk.objects.get(run=run, index=0).case_ids).delete()
    run_generate_chunk(run_id=run.pk, chunk_index=0)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "started 5 times" in run.error and "gpu-7:123" in run.error

    run = run_resume(run=run)  # the user decides to try again: attempts start over
    assert run.status == RunStatus.COMPLETED and run.done == run.total
