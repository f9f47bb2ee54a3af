"""Pending checks of imported suites evaluated by the judge: the rubric each assertion gives, the real
log-probability judge on the fixture base, and how the results are stored and marked."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest

from evalhub.judging.checks import G_EVAL_THRESHOLD, CheckRubric, NotJudgeable, check_passed, check_rubric
from evalhub.judging.logprob import JudgeContextError, LogprobJudge, OutputJudgement
from evalhub.judging.services import OutputJudge
from evalhub.runs.judged_checks import judge_output_checks, row_verdict, score_judge_checks
from evalhub.runs.models import MetricScore, RunScoring, ScoringKind
from evalhub.runs.scoring import run_score_kind
from evalhub.runs.selectors import run_scoring
from metrics.registry import CHECKS_METRIC, JUDGE_CHECKS_METRIC
from tests.factories import CaseFactory, OutputFactory, RunFactory

FIXTURE_BASE = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "base"
NOTE = "Notes from the Jadeport Foods earnings call for Q1 2024. Revenue was $582.8 million, up 12.0%."
FAITHFUL = "Jadeport Foods: Q1 2024 revenue $582.8 million, up 12.0%."
VARS = {"input": NOTE, "reference": FAITHFUL, "company": "Jadeport Foods"}


@pytest.fixture(scope="module")
def judge() -> LogprobJudge:
    return LogprobJudge(FIXTURE_BASE)


# --- the rubric of each assertion type --------------------------------------------------------------


def _rubric(item: dict, output: str = FAITHFUL) -> CheckRubric | NotJudgeable:
    return check_rubric(item, variables=VARS, output=output)


def test_llm_rubric_reads_its_value_and_keeps_its_threshold():
    r = _rubric({"type": "llm-rubric", "value": "Names the company", "threshold": 0.8})
    assert isinstance(r, CheckRubric)
    assert (r.rubric, r.threshold, r.inverse, r.rubric_prompt) == ("Names the company", 0.8, False, False)


def test_factuality_compares_with_its_reference_and_g_eval_lists_its_criteria_at_promptfoos_threshold():
    fact = _rubric({"type": "factuality", "value": "Revenue was $582.8 million"})
    assert isinstance(fact, CheckRubric) and "Reference: Revenue was $582.8 million" in fact.rubric
    g = _rubric({"type": "g-eval", "value": ["Concise", "Accurate"]})
    assert isinstance(g, CheckRubric) and "- Concise\n- Accurate" in g.rubric
    assert g.threshold == G_EVAL_THRESHOLD
    closed = _rubric({"type": "model-graded-closedqa", "value": "Mentions revenue"})
    assert isinstance(closed, CheckRubric) and closed.rubric.endswith("Mentions revenue")
    assert isinstance(_rubric({"type": "answer-relevance"}), CheckRubric)


def test_the_suites_rubric_prompt_is_rendered_with_the_vars_output_and_rubric():
    item = {
        "type": "llm-rubric",
        "value": "is short",
        "provider": "openai:gpt-4.1",
        "rubricPrompt": [
            {"role": "system", "content": "Grade for {{ company }}: {{ rubric }}"},
            {"role": "user", "content": "Output: {{ output }}"},
        ],
    }
    r = _rubric(item)
    assert isinstance(r, CheckRubric) and r.rubric_prompt and r.suite_provider == "openai:gpt-4.1"
    assert r.rubric == f"system: Grade for Jadeport Foods: is short\n\nuser: Output: {FAITHFUL}"
    # promptfoo's llm-rubric with no value: the whole grading is the rubric prompt.
    bare = _rubric({"type": "llm-rubric", "rubricPrompt": "Did it mention {{ company }}? {{ output }}"})
    assert isinstance(bare, CheckRubric) and bare.rubric == f"Did it mention Jadeport Foods? {FAITHFUL}"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"type": "javascript", "value": "output.length < 10"}, "code evalhub does not run"),
        ({"type": "similar", "value": "x"}, "embedding model"),
        ({"type": "llm-rubric", "value": "x", "transform": "output.trim()"}, "transformed first"),
        ({"type": "llm-rubric", "value": "x", "threshold": "high"}, "is not a number"),
        ({"type": "llm-rubric"}, "has no rubric"),
        ({"type": "factuality"}, "needs the reference"),
        ({"type": "context-faithfulness"}, "context var"),
        ({"type": "promptfoo:redteam:hijacking"}, "red-team plugin grader"),
        ({"type": "levenshtein", "value": "x"}, "edit distance"),
        ({"type": "llm-rubric", "rubricPrompt": "{{ output"}, "does not render"),
    ],
)
def test_assertions_that_are_not_rubrics_stay_pending_with_the_reason(item, reason):
    r = _rubric(item)
    assert isinstance(r, NotJudgeable) and reason in r.reason


def test_the_checks_result_uses_the_threshold_the_inverse_and_never_guesses():
    plain = CheckRubric("llm-rubric", "x", None, False, False, None)
    assert check_passed(plain, judge_passed=True, score=0.6) is True
    assert check_passed(plain, judge_passed=None, score=None) is None
    high = CheckRubric("llm-rubric", "x", 0.8, False, False, None)
    assert check_passed(high, judge_passed=True, score=0.6) is False
    assert check_passed(high, judge_passed=True, score=0.85) is True
    inverse = CheckRubric("not-llm-rubric", "x", None, True, False, None)
    assert check_passed(inverse, judge_passed=True, score=0.9) is False
    assert check_passed(inverse, judge_passed=None, score=None) is None
    assert isinstance(_rubric({"type": "not-llm-rubric", "value": "x"}), CheckRubric)


# --- the judge ---------------------------------------------------------------------------------------


def test_the_logprob_judge_is_an_output_judge():
    wanted = inspect.signature(OutputJudge.judge_output).parameters
    have = inspect.signature(LogprobJudge.judge_output).parameters
    assert list(have) == list(wanted) == ["self", "rubric", "case", "output"]
    assert all(have[n].kind is inspect.Parameter.KEYWORD_ONLY for n in ("rubric", "case", "output"))


def test_judge_output_reads_pass_and_fail_from_the_answer_tokens(judge):
    j = judge.judge_output(rubric="Names the company", case=NOTE, output=FAITHFUL)
    assert isinstance(j, OutputJudgement)
    assert "Names the company" in j.prompt and NOTE in j.prompt and FAITHFUL in j.prompt
    raw = json.loads(j.raw_output)
    assert raw["logprob_pass"] < 0 and raw["logprob_fail"] < 0
    assert j.latency_ms >= 0
    if j.passed is None:  # the fixture base may not answer; then nothing is guessed
        assert (j.prob_pass, j.score) == (None, None) and j.reason.startswith("unparseable")
    else:
        expected = 1 / (1 + math.exp(raw["logprob_fail"] - raw["logprob_pass"]))
        assert j.prob_pass == pytest.approx(expected) and j.score == j.prob_pass
        assert j.passed == (j.prob_pass > 0.5)
        assert j.reason.startswith("passes" if j.passed else "fails")


def test_an_answer_the_judge_does_not_give_is_unparseable_never_a_pass_or_fail():
    strict = LogprobJudge(FIXTURE_BASE, min_answer_mass=1.01)
    j = strict.judge_output(rubric="Names the company", case=NOTE, output=FAITHFUL)
    assert (j.passed, j.prob_pass, j.score) == (None, None, None)
    assert "unparseable" in j.reason and json.loads(j.raw_output)["logprob_pass"] < 0


def test_an_output_the_context_cannot_hold_is_refused_with_the_numbers(judge):
    with pytest.raises(JudgeContextError, match=r"is \d+ tokens; the judge's context holds 1024"):
        judge.judge_output(rubric="x", case=NOTE, output="revenue " * 2000)


def test_results_per_pending_check_and_the_outputs_verdict(judge):
    pending = [
        {"type": "llm-rubric", "value": "Names the company"},
        {"type": "javascript", "value": "true"},
        {"type": "factuality", "value": FAITHFUL, "threshold": 0.0},  # every score passes
        {"type": "not-factuality", "value": FAITHFUL, "threshold": 0.0},  # every score fails
    ]
    results = judge_output_checks(
        LogprobJudge(FIXTURE_BASE, min_answer_mass=0.0), pending=pending, case_input=NOTE, variables=VARS,
        output=FAITHFUL,
    )  # fmt: skip
    assert [r["status"] for r in results][1:] == ["not_judgeable", "passed", "failed"]
    assert results[2]["judge_passed"] == results[3]["judge_passed"]  # one answer, read two ways
    assert results[0]["status"] in ("passed", "failed") and results[0]["raw_output"]
    assert results[2]["prompt"].count(FAITHFUL) >= 2  # the reference in the rubric, and the output
    assert row_verdict(results)[1] is False  # a failed check fails the output
    assert row_verdict(results[:3])[1] == (results[0]["status"] == "passed")
    unparsed = [{"status": "not_evaluated", "passed": None}, {"status": "passed", "passed": True}]
    assert row_verdict(unparsed) == (1.0, None)  # one not evaluated: no verdict, never a silent pass
    assert row_verdict([{"status": "not_judgeable", "passed": None}]) == (None, None)


# --- storage on a run --------------------------------------------------------------------------------

PENDING_CASE = [
    {"type": "contains", "value": "Jadeport"},
    {
        "type": "pending",
        "assert": {"type": "llm-rubric", "value": "Names the company", "provider": "openai:x"},
    },
    {"type": "pending", "assert": {"type": "javascript", "value": "true"}},
]


def _run(project):
    run = RunFactory(
        suite_version__suite__project=project, base_model__folder=str(FIXTURE_BASE), judge_checks=True
    )
    case = CaseFactory(version=run.suite_version, input=NOTE, reference=FAITHFUL, expected=PENDING_CASE)
    plain = CaseFactory(version=run.suite_version, expected=[{"type": "contains", "value": "x"}])
    output = OutputFactory(run=run, case=case, text=FAITHFUL, adapter__base_model=run.base_model)
    OutputFactory(run=run, case=plain, adapter=output.adapter)
    return run, output


@pytest.mark.slow  # loads the run's own judge (about 6 s on a shared CPU)
@pytest.mark.django_db
def test_the_run_stores_judge_evaluated_results_with_the_judge_and_raw_output(judge, project):
    run, output = _run(project)
    written = run_score_kind(run_id=run.pk, kind=ScoringKind.JUDGE_CHECKS)
    assert written == 1  # only the output whose case has pending checks
    row = MetricScore.objects.get(run=run, metric=JUDGE_CHECKS_METRIC)
    assert row.output_id == output.pk
    assert row.details["judge_evaluated"] is True
    assert row.details["judge"] == {"name": "base", "version": judge.version}
    llm, js = row.details["results"]
    assert llm["type"] == "llm-rubric" and llm["suite_provider"] == "openai:x"
    assert json.loads(llm["raw_output"])["logprob_pass"] < 0 and "Names the company" in llm["prompt"]
    assert llm["status"] in ("passed", "failed", "not_evaluated")
    assert row.passed == {"passed": True, "failed": False, "not_evaluated": None}[llm["status"]]
    assert js == {"type": "javascript", "metric": None, "status": "not_judgeable", "passed": None,
                  "reason": "code evalhub does not run"}  # fmt: skip
    assert not MetricScore.objects.filter(run=run, metric=CHECKS_METRIC).exists()  # never a check's row
    assert RunScoring.objects.get(run=run, kind=ScoringKind.JUDGE_CHECKS).status == "done"
    assert run_score_kind(run_id=run.pk, kind=ScoringKind.JUDGE_CHECKS) == 0  # a redelivery writes nothing


@pytest.mark.django_db
def test_an_unparseable_judge_is_recorded_as_not_evaluated(project):
    run, _ = _run(project)
    strict = LogprobJudge(FIXTURE_BASE, min_answer_mass=1.01)
    assert score_judge_checks(run_id=run.pk, judge=strict) == 1
    row = MetricScore.objects.get(run=run, metric=JUDGE_CHECKS_METRIC)
    assert (row.value, row.passed) == (None, None)
    llm = row.details["results"][0]
    assert (llm["status"], llm["passed"], llm["prob_pass"]) == ("not_evaluated", None, None)
    assert "unparseable" in llm["reason"]


@pytest.mark.django_db
def test_the_judges_scoring_kind_is_listed_only_for_runs_that_ask_for_it(project):
    asked, _ = _run(project)
    assert ScoringKind.JUDGE_CHECKS in [s["kind"] for s in run_scoring(run=asked)]
    plain = RunFactory(suite_version__suite__project=project)
    assert ScoringKind.JUDGE_CHECKS not in [s["kind"] for s in run_scoring(run=plain)]


@pytest.mark.django_db
def test_an_imported_suites_rubric_prompt_reaches_the_judge(judge, project, tmp_path, settings):
    """From a promptfoo config to the judge: defaultTest.options.rubricPrompt, kept at import, is what
    the judge is shown; the test's vars are rendered in it."""
    from evalhub.suites.services import suite_import_file

    settings.EVALHUB_SUITE_PII_SCAN = False
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "defaultTest:\n"
        "  options:\n"
        "    provider: openai:gpt-4.1-mini\n"
        "    rubricPrompt: 'Grade the summary of {{ company }} by: {{ rubric }}'\n"
        "tests:\n"
        "  - vars: {input: 'Summarise the call.', company: Jadeport Foods}\n"
        "    assert:\n"
        "      - {type: llm-rubric, value: states the revenue}\n"
        "      - {type: similar, value: revenue up}\n"
    )
    version = suite_import_file(project=project, name="pf", path=config)
    run = RunFactory(suite_version=version, project=project, base_model__project=project, judge_checks=True)
    case = version.cases.get()
    OutputFactory(run=run, case=case, text=FAITHFUL, adapter__base_model=run.base_model)
    assert score_judge_checks(run_id=run.pk, judge=judge) == 1
    llm, similar = MetricScore.objects.get(run=run, metric=JUDGE_CHECKS_METRIC).details["results"]
    assert llm["rubric_prompt"] is True and llm["suite_provider"] == "openai:gpt-4.1-mini"
    assert "Grade the summary of Jadeport Foods by: states the revenue" in llm["prompt"]
    assert similar["status"] == "not_judgeable" and "embedding" in similar["reason"]
