"""Gate policies: parsing refuses what it does not understand, naming the field."""

from __future__ import annotations

import pytest

from evalhub.errors import ValidationFailed
from evalhub.reports.gates import (
    DEFAULT_POLICY_YAML,
    default_policy,
    gate_evaluate,
    policy_parse,
    verdict_decide,
)
from tests.reports.factories import report_of


def test_default_policy_has_the_six_house_gates() -> None:
    metrics = [g["metric"] for g in default_policy()["gates"]]
    assert metrics == [
        "min_ratings",
        "alpha:factual_accuracy",
        "win_rate_lower",
        "criterion_delta:factual_accuracy",
        "hallucination_rate_delta",
        "must_refuse_pass_rate",
    ]


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
