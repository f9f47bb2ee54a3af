"""The log-probability judge on the fixture model: both orders are judged and recorded, in the pair's frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalhub.accounts.services import project_create
from evalhub.errors import ValidationFailed
from evalhub.judging.logprob import JudgeContextError, LogprobJudge
from evalhub.judging.models import Judgement
from evalhub.judging.services import pair_judge
from tests.factories import CaseFactory, OutputFactory, RunFactory, TaskFactory

FIXTURE_BASE = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "base"
NOTE = "Notes from the Jadeport Foods earnings call for Q1 2024. Revenue was $582.8 million, up 12.0%."
FAITHFUL = "Jadeport Foods: Q1 2024 revenue $582.8 million, up 12.0%."
WRONG = "Jadeport Foods: Q1 2024 revenue $911.0 million, down 4.0%."


@pytest.fixture(scope="module")
def judge() -> LogprobJudge:
    return LogprobJudge(FIXTURE_BASE)


def _task(a: str, b: str | None):
    run = RunFactory(suite_version__suite__project=project_create(name="Judging"))
    case = CaseFactory(version=run.suite_version, input=NOTE)
    first = OutputFactory(run=run, case=case, text=a, adapter__base_model=run.base_model)
    second = OutputFactory(run=run, case=case, text=b, adapter__base_model=run.base_model) if b else None
    return TaskFactory(case=case, output_a=first, output_b=second, study__run=run)


def test_the_judge_has_an_identity_and_a_version_from_its_files(judge):
    assert judge.name == "base"
    assert len(judge.version) == 16
    assert LogprobJudge(FIXTURE_BASE).version == judge.version


def test_each_order_is_read_from_the_answer_tokens_and_mapped_back_to_the_pair(judge):
    ab, ba = judge.judge_pair(rubric="- Factual accuracy", case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    assert (ab.order, ba.order) == ("ab", "ba")
    # Output A is shown first in "ab" and second in "ba".
    assert ab.prompt.index(FAITHFUL) < ab.prompt.index(WRONG)
    assert ba.prompt.index(WRONG) < ba.prompt.index(FAITHFUL)
    for r in (ab, ba):
        raw = json.loads(r.raw_output)
        assert raw["logprob_A"] < 0 and raw["logprob_B"] < 0
        if r.preference == "unparseable":
            assert r.prob_a is None
        else:
            assert 0 <= r.prob_a <= 1
            assert r.preference == (
                "tie" if abs(r.prob_a - 0.5) < judge.tie_band else "A" if r.prob_a > 0.5 else "B"
            )


def test_the_same_text_on_both_sides_gives_mirror_probabilities(judge):
    # With identical sides both prompts are the same, so P(A better) in one order is 1 - P in the other:
    # the proof that the "ba" order is mapped back to the pair's frame.
    judge_all = LogprobJudge(FIXTURE_BASE, min_answer_mass=0.0)
    ab, ba = judge_all.judge_pair(
        rubric="- Factual accuracy", case=NOTE, output_a=FAITHFUL, output_b=FAITHFUL
    )
    assert ab.prob_a == pytest.approx(1 - ba.prob_a, abs=1e-6)


def test_an_order_the_model_does_not_answer_is_stored_as_unparseable_never_guessed():
    strict = LogprobJudge(FIXTURE_BASE, min_answer_mass=1.01)  # no next-token mass can reach this
    ab, ba = strict.judge_pair(rubric="- Factual accuracy", case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    assert (ab.preference, ab.prob_a, ba.preference, ba.prob_a) == ("unparseable", None, "unparseable", None)


def test_the_judge_builds_no_kv_cache_and_reads_the_same_answers_as_a_cached_forward(judge):
    # One forward pass per batch needs no cache; under compiled layers building one made dynamo recompile.
    import torch

    seen: list[tuple[object, object]] = []
    handle = judge.model.register_forward_hook(
        lambda _m, _a, kwargs, out: seen.append((kwargs.get("use_cache"), out.past_key_values)),
        with_kwargs=True,
    )
    prompts = [
        judge.tokenizer.encode(o.prompt)
        for o in judge.judge_pair(rubric="r", case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    ]
    try:
        judged = [judge.answer_logprobs([ids])[0][0] for ids in prompts]
    finally:
        handle.remove()
    assert seen and all(use_cache is False and cache is None for use_cache, cache in seen)
    for ids, logprobs in zip(prompts, judged, strict=True):
        with torch.inference_mode():
            cached = judge.model(input_ids=torch.tensor([ids]), logits_to_keep=1)  # the model's default
        assert cached.past_key_values is not None  # (so the check above would see a cache)
        expected = torch.log_softmax(cached.logits[0, -1].float(), -1)[list(judge.answer_ids)]
        assert torch.equal(logprobs, expected)


@pytest.mark.django_db
def test_pair_judge_records_both_orders_once_with_prompt_raw_output_and_latency(judge):
    task = _task(FAITHFUL, WRONG)
    result = pair_judge(task_id=task.pk, judge=judge)
    rows = Judgement.objects.filter(task=task).order_by("order")
    assert [r.order for r in rows] == ["ab", "ba"]
    for row in rows:
        assert row.judge_name == "base" and row.judge_version == judge.version
        assert FAITHFUL in row.prompt and WRONG in row.prompt
        assert json.loads(row.raw_output)["logprob_A"] < 0
        assert row.latency_ms >= 0
    prefs = {r.preference for r in rows}
    assert result.orders_agree == (None if "unparseable" in prefs else len(prefs) == 1)

    pair_judge(task_id=task.pk, judge=judge)  # a retried task writes nothing twice
    assert Judgement.objects.filter(task=task).count() == 2


@pytest.mark.django_db
def test_a_pair_the_context_cannot_hold_is_refused_with_the_numbers_and_nothing_stored(judge):
    task = _task(FAITHFUL, "revenue " * 2000)
    with pytest.raises(JudgeContextError, match=r"is \d+ tokens; the judge's context holds 1024"):
        pair_judge(task_id=task.pk, judge=judge)
    assert not Judgement.objects.filter(task=task).exists()


@pytest.mark.django_db
def test_a_single_output_task_is_refused(judge):
    task = _task(FAITHFUL, None)
    with pytest.raises(ValidationFailed):
        pair_judge(task_id=task.pk, judge=judge)
    assert not Judgement.objects.exists()
