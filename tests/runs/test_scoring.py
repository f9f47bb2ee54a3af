"""Automatic scoring of a finished run on the fixture family: every metric stored once per output."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from django.test import override_settings

from evalhub.runs.models import MetricScore, RunStatus
from evalhub.runs.scoring import TEXT_METRICS, run_score
from evalhub.runs.services import run_create, run_start
from evalhub.suites.models import Case, Suite, SuiteVersion
from tests.conftest import FIXTURE_MODELS, FIXTURE_SUITES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


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
