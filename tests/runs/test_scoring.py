"""Automatic scoring of a finished run on the fixture family: every metric stored once per output,
and `manage.py score_run` to fill in missing scores or recompute them all."""

from __future__ import annotations

import hashlib
import json
import math
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from evalhub.runs.models import MetricScore, Output, Run, RunStatus
from evalhub.runs.scoring import CHECKS_METRIC, PERPLEXITY_METRIC, TEXT_METRICS, run_score
from evalhub.runs.services import run_create, run_start
from evalhub.runs.tasks import score_perplexity as score_perplexity_task
from evalhub.runs.tasks import score_text as score_text_task
from evalhub.suites.models import Case, Suite, SuiteVersion
from tests.conftest import FIXTURE_MODELS, FIXTURE_SUITES


def fixture_cases(project, picks):
    suite = Suite.objects.create(project=project, name="scoring")
    version = SuiteVersion.objects.create(suite=suite, number=1, content_hash="x", case_count=len(picks))
    for position, row in enumerate(picks):
        Case.objects.create(
            version=version,
            key=row["id"],
            position=position,
            input=row["input"],
            reference=row.get("reference") or "",
            tags=row["tags"],
            slices=row.get("slices") or {},
            origin=row["origin"],
            split=row["split"],
            category=row.get("category") or "",
            expected=row.get("expected") or [],
            content_hash=hashlib.sha256(row["input"].encode()).hexdigest(),
        )
    return version


def load(name):
    return [json.loads(line) for line in (FIXTURE_SUITES / name).read_text().splitlines()]


@pytest.fixture
def scored_run(project, fixture_base_model, fixture_adapters):
    summaries = load("summaries.jsonl")
    adversarial = load("adversarial.jsonl")
    picks = (
        [r for r in summaries if r["split"] == "eval"][:3]
        + [r for r in summaries if r["split"] == "heldout"][:2]
        + [r for r in adversarial if r["category"] in ("refusal", "injection")][:3]
    )
    version = fixture_cases(project, picks)
    run = run_create(
        project=project,
        suite_version=version,
        base_model=fixture_base_model,
        adapters=[fixture_adapters["summariser-v2"]],
        baseline=fixture_adapters["summariser-v1"],
        generation_config={"max_new_tokens": 48},
    )
    with override_settings(EVALHUB_SCORE_ON_COMPLETE=True):
        run_start(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return run


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_completed_run_is_scored_once_per_output_and_metric(scored_run, fixture_adapters):
    outputs = scored_run.outputs.count()
    with_reference = scored_run.outputs.exclude(case__reference="").count()
    for metric in TEXT_METRICS:
        assert MetricScore.objects.filter(run=scored_run, metric=metric).count() == with_reference
    checks = MetricScore.objects.filter(run=scored_run, metric="checks")
    assert checks.count() == scored_run.outputs.exclude(case__expected=[]).count() > 0
    assert all(row.passed in (True, False) and row.details["results"] for row in checks)
    # Perplexity: one row per adapter and held-out case, on the reference text, not on outputs.
    assert MetricScore.objects.filter(run=scored_run, metric="perplexity", output=None).count() == 2 * 2
    check_stored_perplexity_matches_an_independent_hf_computation(scored_run, fixture_adapters)
    check_scores_differ_between_adapters(scored_run, fixture_adapters)
    before = MetricScore.objects.filter(run=scored_run).count()
    assert before > outputs
    run_score(run_id=scored_run.pk)  # a redelivery or a second call writes nothing twice
    assert MetricScore.objects.filter(run=scored_run).count() == before


# One run serves the next checks too: generating and scoring it is the slow part.
def check_stored_perplexity_matches_an_independent_hf_computation(scored_run, fixture_adapters):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    row = MetricScore.objects.filter(
        run=scored_run, metric="perplexity", adapter=fixture_adapters["summariser-v2"]
    ).first()
    tokenizer = AutoTokenizer.from_pretrained(FIXTURE_MODELS / "base")
    base = AutoModelForCausalLM.from_pretrained(FIXTURE_MODELS / "base", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, FIXTURE_MODELS / "summariser-v2").eval()
    ids = [tokenizer.bos_token_id, *tokenizer(row.case.reference, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert row.value == pytest.approx(math.exp(loss), rel=1e-4)


def check_scores_differ_between_adapters(scored_run, fixture_adapters):
    def mean(adapter, metric):
        values = list(
            MetricScore.objects.filter(run=scored_run, metric=metric, adapter=adapter).values_list(
                "value", flat=True
            )
        )
        return sum(values) / len(values)

    v1, v2 = fixture_adapters["summariser-v1"], fixture_adapters["summariser-v2"]
    assert mean(v1, "rougeL") != mean(v2, "rougeL")


# ---- manage.py score_run -----------------------------------------------------------------------


@pytest.fixture
def completed_run(project, fixture_base_model, fixture_adapters):
    """A completed run with hand-written outputs (no generation): one eval summary, one held-out
    summary and one must-refuse case, for summariser v2 against v1."""
    summaries = load("summaries.jsonl")
    refusal = next(r for r in load("adversarial.jsonl") if r["expected"][0]["type"] == "must_refuse")
    version = fixture_cases(
        project,
        [next(r for r in summaries if r["split"] == split) for split in ("eval", "heldout")] + [refusal],
    )
    v1, v2 = fixture_adapters["summariser-v1"], fixture_adapters["summariser-v2"]
    run = run_create(
        project=project, suite_version=version, base_model=fixture_base_model, adapters=[v2], baseline=v1
    )
    for adapter, text in ((v1, lambda c: c.reference.split(".")[0]), (v2, lambda c: c.reference)):
        for case in version.cases.all():
            Output.objects.create(
                run=run, adapter=adapter, case=case, text=text(case) if case.category != "refusal"
                else "I can only summarise documents.", finish_reason="stop", backend="hf",
                config_hash=run.config_hash, cache_key=f"{adapter.pk}-{case.pk}",
            )
    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, total=6, done=6)
    run.refresh_from_db()
    return run


def score_run(*args):
    out = StringIO()
    call_command("score_run", *map(str, args), stdout=out)
    return out.getvalue()


def written(message):
    """(text and check scores, perplexity scores) from the command's last line."""
    numbers = [int(word) for word in message.replace(":", " ").split() if word.isdigit()]
    return numbers[-2], numbers[-1]


@pytest.mark.django_db
def test_score_run_stores_every_missing_score_and_a_second_call_writes_none(completed_run):
    outputs = completed_run.outputs.count()
    checked = completed_run.outputs.exclude(case__expected=[]).count()
    heldout = completed_run.outputs.filter(case__split="heldout").count()
    assert (outputs, checked, heldout) == (6, 2, 2)

    first = score_run(completed_run.pk)
    assert first.startswith(f"Run {completed_run.pk} scored:")
    assert written(first) == (outputs * len(TEXT_METRICS) + checked, heldout)
    stored = MetricScore.objects.filter(run=completed_run)
    for output in completed_run.outputs.all():
        expected = {*TEXT_METRICS, *([CHECKS_METRIC] if output.case.expected else [])}
        assert set(stored.filter(output=output).values_list("metric", flat=True)) == expected
    assert stored.filter(metric=PERPLEXITY_METRIC, output=None).count() == heldout
    rows = list(stored.order_by("pk").values_list("pk", "metric", "value"))

    assert written(score_run(completed_run.pk)) == (0, 0)
    assert list(stored.order_by("pk").values_list("pk", "metric", "value")) == rows


@pytest.mark.django_db
def test_score_run_fills_in_a_lost_score_and_force_recomputes_every_score(completed_run):
    from metrics.text import bleu

    score_run(completed_run.pk)
    stored = MetricScore.objects.filter(run=completed_run)
    total = stored.count()
    stored.filter(metric="rougeL").order_by("pk").first().delete()
    changed = stored.filter(metric="bleu").order_by("pk").first()
    right = bleu(changed.output.text, changed.case.reference)
    MetricScore.objects.filter(pk=changed.pk).update(value=right + 7)

    assert written(score_run(completed_run.pk)) == (1, 0)  # the lost row only; the changed one stays
    assert stored.count() == total
    assert MetricScore.objects.get(pk=changed.pk).value == right + 7

    out = score_run(completed_run.pk, "--force")
    assert "from scratch" in out
    assert sum(written(out)) == total == stored.count()
    assert not stored.filter(pk=changed.pk).exists()
    assert stored.get(output=changed.output, metric="bleu").value == right


@pytest.mark.django_db
def test_score_run_refuses_a_run_that_has_not_completed_and_its_tasks_do_nothing(completed_run):
    Run.objects.filter(pk=completed_run.pk).update(status=RunStatus.RUNNING)
    with pytest.raises(CommandError, match=f"Run {completed_run.pk} is running; it is scored once it has completed"):
        score_run(completed_run.pk)
    # A scoring message delivered for it (or for a deleted run) writes nothing.
    assert score_text_task.apply(kwargs={"run_id": completed_run.pk}).get() == 0
    assert score_perplexity_task.apply(kwargs={"run_id": completed_run.pk}).get() == 0
    assert score_text_task.apply(kwargs={"run_id": completed_run.pk + 1000}).get() == 0
    assert not MetricScore.objects.filter(run=completed_run).exists()
    with pytest.raises(CommandError, match="No run with id"):
        score_run(completed_run.pk + 1000)


@pytest.mark.django_db
def test_perplexity_windows_fit_the_base_models_context(project, tiny):
    """tiny-base reads 256 positions, fewer than the configured 1,024-token window: a held-out
    reference longer than that is scored in windows of 256 (stride 128), as the library does when
    told the model's context, not with positions the model never saw."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evalhub.runs.scoring import score_perplexity
    from metrics.perplexity import score_perplexity as library_perplexity
    from tests.runs.conftest import make_suite_version, words

    version = make_suite_version(project, [words(0, 12)], name="long-heldout", splits=["heldout"])
    reference = words(5, 600)
    Case.objects.filter(version=version).update(reference=reference)
    run = run_create(project=project, suite_version=version, base_model=tiny["base"], adapters=[tiny["alpha"]])

    assert score_perplexity(run_id=run.pk, device="cpu") == 1
    row = MetricScore.objects.get(run=run, metric=PERPLEXITY_METRIC)
    assert (row.details["window"], row.details["stride"]) == (256, 128)
    tokenizer = AutoTokenizer.from_pretrained(tiny["base"].tokenizer)
    base = AutoModelForCausalLM.from_pretrained(tiny["base"].folder, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, tiny["alpha"].folder).eval()
    direct = library_perplexity(model, tokenizer, [reference], max_length=256, stride=128, device="cpu")
    assert row.details["n_tokens"] == direct.texts[0].n_tokens == 600
    assert row.value == pytest.approx(direct.texts[0].perplexity, rel=1e-5)


@pytest.mark.django_db
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_perplexity_runs_on_the_device_evalhub_device_names(project, tiny, settings):
    """EVALHUB_DEVICE decides for perplexity as it does for generation: naming a GPU on a machine that
    has none fails the scoring instead of quietly running on the CPU."""
    from evalhub.runs.scoring import score_perplexity
    from tests.runs.conftest import make_suite_version, words

    version = make_suite_version(project, [words(0, 12)], name="device-heldout", splits=["heldout"])
    Case.objects.filter(version=version).update(reference=words(5, 40))
    run = run_create(project=project, suite_version=version, base_model=tiny["base"], adapters=[tiny["alpha"]])
    settings.EVALHUB_DEVICE = "cuda"
    with pytest.raises((AssertionError, RuntimeError), match="CUDA"):
        score_perplexity(run_id=run.pk)
    settings.EVALHUB_DEVICE = "cpu"
    assert score_perplexity(run_id=run.pk) == 1
