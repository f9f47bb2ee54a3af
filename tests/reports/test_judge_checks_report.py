"""The report marks the pending checks a judge evaluated: their own section (page, JSON, CSV, PDF),
never mixed with evalhub's checks or the automatic metrics, and a gate on them says it rests on them."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client

from evalhub.reports import gates, services
from evalhub.reports.exports import cases_csv, report_pdf
from evalhub.reports.schema import report_from_dict
from evalhub.reports.services import report_build, report_with_verdict
from evalhub.reports.snapshots import rows_dump, rows_load
from evalhub.runs.models import MetricScore, Output
from metrics.registry import JUDGE_CHECKS_METRIC
from tests.reports.factories import build_run
from tests.reports.test_pdf import WHEN, pdf_lines

pytestmark = pytest.mark.django_db

JUDGE = {"name": "base", "version": "abc123"}
OLD_JUDGE = {"name": "base", "version": "old000"}


def _result(passed: bool | None) -> dict[str, Any]:
    status = {True: "passed", False: "failed", None: "not_evaluated"}[passed]
    return {
        "type": "llm-rubric", "status": status, "passed": passed, "reason": f"judge says {status}",
        "prompt": "You check one answer against a rubric.", "raw_output": '{"logprob_pass": -1.0}',
    }  # fmt: skip


def _judged(run: Any, key: str, verdicts: dict[int, bool | None], judge: dict[str, str] = JUDGE) -> None:
    """Store judge-evaluated results for adapter `key`'s outputs of the cases in `verdicts`."""
    outputs = (
        Output.objects.filter(run=run, adapter__name=key).select_related("case").order_by("case__position")
    )
    rows = []
    for i, output in enumerate(outputs):
        if i not in verdicts:
            continue
        rows.append(
            MetricScore(
                run=run,
                adapter_id=output.adapter_id,
                case_id=output.case_id,
                output=output,
                sample=0,
                metric=JUDGE_CHECKS_METRIC,
                metric_version="1",
                config_hash=judge["version"].ljust(64, "0"),
                value=None if verdicts[i] is None else float(verdicts[i]),
                passed=verdicts[i],
                details={"judge_evaluated": True, "judge": judge, "results": [_result(verdicts[i])]},
            )
        )
    MetricScore.objects.bulk_create(rows)


@pytest.fixture
def built(project: Any) -> Any:
    built = build_run(
        project,
        n_cases=8,
        preference=lambda i, r: "candidate" if i % 3 else "baseline",
        checks=lambda k, i: i % 2 == 0,
        categories=lambda i: "injection",
    )
    # An older judge said every candidate output failed: only the newest judgement of an output counts.
    _judged(built.run, "cand", {i: False for i in range(4)}, judge=OLD_JUDGE)
    _judged(built.run, "cand", {0: True, 1: True, 2: False, 3: None})
    _judged(built.run, "base", {0: False, 1: False, 2: True})
    return built


def test_the_judges_results_are_their_own_marked_section_never_a_check_or_metric(built: Any) -> None:
    report = report_build(run=built.run, resamples=100)
    judged = report.judge_checks
    assert judged is not None and judged.judge_evaluated is True
    assert judged.judges == ("base@abc123",)
    cand, base = report.candidate_label, report.baseline_label
    assert (judged.per_adapter[cand].n, judged.per_adapter[cand].rate) == (3, pytest.approx(2 / 3))
    assert judged.not_evaluated[cand] == 1  # the unparseable one: neither passed nor failed
    assert (judged.per_adapter[base].n, judged.per_adapter[base].rate) == (3, pytest.approx(1 / 3))
    assert JUDGE_CHECKS_METRIC not in [m.metric for m in report.metrics]
    rows = {c.key: c for c in report.cases}
    first = rows[report.cases[0].key]
    assert first.judge_checks is not None and (first.judge_checks.candidate, first.judge_checks.baseline) == (
        True,
        False,
    )
    assert first.checks.candidate is True  # evalhub's own check result, unchanged beside it
    assert report.cases[5].judge_checks is None  # no judged output for that case
    # The JSON form carries the section and reads back the same.
    data = report.to_dict()
    assert data["judge_checks"]["judge_evaluated"] is True
    assert report_from_dict(data).judge_checks == judged


def test_a_report_without_judged_checks_has_no_section(project: Any) -> None:
    plain = build_run(project, n_cases=6, preference=lambda i, r: "candidate")
    report = report_build(run=plain.run, resamples=100)
    assert report.judge_checks is None and "judge_checks" not in report.to_dict()
    assert "judge_evaluated_checks_candidate" not in cases_csv(report).splitlines()[0]


def test_snapshots_keep_the_judges_rows(built: Any) -> None:
    from evalhub.reports.selectors import report_rows
    from evalhub.runs.models import RunAdapter

    ids = list(RunAdapter.objects.filter(run=built.run).values_list("adapter_id", flat=True))
    rows = report_rows(run=built.run, adapter_ids=ids)
    assert len(rows.judge_checks) == 7 and all(j == "base@abc123" for *_, j in rows.judge_checks)
    assert rows_load(rows_dump(rows)).judge_checks == rows.judge_checks
    assert not any(metric == JUDGE_CHECKS_METRIC for _, _, metric, _, _ in rows.scores)


def test_the_csv_has_judge_evaluated_columns(built: Any) -> None:
    report = report_build(run=built.run, resamples=100)
    table = list(csv.DictReader(io.StringIO(cases_csv(report))))
    first = table[0]
    assert (first["judge_evaluated_checks_candidate"], first["judge_evaluated_checks_baseline"]) == (
        "True",
        "False",
    )
    assert table[3]["judge_evaluated_checks_candidate"] == ""  # not evaluated: empty, not a result


def test_a_gate_on_the_judges_results_says_it_rests_on_them(built: Any) -> None:
    report = report_build(run=built.run, resamples=100)
    policy = gates.policy_parse(
        "name: p\ngates:\n  - name: judged\n    metric: judge_checks_pass_rate\n    op: '>='\n    threshold: 0.9\n"
    )
    decision, results = gates.verdict_decide(report, policy)
    (result,) = results
    assert result["value"] == pytest.approx(2 / 3) and result["status"] == "fail"
    assert result["judge_evaluated"] == "base@abc123"
    why = gates.verdict_why(decision, results, report.candidate_label)
    assert "judge-evaluated by base@abc123" in why
    worst = gates.gate_worst_cases(report, "judge_checks_pass_rate")
    assert [w["note"] for w in worst] == ["judge-evaluated check failed"]
    # Gates on evalhub's own checks never carry the mark.
    adversarial = gates.gate_evaluate(
        report, {"name": "a", "metric": "adversarial_pass_rate", "op": ">=", "threshold": 0.5,
                 "on_fail": "NO-GO", "use": "point", "min_n": None},
    )  # fmt: skip
    assert "judge_evaluated" not in adversarial
    # No judged results: the gate is missing (INCONCLUSIVE), never a pass.
    empty = gates.gate_evaluate(
        report_build(run=build_run(built.run.project, n_cases=4).run, resamples=50), policy["gates"][0]
    )
    assert empty["status"] == "missing" and "no judge-evaluated" in str(empty["reason"])


def test_the_page_and_the_pdf_mark_the_section_and_the_gate(project: Any, lead: Any, built: Any) -> None:
    caches[services.REPORT_CACHE].clear()
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    web.get(base)
    assert web.get(f"{base}state.json").json()["ready"] is True
    page = web.get(base).content.decode()
    assert 'id="judge-checks"' in page and "judge-evaluated" in page and "base@abc123" in page
    report = report_build(run=built.run, resamples=100)
    policy = gates.policy_parse(
        "name: p\ngates:\n  - name: judged\n    metric: judge_checks_pass_rate\n    op: '>='\n    threshold: 0.5\n"
    )
    verdict = report_with_verdict(report=report, policy=policy)
    # Lines joined by spaces: where a line wraps depends on the text around it (the run's id, say).
    text = " ".join(" ".join(pdf_lines(report_pdf(report, verdict, generated_at=WHEN))).split())
    assert "Pending checks evaluated by the judge (judge-evaluated)" in text
    assert "judge-evaluated by base@abc123" in text
    caches[services.REPORT_CACHE].clear()


def test_the_case_page_shows_the_newest_judges_results_with_the_raw_output(
    project: Any, lead: Any, built: Any
) -> None:
    web = Client()
    web.force_login(lead)
    case = built.cases[3]
    page = web.get(f"/p/{project.slug}/runs/{built.run.pk}/report/cases/{case.pk}/").content.decode()
    assert "judge-evaluated" in page and "by base@abc123" in page and "old000" not in page
    assert "not_evaluated" in page and "judge says not_evaluated" in page
    assert "{&quot;logprob_pass&quot;: -1.0}" in page
    assert "<td>judge_checks</td>" not in page  # not among the scores
