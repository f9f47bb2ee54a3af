"""The pending checks of a run's suite (imported model-graded assertions), evaluated by the judge.

One MetricScore per output with pending checks, metric ``judge_checks`` (never ``checks``: a judge's
verdict is not a deterministic check's), keyed on the judge's name and version and the rubrics'
version, so a second judge or a new rubric writes new rows beside the old. ``details`` says that the
results are judge-evaluated, by which judge, and for each pending check its status:

- ``passed`` / ``failed``: the judge's answer (against the assertion's threshold when it has one);
- ``not_evaluated``: the judge's answer was unparseable, or the prompt did not fit its context: never
  a silent pass or fail;
- ``not_judgeable``: the assertion is not a rubric (javascript, similar, ...): it stays pending, with
  the reason.

Each result keeps the judge's prompt and raw output. The row's ``passed`` is True only when every
judgeable check was evaluated and passed, False when one failed, and None otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.db import transaction

from evalhub.judging.checks import CHECK_RUBRICS_VERSION, CheckRubric, check_passed, check_rubric
from evalhub.runs.models import MetricScore, Output, Run
from metrics.registry import JUDGE_CHECKS_METRIC

if TYPE_CHECKING:
    from evalhub.judging.logprob import LogprobJudge

STATUS_PASSED = "passed"
STATUS_FAILED = "failed"
STATUS_NOT_EVALUATED = "not_evaluated"
STATUS_NOT_JUDGEABLE = "not_judgeable"


def _config_hash(judge: Any) -> str:
    config = {
        "metric": JUDGE_CHECKS_METRIC,
        "rubrics": CHECK_RUBRICS_VERSION,
        "judge": judge.name,
        "judge_version": judge.version,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def pending_checks(expected: Any) -> list[dict[str, Any]]:
    """The pending assertions of a case's expected behaviour, as imported."""
    return [
        dict(c["assert"])
        for c in expected or []
        if isinstance(c, dict) and c.get("type") == "pending" and isinstance(c.get("assert"), dict)
    ]


def judge_for_run(run: Run, *, device: str | None = None) -> LogprobJudge:
    """The run's judge: its base model, with its judge adapter when it has one, on the engine's device."""
    from evalhub.generation.loading import resolve_device
    from evalhub.judging.logprob import LogprobJudge
    from evalhub.runs.engine import configured_device

    adapter = run.judge_adapter
    return LogprobJudge(
        run.base_model.folder,
        adapter_dir=adapter.folder if adapter is not None else None,
        device=str(resolve_device(device or configured_device())),
    )


def _judged(judge: Any, rubric: CheckRubric, *, case: str, output: str) -> dict[str, Any]:
    from evalhub.judging.logprob import JudgeContextError

    entry: dict[str, Any] = {
        "threshold": rubric.threshold,
        "inverse": rubric.inverse,
        "rubric_prompt": rubric.rubric_prompt,
        "suite_provider": rubric.suite_provider,
    }
    try:
        judgement = judge.judge_output(rubric=rubric.rubric, case=case, output=output)
    except JudgeContextError as exc:
        return {**entry, "status": STATUS_NOT_EVALUATED, "passed": None, "reason": f"refused: {exc}"}
    passed = check_passed(rubric, judge_passed=judgement.passed, score=judgement.score)
    status = STATUS_NOT_EVALUATED if passed is None else STATUS_PASSED if passed else STATUS_FAILED
    # "passed" is the check's (threshold and not- applied); the judge's own answer stays beside it.
    return {
        **entry,
        **asdict(judgement),
        "judge_passed": judgement.passed,
        "status": status,
        "passed": passed,
    }


def judge_output_checks(
    judge: Any, *, pending: list[dict[str, Any]], case_input: str, variables: dict[str, str], output: str
) -> list[dict[str, Any]]:
    """One result per pending assertion of a case, for one output (see the module's statuses)."""
    results = []
    for item in pending:
        rubric = check_rubric(item, variables=variables, output=output)
        head = {"type": str(item.get("type", "")), "metric": item.get("metric")}
        if not isinstance(rubric, CheckRubric):
            results.append({**head, "status": STATUS_NOT_JUDGEABLE, "passed": None, "reason": rubric.reason})
            continue
        results.append({**head, **_judged(judge, rubric, case=case_input, output=output)})
    return results


def row_verdict(results: list[dict[str, Any]]) -> tuple[float | None, bool | None]:
    """The output's value (share of evaluated checks that passed) and passed (see the module)."""
    judgeable = [r for r in results if r["status"] != STATUS_NOT_JUDGEABLE]
    evaluated = [r for r in judgeable if r["status"] in (STATUS_PASSED, STATUS_FAILED)]
    value = sum(r["passed"] for r in evaluated) / len(evaluated) if evaluated else None
    if any(r["status"] == STATUS_FAILED for r in evaluated):
        return value, False
    if judgeable and len(evaluated) == len(judgeable):
        return value, True
    return value, None


def score_judge_checks(*, run_id: int, force: bool = False, judge: Any = None) -> int:
    """Judge every output of the run whose case has pending checks; store one row per output.

    Outputs already judged by this judge (name and version) are skipped, so a redelivered task writes
    nothing twice; ``force`` deletes this judge's rows first. ``judge`` defaults to the run's own
    (``judge_for_run``), loaded only when some output is still to judge.
    """
    run = Run.objects.select_related("base_model", "judge_adapter").get(pk=run_id)
    # JSON containment is not in every backend (SQLite): the cases with pending checks are picked here.
    outputs = [
        o
        for o in Output.objects.filter(run=run)
        .exclude(case__expected=[])
        .select_related("case")
        .order_by("id")
        if pending_checks(o.case.expected)
    ]
    if not outputs:
        return 0
    judge = judge if judge is not None else judge_for_run(run)
    config_hash = _config_hash(judge)
    mine = MetricScore.objects.filter(run=run, metric=JUDGE_CHECKS_METRIC, config_hash=config_hash)
    if force:
        mine.delete()
    stored = set(mine.values_list("output_id", flat=True))
    written = 0
    for output in outputs:
        if output.pk in stored:
            continue
        case = output.case
        variables = {
            **{str(k): str(v) for k, v in (case.slices or {}).items()},
            "input": case.input,
            "reference": case.reference,
        }
        results = judge_output_checks(
            judge,
            pending=pending_checks(case.expected),
            case_input=case.input,
            variables=variables,
            output=output.text,
        )
        value, passed = row_verdict(results)
        row = MetricScore(
            run=run,
            adapter_id=output.adapter_id,
            case_id=case.pk,
            output=output,
            sample=output.sample,
            metric=JUDGE_CHECKS_METRIC,
            metric_version=CHECK_RUBRICS_VERSION,
            config_hash=config_hash,
            value=value,
            passed=passed,
            details={
                "judge_evaluated": True,
                "judge": {"name": judge.name, "version": judge.version},
                "results": results,
            },
        )
        with transaction.atomic():
            MetricScore.objects.bulk_create([row], ignore_conflicts=True)
        written += 1
    return written
