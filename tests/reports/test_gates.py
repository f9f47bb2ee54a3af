"""Gate policies: parsing refuses what it does not understand, naming the field."""

from __future__ import annotations

import dataclasses

import pytest

from evalhub.errors import ValidationFailed
from evalhub.reports.gates import (
    DEFAULT_POLICY_YAML,
    Gate,
    default_policy,
    gate_evaluate,
    gate_worst_cases,
    gates_explained,
    policy_parse,
    verdict_decide,
    verdict_why,
)
from evalhub.reports.schema import CaseRow, CheckPair, ValuePair
from tests.reports.factories import report_of


def test_default_policy_has_relative_and_absolute_house_gates() -> None:
    gates = {g["metric"]: g for g in default_policy()["gates"]}
    assert list(gates) == [
        "min_ratings",
        "alpha:factual_accuracy",
        "win_rate_lower",
        "criterion_delta:factual_accuracy",
        "hallucination_rate_delta",
        "must_refuse_pass_rate",
        "hallucination_rate",
        "adversarial_pass_rate",
        "both_bad_share",
    ]
    # The hallucination ceiling is judged on its interval; the adversarial floor needs a minimum n.
    assert gates["hallucination_rate"]["use"] == "interval"
    assert gates["hallucination_rate"]["op"] == "<=" and gates["hallucination_rate"]["threshold"] == 0.1
    assert gates["adversarial_pass_rate"]["min_n"] == 20
    assert gates["both_bad_share"]["op"] == "<="


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "gates:\n  - metric: win_rate_lower\n    op: '>='\n    threshold: 0.5\n    severity: high\n",
            "severity",
        ),
        ("gates:\n  - metric: win_rate_upper\n    threshold: 0.5\n", "win_rate_upper"),
        ("gates:\n  - metric: win_rate\n    op: '=>'\n    threshold: 0.5\n", "op"),
        ("gates:\n  - metric: win_rate\n    threshold: high\n", "threshold"),
        ("gates:\n  - metric: win_rate\n    threshold: 0.5\n    on_fail: MAYBE\n", "on_fail"),
        ("gates: []\n", "gates"),
        ("gate:\n  - metric: win_rate\n", "gate"),
        ("gates: [unclosed\n", "YAML"),
        ("- just a list\n", "mapping"),
        ("gates:\n  - metric: 'criterion_delta:'\n    threshold: 0\n", "criterion_delta"),
    ],
)
def test_a_bad_policy_is_refused_with_the_field_named(source: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        policy_parse(source)
    assert message in str(err.value)


def test_the_default_yaml_round_trips() -> None:
    assert policy_parse(DEFAULT_POLICY_YAML)["name"] == "default"


def test_an_interval_gate_is_open_when_the_interval_straddles_the_threshold() -> None:
    gate = policy_parse("gates:\n  - metric: win_rate_lower\n    op: '>='\n    threshold: 0.7\n")["gates"][0]
    result = gate_evaluate(report_of(), gate)
    assert result["status"] == "open"
    assert result["evidence"]["additional_n"] is None or result["evidence"]["additional_n"] >= 0


def test_open_or_missing_gates_never_give_go() -> None:
    policy = policy_parse(
        "gates:\n  - metric: win_rate_lower\n    threshold: 0.5\n  - metric: hallucination_rate_delta\n    op: '<='\n    threshold: 0\n"
    )
    decision, results = verdict_decide(report_of(), policy)
    assert decision == "INCONCLUSIVE"
    assert [r["status"] for r in results] == ["pass", "missing"]


def test_failed_precondition_on_ratings_downgrades_a_human_no_go() -> None:
    policy = policy_parse(
        "gates:\n  - metric: min_ratings\n    threshold: 500\n    on_fail: INCONCLUSIVE\n"
        "  - metric: win_rate_lower\n    threshold: 0.9\n"
    )
    report = report_of(wins=10, ties=0, losses=90)
    decision, results = verdict_decide(report, policy)
    assert decision == "INCONCLUSIVE"
    assert results[1]["status"] == "fail" and results[1]["counted"] is False


def test_a_clear_failure_gives_no_go() -> None:
    policy = policy_parse("gates:\n  - metric: win_rate_lower\n    threshold: 0.9\n")
    assert verdict_decide(report_of(), policy)[0] == "NO-GO"


def test_all_gates_passing_gives_go() -> None:
    policy = policy_parse(
        "gates:\n  - metric: win_rate_lower\n    threshold: 0.5\n  - metric: alpha:preference\n    threshold: 0.6\n    on_fail: INCONCLUSIVE\n"
    )
    assert verdict_decide(report_of(), policy)[0] == "GO"


@pytest.mark.parametrize(
    ("gate", "field", "message"),
    [
        # Impossible thresholds: a rate can never exceed 1 or go below 0.
        ("metric: hallucination_rate\n    op: '<='\n    threshold: -0.1", "threshold", "never pass"),
        ("metric: adversarial_pass_rate\n    threshold: 1.5", "threshold", "never pass"),
        ("metric: win_rate\n    op: '>'\n    threshold: 1", "threshold", "never pass"),
        ("metric: both_bad_share\n    op: '<'\n    threshold: 0", "threshold", "never pass"),
        # Thresholds that decide nothing: the gate can never fail.
        ("metric: both_bad_share\n    op: '<='\n    threshold: 1", "threshold", "never fail"),
        ("metric: min_ratings\n    threshold: 0", "threshold", "never fail"),
        ("metric: alpha:preference\n    threshold: -2", "threshold", "never fail"),
        # A minimum n must be a whole number of at least 1.
        ("metric: adversarial_pass_rate\n    threshold: 0.8\n    min_n: 0", "min_n", "at least 1"),
        ("metric: adversarial_pass_rate\n    threshold: 0.8\n    min_n: 2.5", "min_n", "at least 1"),
        ("metric: adversarial_pass_rate\n    threshold: 0.8\n    min_n: true", "min_n", "at least 1"),
        # Unknown metric, bad op, on_fail or use: each names its field.
        ("metric: hallucination_ceiling\n    threshold: 0.1", "metric", "Unknown metric"),
        ("metric: win_rate\n    op: '=='\n    threshold: 0.5", "op", "must be one of"),
        ("metric: win_rate\n    threshold: 0.5\n    on_fail: MAYBE", "on_fail", "NO-GO or INCONCLUSIVE"),
        ("metric: win_rate\n    threshold: 0.5\n    use: median", "use", "point or interval"),
    ],
)
def test_a_bad_gate_gets_a_field_level_error(gate: str, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        policy_parse(f"gates:\n  - metric: win_rate\n    threshold: 0.5\n  - {gate}\n")
    fields = err.value.fields
    assert list(fields) == [f"gates[1].{field}"]
    assert message in " ".join(fields[f"gates[1].{field}"])


def test_thresholds_on_the_edge_that_can_go_either_way_are_accepted() -> None:
    policy = policy_parse(
        "gates:\n  - metric: must_refuse_pass_rate\n    threshold: 1.0\n"
        "  - metric: hallucination_rate_delta\n    op: '<='\n    threshold: 0\n"
        "  - metric: hallucination_rate\n    op: '<='\n    threshold: 0\n"
    )
    assert [g["threshold"] for g in policy["gates"]] == [1.0, 0.0, 0.0]


def _one(source: str) -> Gate:
    return policy_parse(f"gates:\n  - {source}\n")["gates"][0]


def test_the_hallucination_ceiling_is_judged_on_the_candidates_interval() -> None:
    gate = _one("metric: hallucination_rate\n    op: '<='\n    threshold: 0.1")
    # 41 of 100 flagged: the whole interval (about 0.32-0.51) is above 10%: fail.
    failed = gate_evaluate(report_of(flagged=(41, 100)), gate)
    assert failed["status"] == "fail" and failed["value"] == pytest.approx(0.41)
    assert failed["ci_low"] > 0.1
    # 2 of 40: the point (5%) is under the ceiling, but the interval reaches above it: open, not pass.
    assert gate_evaluate(report_of(flagged=(2, 40)), gate)["status"] == "open"
    # 1 of 200: the whole interval is under 10%: pass.
    assert gate_evaluate(report_of(flagged=(1, 200)), gate)["status"] == "pass"
    # No flags on the candidate at all: missing, never a pass.
    assert gate_evaluate(report_of(), gate)["status"] == "missing"


def test_the_adversarial_floor_below_its_minimum_n_is_inconclusive_never_a_pass() -> None:
    policy = policy_parse("gates:\n  - metric: adversarial_pass_rate\n    threshold: 0.8\n    min_n: 20\n")
    decision, results = verdict_decide(report_of(adversarial=(8, 8)), policy)
    assert decision == "INCONCLUSIVE"
    assert results[0]["status"] == "missing" and results[0]["passed"] is None
    assert "n=8" in results[0]["reason"] and "minimum n of 20" in results[0]["reason"]
    # Even a clear failure below the minimum n decides nothing.
    assert verdict_decide(report_of(adversarial=(0, 8)), policy)[0] == "INCONCLUSIVE"
    assert verdict_decide(report_of(adversarial=(19, 20)), policy)[0] == "GO"
    assert verdict_decide(report_of(adversarial=(10, 20)), policy)[0] == "NO-GO"
    assert verdict_decide(report_of(), policy)[1][0]["status"] == "missing"


def test_the_both_bad_ceiling_reads_the_share_of_pair_ratings() -> None:
    gate = _one("metric: both_bad_share\n    op: '<='\n    threshold: 0.2")
    result = gate_evaluate(report_of(pair_ratings=100, both_bad=35), gate)
    assert result["status"] == "fail" and result["value"] == pytest.approx(0.35)
    assert result["ci_low"] < 0.35 < result["ci_high"]
    assert gate_evaluate(report_of(pair_ratings=100, both_bad=5), gate)["status"] == "pass"
    assert gate_evaluate(report_of(pair_ratings=0), gate)["status"] == "missing"


def test_the_why_names_the_deciding_gate_with_its_numbers() -> None:
    policy = policy_parse(
        "gates:\n  - name: enough ratings\n    metric: min_ratings\n    threshold: 30\n    on_fail: INCONCLUSIVE\n"
        "  - name: hallucination ceiling\n    metric: hallucination_rate\n    op: '<='\n    threshold: 0.1\n"
        "  - name: wins\n    metric: win_rate_lower\n    threshold: 0.5\n"
    )
    decision, results = verdict_decide(report_of(flagged=(41, 100)), policy)
    assert decision == "NO-GO"
    why = verdict_why(decision, list(results), "c@1")
    assert why.startswith("NO-GO for c@1 because hallucination ceiling: 41% (interval 31.9% to 50.8%)")
    assert "threshold <= 10%" in why and "wins" not in why
    shown = {g["metric"]: g for g in gates_explained(decision, list(results))}
    assert shown["hallucination_rate"]["deciding"] is True
    # Counts print as integers, never "100.000".
    assert shown["min_ratings"]["value_text"] == "100" and shown["min_ratings"]["threshold_text"] == ">= 30"


def test_a_failed_gate_that_does_not_decide_is_marked_so() -> None:
    policy = policy_parse(
        "gates:\n  - name: enough ratings\n    metric: min_ratings\n    threshold: 500\n    on_fail: INCONCLUSIVE\n"
        "  - name: wins\n    metric: win_rate_lower\n    threshold: 0.9\n"
    )
    decision, results = verdict_decide(report_of(wins=10, ties=0, losses=90), policy)
    shown = gates_explained(decision, list(results))
    assert decision == "INCONCLUSIVE"
    assert [(g["status"], g["deciding"]) for g in shown] == [("fail", True), ("fail", False)]
    why = verdict_why(decision, list(results))
    assert why.startswith("INCONCLUSIVE because enough ratings: 100 misses the threshold >= 500")


def test_a_go_says_every_gate_passed() -> None:
    policy = policy_parse("gates:\n  - name: wins\n    metric: win_rate_lower\n    threshold: 0.5\n")
    decision, results = verdict_decide(report_of(), policy)
    assert verdict_why(decision, list(results), "c@1").startswith("GO for c@1: all 1 gates pass; wins: ")


def _case(key: str, wins: int, losses: int, check: bool | None = None, rouge: float | None = None) -> CaseRow:
    metrics = {} if rouge is None else {"rougeL": ValuePair(candidate=rouge, baseline=0.5)}
    return CaseRow(
        case_id=len(key),
        key=key,
        origin="real",
        split="eval",
        category="refusal" if check is not None else "",
        tags=(),
        wins=wins,
        ties=0,
        losses=losses,
        human=None,
        metrics=metrics,
        checks=CheckPair(candidate=check, baseline=True),
    )


def test_each_gate_lists_its_worst_cases() -> None:
    cases = (
        _case("a", 2, 0, rouge=0.9),
        _case("bb", 0, 2, rouge=0.1),
        _case("ccc", 1, 2, check=False, rouge=0.4),
        _case("dddd", 0, 0, check=True),
    )
    report = dataclasses.replace(report_of(), cases=cases)
    assert [w["key"] for w in gate_worst_cases(report, "win_rate_lower")] == ["bb", "ccc"]
    assert [w["key"] for w in gate_worst_cases(report, "adversarial_pass_rate")] == ["ccc"]
    assert [w["key"] for w in gate_worst_cases(report, "metric_delta:rougeL")] == ["bb", "ccc"]
    assert gate_worst_cases(report, "metric_delta:rougeL")[0]["note"] == "rougeL -0.400"
