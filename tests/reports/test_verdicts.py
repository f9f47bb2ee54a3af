"""Verdicts over real rows: the bad-input list never gives GO, and a frozen verdict reopens to
the same numbers."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.audit.models import AuditEvent
from evalhub.reports.gates import default_policy, policy_parse
from evalhub.reports.services import (
    gate_policy_save,
    report_build,
    report_with_verdict,
    verdict_freeze,
    verdict_reopen,
)
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db

GOOD = {
    "preference": lambda i, r: "candidate" if (i + r) % 5 else "baseline",
    "scores": lambda i, r: (4 + (i + r) % 2, 3 + (i * r) % 2),
    "hallucination": lambda i, r: (False, i % 7 == 0),
    "metrics": {"rougeL": lambda k, i: 0.30 + (0.05 if k == "cand" else 0) + 0.01 * (i % 5)},
    "checks": lambda k, i: True,
    "categories": lambda i: "jailbreak" if i % 8 == 0 else "",
    "must_refuse": lambda i: i % 8 == 0,
}


def _decide(built: Any, policy: Any = None, **kw: Any) -> tuple[str, list[Any], Any]:
    report = report_build(run=built.run, resamples=500, **kw)
    outcome = report_with_verdict(report=report, policy=policy or default_policy())
    return outcome["decision"], outcome["gates"], report


def test_a_clearly_better_candidate_gets_go(project: Any) -> None:
    built = build_run(
        project,
        n_cases=40,
        preference=lambda i, r: "candidate" if i % 6 else "tie",
        scores=lambda i, r: (5, 3 + i % 2),
        hallucination=lambda i, r: (False, i % 5 == 0),
        metrics=GOOD["metrics"],
        checks=GOOD["checks"],
        # 20 adversarial cases: the default policy's adversarial floor needs min_n 20 to decide.
        categories=lambda i: "jailbreak" if i % 2 == 0 else "",
        must_refuse=GOOD["must_refuse"],
    )
    decision, gates, report = _decide(built)
    assert decision == "GO", [(g["name"], g["status"], g["value"], g["reason"]) for g in gates]
    assert report.win_rate.wins > report.win_rate.losses


def test_a_failed_must_refuse_case_gives_no_go(project: Any) -> None:
    built = build_run(
        project,
        n_cases=40,
        preference=lambda i, r: "candidate" if i % 6 else "tie",
        scores=lambda i, r: (5, 3 + i % 2),
        checks=lambda k, i: not (k == "cand" and i == 8),
        categories=GOOD["categories"],
        must_refuse=GOOD["must_refuse"],
    )
    decision, gates, _ = _decide(built)
    assert decision == "NO-GO"
    refuse = next(g for g in gates if g["metric"] == "must_refuse_pass_rate")
    assert refuse["status"] == "fail" and refuse["value"] < 1


def test_too_few_ratings_is_inconclusive_with_an_estimate(project: Any) -> None:
    built = build_run(
        project, n_cases=4, n_raters=2, preference=lambda i, r: "candidate" if i % 2 else "baseline"
    )
    decision, gates, _ = _decide(built)
    assert decision == "INCONCLUSIVE"
    enough = next(g for g in gates if g["metric"] == "min_ratings")
    assert enough["status"] == "fail" and enough["evidence"]["additional_n"] == 30 - 8


def test_a_single_rater_is_inconclusive_never_go(project: Any) -> None:
    built = build_run(
        project,
        n_cases=40,
        n_raters=1,
        preference=lambda i, r: "candidate",
        checks=GOOD["checks"],
        categories=GOOD["categories"],
        must_refuse=GOOD["must_refuse"],
    )
    decision, gates, _report = _decide(built)
    assert decision == "INCONCLUSIVE"
    alpha = next(g for g in gates if g["metric"] == "alpha:factual_accuracy")
    assert alpha["status"] == "missing" and "rater" in alpha["reason"]


def test_all_ties_is_inconclusive(project: Any) -> None:
    built = build_run(project, n_cases=30, preference=lambda i, r: "tie", scores=lambda i, r: (4, 4))
    decision, gates, report = _decide(built)
    assert decision == "INCONCLUSIVE"
    win = next(g for g in gates if g["metric"] == "win_rate_lower")
    assert win["status"] == "missing" and "ties" in win["reason"]
    assert report.win_rate.sign_test_p_value is None


def test_missing_metrics_are_inconclusive(project: Any) -> None:
    built = build_run(project, n_cases=30, preference=lambda i, r: "candidate")
    policy = policy_parse(
        "gates:\n  - metric: metric_delta:rougeL\n    threshold: 0\n  - metric: win_rate_lower\n    threshold: 0.5\n"
    )
    decision, gates, _ = _decide(built, policy)
    assert decision == "INCONCLUSIVE"
    assert gates[0]["status"] == "missing" and "rougeL" in gates[0]["reason"]


def test_excluding_weak_raters_shows_the_effect(project: Any) -> None:
    built = build_run(
        project,
        n_cases=30,
        n_raters=3,
        gold_cases=4,
        gold_right=lambda r: r != 2,
        preference=lambda i, r: "baseline" if r == 2 else "candidate",
    )
    report = report_build(run=built.run, resamples=300, exclude_raters_below=0.5)
    assert report.exclusion is not None
    assert [g.rater for g in report.exclusion.excluded] == [built.raters[2].username]
    before = report.exclusion.before.win_rate.ties_as_half.rate
    after = report.exclusion.after.win_rate.ties_as_half.rate
    assert after == 1.0 and before < after


def test_a_frozen_verdict_reopens_to_the_same_numbers_and_is_audited(project: Any, lead: Any) -> None:
    built = build_run(
        project,
        n_cases=30,
        preference=GOOD["preference"],
        scores=GOOD["scores"],
        hallucination=GOOD["hallucination"],
        metrics=GOOD["metrics"],
    )
    policy = gate_policy_save(
        project=project,
        name="strict",
        source="gates:\n  - metric: win_rate_lower\n    threshold: 0.5\n",
        actor=lead,
    )
    verdict = verdict_freeze(run=built.run, policy=policy, actor=lead)
    assert len(verdict.content_hash) == 64
    verdict.refresh_from_db()
    reopened = verdict_reopen(verdict)
    assert reopened.hash_ok and reopened.reproduced and reopened.status == "identical"
    assert reopened.decision == verdict.decision and not reopened.changes and not reopened.gone
    assert AuditEvent.objects.filter(action="verdict.freeze", object_id=str(verdict.pk)).exists()
    # Tampering with the stored snapshot is detected, and the tampered number is named.
    wins = verdict.snapshot["report"]["win_rate"]["wins"]
    verdict.snapshot["report"]["win_rate"]["wins"] += 1
    tampered = verdict_reopen(verdict)
    assert tampered.hash_ok is False and tampered.status == "changed"
    assert [(c.path, c.old, c.new) for c in tampered.changes] == [("report.win_rate.wins", wins + 1, wins)]


def test_three_adapters_give_a_leaderboard_with_style_control(project: Any) -> None:
    built = build_run(
        project,
        n_cases=30,
        adapters=("base", "cand", "other"),
        preference=lambda i, r: ["candidate", "baseline", "tie"][(i + r) % 3],
    )
    report = report_build(run=built.run, resamples=300)
    assert report.leaderboard.bradley_terry is not None and report.leaderboard.style_controlled is not None
    ratings = report.leaderboard.bradley_terry.ratings
    assert {r.model for r in ratings} == {a.label for a in built.adapters.values()}
    assert report.leaderboard.style_controlled.ratings.ratings
    assert report.style.controlled is not None and report.style.controlled.controlled_win_rate is not None


def test_lineage_compares_with_the_parent_in_the_same_run(project: Any) -> None:
    built = build_run(project, n_cases=10, metrics=GOOD["metrics"], with_study=False)
    cand = built.adapters["cand"]
    cand.parent = built.adapters["base"]
    cand.save()
    report = report_build(run=built.run, resamples=200)
    assert report.lineage is not None
    parent = report.lineage["parent"]
    assert parent is not None and parent.in_run
    assert parent.metric_deltas["rougeL"] == pytest.approx(0.05)
