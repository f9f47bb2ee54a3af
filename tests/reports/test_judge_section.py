"""The report's Judge calibration section from stored judgements and ratings of a routed study: the
calibration table, the corrected win rate (and that the plain mean would be biased), the expert
ratings saved, the gates reading the corrected estimate, and the judge alone only when a policy allows."""

from __future__ import annotations

import json

import pytest

from annotation.models import Task
from annotation.queue import task_assign_next
from annotation.services import consent_accept, rating_submit, study_create_from_run
from evalhub.judging.logprob import OrderJudgement
from evalhub.judging.services import judgements_record, study_judge
from evalhub.reports import gates
from evalhub.reports.exports import report_pdf
from evalhub.reports.services import report_build, report_input_hash, report_key
from tests.annotation.factories import FULL_SCORES, rater_user, rating_data, run_rows
from tests.reports.test_pdf import pdf_lines

pytestmark = pytest.mark.django_db
N_CASES, WINS, RATED = 40, 28, 15  # the candidate truly wins 28 of 40 pairs; experts rate 15


class StoredJudge:
    """The identity of a judge whose answers are already stored: ``study_judge`` judges nothing again."""

    name, version = "fixture-judge", "0123456789abcdef"

    def judge_pairs(self, pairs, *, rubric):
        raise AssertionError("every pair is judged already")


def _cand_is_a(task, rows) -> bool:
    return task.output_a.adapter_id == rows.adapters["candidate"].pk


def _routed_study(
    project, *, rate: int = RATED, routing: str = "uncertainty_first", unsure=None, flags: bool = False
):
    """A study whose judge is sure on the pairs the candidate wins (0.99 both orders) and unsure on the
    ones it loses (its two orders disagree), so routing sends the losses to the experts first.
    ``unsure(position)`` picks the cases it is unsure on instead; it is sure and right on the others.
    With ``flags`` the experts also flag the candidate as hallucinating where it loses, and score its
    factual accuracy 2 there and 5 where it wins (the baseline: never flagged, always 4)."""
    rows = run_rows(project, n_cases=N_CASES)
    study = study_create_from_run(
        run=rows.run, name="Routed", overlap=2, seed=3, judge_base_model=rows.base_model, routing=routing
    )
    truth = {}
    for task in Task.objects.filter(study=study).select_related("output_a", "case"):
        wins = task.case.position < WINS
        truth[task.pk] = wins
        if unsure is None:
            p_cand = (0.99, 0.99) if wins else (0.55, 0.40)
        else:
            p_cand = (0.55, 0.40) if unsure(task.case.position) else (0.99, 0.99) if wins else (0.01, 0.01)
        results = []
        for order, p in zip(("ab", "ba"), p_cand, strict=True):
            prob_a = p if _cand_is_a(task, rows) else 1 - p
            pref = "A" if prob_a > 0.55 else "B" if prob_a < 0.45 else "tie"
            results.append(OrderJudgement(order, f"prompt {order}", json.dumps({"p": p}), pref, prob_a, 3.0))
        judgements_record(
            task=task, judge_name=StoredJudge.name, judge_version=StoredJudge.version, results=results
        )
    study_judge(study_id=study.pk, judge=StoredJudge())
    study.refresh_from_db()
    experts = [rater_user(project, f"routed-expert-{i}") for i in range(2)]
    for expert in experts:
        consent_accept(study=study, rater=expert)
        for _ in range(rate):
            assignment = task_assign_next(study=study, rater=expert)
            task = assignment.task
            cand_side = "A" if _cand_is_a(task, rows) else "B"
            other = "B" if cand_side == "A" else "A"
            extra = {}
            if flags:
                extra = {
                    "hallucination": {cand_side: not truth[task.pk], other: False},
                    "scores": {
                        **FULL_SCORES,
                        "factual_accuracy": {cand_side: 5 if truth[task.pk] else 2, other: 4},
                    },
                }
            rating_submit(
                public_id=task.public_id,
                rater=expert,
                data=rating_data(preference=cand_side if truth[task.pk] else other, **extra),
            )
    return rows, study, truth


def test_routed_study_report_corrects_the_win_rate_and_calibrates_the_judge(project):
    rows, study, truth = _routed_study(project)
    assert study.judge_state["routing"]["applied"]
    report = report_build(run=rows.run, study=study, resamples=200)
    judge = report.judge
    assert judge is not None and judge.routing == "uncertainty_first" and judge.pairs == N_CASES
    assert judge.judge == "fixture-judge@0123456789abcdef" and judge.judged == N_CASES

    # Routing sent the losses first: the plain mean of the rated pairs is far below the truth (0.7),
    # and the prediction-powered estimate, which the report uses, is close to it.
    true_rate = WINS / N_CASES
    assert judge.naive_win_rate.estimate < true_rate - 0.1
    assert judge.win_rate is not None and judge.win_rate.n_rated == RATED
    assert judge.estimator.startswith("prediction-powered")
    assert abs(judge.win_rate.estimate - true_rate) < 0.08
    assert abs(judge.win_rate.estimate - true_rate) < abs(judge.naive_win_rate.estimate - true_rate)

    # Calibration on exactly the pairs both rated, from the stored judgements.
    overall = judge.calibration.rows[0]
    assert (overall.criterion, overall.slice) == ("preference", "all")
    rated = set(Task.objects.filter(study=study, rating_count__gt=0).values_list("pk", flat=True))
    assert overall.n_units == len(rated) == RATED
    judge_right = sum(1 for t in rated if truth[t])  # unsure pairs' mean 0.475 reads as a tie: wrong
    assert overall.accuracy.rate == pytest.approx(judge_right / RATED)
    assert overall.kappa.ci_low is not None and overall.expert_mean_kappa == pytest.approx(1.0)
    # Position consistency needs no expert: it is measured on every pair judged in both orders.
    assert judge.calibration.consistency.n_pairs == N_CASES
    assert judge.calibration.consistency.rate.rate == pytest.approx(WINS / N_CASES)
    assert "may not stand in" in judge.calibration.statement
    assert judge.audit_calibration is not None and "audit" in judge.calibration_note

    # Ratings saved: what a uniform order needs for the same interval, against the 30 ratings given.
    saved = judge.ratings_saved
    assert saved.ratings_collected == 2 * RATED and saved.ratings_per_pair == 2
    assert (
        saved.uniform_ratings_needed is not None and saved.ratings_saved == saved.uniform_ratings_needed - 30
    )

    # The gate reads the corrected estimate and names it.
    outcome = gates.gate_evaluate(report, gates.default_policy()["gates"][2])
    assert outcome["metric"] == "win_rate_lower" and outcome["estimator"] == judge.estimator
    assert outcome["ci_low"] == pytest.approx(judge.win_rate.ci_low)
    assert "judge_only" not in outcome

    # The PDF carries the section with the same numbers.
    lines = " ".join(pdf_lines(report_pdf(report, {"decision": "INCONCLUSIVE", "gates": []})))
    assert "Judge calibration" in lines and "prediction-powered" in lines
    assert f"{judge.win_rate.estimate:.3f}" in lines and "Expert ratings saved" in lines
    assert "No gate reads the judge alone" in lines


def test_the_page_json_and_csv_show_the_section_from_the_cache(project):
    from django.test import Client
    from django.urls import reverse

    from evalhub.accounts.models import Role
    from evalhub.accounts.services import membership_set, user_create
    from evalhub.reports.services import report_cached

    rows, _, _ = _routed_study(project)
    lead = user_create(username="judge-lead", password="x-Secret-123")
    membership_set(project=project, user=lead, role=Role.LEAD)
    client = Client()
    client.force_login(lead)
    report = report_cached(run=rows.run)  # what the page reads: built once, then from the cache
    judge = report.judge
    page = client.get(reverse("reports:report", args=[project.slug, rows.run.pk])).content.decode()
    assert 'id="judge-calibration"' in page and "Judge calibration" in page
    assert judge.calibration.statement.split(":")[0] in page
    assert f"{judge.win_rate.estimate:.3f}" in page and "Expert ratings saved" in page
    assert f"{judge.calibration.rows[0].kappa.kappa:.2f}" in page
    # The routed study's criteria and flag rates are weighted, and the page says so under each table.
    assert page.count('class="muted routed-weighting"') == 2 and "weighted by 1/inclusion probability" in page
    export = reverse("reports:export", args=[project.slug, rows.run.pk, "json"])
    full = client.get(export).json()["report"]
    assert full["hallucination"]["weighting"] == report.hallucination.weighting is not None
    assert all(c["weighting"] == report.hallucination.weighting for c in full["criteria"])
    data = full["judge"]
    assert data["win_rate"]["estimate"] == pytest.approx(judge.win_rate.estimate)
    assert data["estimator"] == judge.estimator and data["ratings_saved"]["ratings_collected"] == 2 * RATED
    csv_text = client.get(
        reverse("reports:export", args=[project.slug, rows.run.pk, "judge.csv"])
    ).content.decode()
    header, first = csv_text.splitlines()[:2]
    assert header.startswith("table,criterion,slice,pairs,accuracy")
    assert first.startswith(f"rated,preference,all,{RATED},")


def test_judgements_are_part_of_the_report_cache_key(project):
    rows, study, _ = _routed_study(project, rate=3)
    before = report_key(run=rows.run)
    task = Task.objects.filter(study=study).order_by("pk").first()
    task.judgements.filter(order="ab").update(prob_a=0.123, preference="B")
    after = report_key(run=rows.run)
    assert before.key != after.key and report_input_hash(before.inp) != report_input_hash(after.inp)


def test_without_expert_ratings_only_an_allowing_policy_reads_the_judge(project):
    rows, study, _ = _routed_study(project, rate=0)
    report = report_build(run=rows.run, study=study, resamples=100)
    gate = gates.policy_parse("gates:\n  - {name: wins, metric: win_rate_lower, op: '>=', threshold: 0.5}\n")[
        "gates"
    ][0]
    refused = gates.gate_evaluate(report, gate)
    assert refused["status"] == "missing" and "allow_judge_only" in refused["reason"]
    allowing = gates.policy_parse(
        "allow_judge_only: true\ngates:\n  - {name: wins, metric: win_rate_lower, op: '>=', threshold: 0.5}\n"
    )
    decision, results = gates.verdict_decide(report, allowing)
    assert results[0]["judge_only"] is True and results[0]["value"] is not None
    assert "rests on the judge alone for: wins" in gates.verdict_why(decision, results, "cand")
    with pytest.raises(Exception, match="allow_judge_only must be true or false"):
        gates.policy_parse(
            "allow_judge_only: maybe\ngates:\n  - {metric: win_rate, op: '>=', threshold: 0.5}\n"
        )


def test_a_random_order_study_reports_calibration_and_no_saving(project):
    rows, study, _ = _routed_study(project, rate=10, routing="random")
    assert not Task.objects.filter(study=study).exclude(routing={}).exists()
    report = report_build(run=rows.run, study=study, resamples=100)
    judge = report.judge
    assert judge.routing == "random" and judge.win_rate is None
    assert judge.calibration.rows[0].n_units == 10
    assert judge.ratings_saved.ratings_saved is None and "uniform random" in judge.ratings_saved.reason
    outcome = gates.gate_evaluate(report, gates.default_policy()["gates"][2])
    assert "estimator" not in outcome  # the experts' own win rate, as before judges


def test_a_report_without_a_judge_has_no_section(project):
    rows = run_rows(project, n_cases=4)
    study = study_create_from_run(run=rows.run, name="plain")
    assert report_build(run=rows.run, study=study, resamples=100).judge is None
    assert "judge" not in report_build(run=rows.run, resamples=100).to_dict()


def test_a_frozen_verdict_with_a_judge_reopens_identical(project):
    from evalhub.reports.services import verdict_freeze, verdict_reopen

    rows, study, _ = _routed_study(project, rate=8)
    verdict = verdict_freeze(run=rows.run, study=study)
    assert verdict.snapshot["inputs"]["judged"] and verdict.snapshot["report"]["judge"]["win_rate"]
    win_gate = next(g for g in verdict.gates if g["metric"] == "win_rate_lower")
    assert win_gate["estimator"].startswith("prediction-powered")
    reopened = verdict_reopen(verdict)
    assert reopened.hash_ok and reopened.status == "identical", [c.to_dict() for c in reopened.changes]


def test_a_verdict_frozen_before_kappa_was_bounded_reopens_identical_with_its_calibration(project):
    from evalhub.reports.services import verdict_freeze, verdict_reopen
    from tests.reports.test_reopen import unbounded_kappa_snapshot, verdict_with

    # The experts rate every pair; the judge is sure and right on all but case 0, which it calls a tie:
    # its kappa with the experts is 0.95 on 40 pairs, whose Wald interval passes 1.
    rows, study, _ = _routed_study(
        project, rate=N_CASES, routing="random", unsure=lambda position: position == 0
    )
    verdict = verdict_freeze(run=rows.run, study=study)

    def highs(snapshot):
        return [r["kappa"]["ci_high"] for r in snapshot["report"]["judge"]["calibration"]["rows"]]

    assert verdict.snapshot["params"]["kappa_interval"] == "bounded" and max(highs(verdict.snapshot)) == 1.0
    legacy = unbounded_kappa_snapshot(verdict)
    assert min(highs(legacy)) > 1
    reopened = verdict_reopen(verdict_with(project, legacy))
    assert reopened.status == "identical", [c.to_dict() for c in reopened.changes]


def test_a_routed_studys_hallucination_rate_and_criterion_delta_are_weighted_and_the_gates_read_them(project):
    import dataclasses

    from evalhub.reports.compute import report_from_input

    # The candidate hallucinates on the 12 pairs it loses (true rate 12/40 = 0.3); routing sends those
    # to the experts first, so most of the 15 rated pairs are flagged.
    rows, _, _ = _routed_study(project, flags=True)
    key = report_key(run=rows.run)
    report = report_from_input(dataclasses.replace(key.inp, resamples=400))
    plain = report_from_input(dataclasses.replace(key.inp, resamples=400, routed_rates="rated"))
    cand = rows.adapters["candidate"].label
    rate = {h.adapter: h.share for h in report.hallucination.per_adapter}[cand]
    plain_rate = {h.adapter: h.share for h in plain.hallucination.per_adapter}[cand]
    true_rate = (N_CASES - WINS) / N_CASES
    assert plain_rate.rate > true_rate + 0.2, plain_rate  # the rated pairs' own rate: biased
    assert abs(rate.rate - true_rate) < 0.12 and abs(rate.rate - plain_rate.rate) > 0.15, (rate, plain_rate)
    assert rate.ci_low < rate.rate < rate.ci_high
    assert report.hallucination.weighting.startswith("weighted by 1/inclusion probability")
    assert plain.hallucination.weighting is None and "weighting" not in plain.to_dict()["hallucination"]
    # The baseline is never flagged, so the delta is the candidate's weighted rate per case.
    assert report.hallucination.delta.mean_difference == pytest.approx(rate.rate)
    assert report.hallucination.delta.weighted is True
    # Factual accuracy: +1 where the candidate wins, -2 where it loses, 0.1 over all 40 pairs.
    fa = report.criterion("factual_accuracy")
    plain_fa = plain.criterion("factual_accuracy")
    assert plain_fa.delta.mean_difference < -0.5
    assert abs(fa.delta.mean_difference - 0.1) < 0.4 and fa.weighting == report.hallucination.weighting

    # The gates read the weighted figures and name the weighting.
    policy = gates.policy_parse(
        "gates:\n"
        "  - {metric: hallucination_rate, op: '<=', threshold: 0.5, use: point}\n"
        "  - {metric: hallucination_rate_delta, op: '<=', threshold: 0.5}\n"
        "  - {metric: 'criterion_delta:factual_accuracy', op: '>=', threshold: -0.5, use: point}\n"
    )
    decision, results = gates.verdict_decide(report, policy)
    ceiling, delta, criterion = results
    assert ceiling["value"] == pytest.approx(rate.rate) and ceiling["status"] == "pass"
    assert (ceiling["ci_low"], ceiling["ci_high"]) == pytest.approx((rate.ci_low, rate.ci_high))
    assert delta["value"] == pytest.approx(rate.rate) and criterion["status"] == "pass"
    assert all(r["estimator"] == report.hallucination.weighting for r in results)
    assert decision == "GO"
    plain_decision, plain_results = gates.verdict_decide(plain, policy)
    assert plain_decision == "NO-GO" and not any("estimator" in r for r in plain_results)

    # The per-case CSV gives each case's weight; the PDF says which figures are weighted.
    from evalhub.reports.exports import cases_csv

    header = cases_csv(report).splitlines()[0]
    assert header.endswith(",routing_weight") and "routing_weight" not in cases_csv(plain)
    lines = " ".join(pdf_lines(report_pdf(report, {"decision": decision, "gates": results})))
    assert "weighted by 1/inclusion probability" in lines


def test_every_routed_pair_rated_gives_exactly_the_plain_figures(project):
    import dataclasses

    from evalhub.reports.compute import report_from_input

    rows, _, _ = _routed_study(project, rate=N_CASES, flags=True)
    key = report_key(run=rows.run)
    weighted = report_from_input(dataclasses.replace(key.inp, resamples=200))
    plain = report_from_input(dataclasses.replace(key.inp, resamples=200, routed_rates="rated"))
    assert weighted.judge.routing == "uncertainty_first"
    assert weighted.to_dict() == plain.to_dict()


def test_a_verdict_frozen_before_routed_rates_were_weighted_reopens_identical(project):
    from evalhub.reports.services import verdict_freeze, verdict_reopen
    from tests.reports.test_reopen import legacy_snapshot, verdict_with

    rows, study, _ = _routed_study(project, flags=True)
    verdict = verdict_freeze(run=rows.run, study=study)
    assert verdict.snapshot["params"]["routed_rates"] == "weighted"
    assert verdict.snapshot["report"]["hallucination"]["weighting"]
    assert verdict_reopen(verdict).status == "identical"

    # Frozen by the code before the weighting: the rated pairs' plain rates, no "routed_rates".
    legacy = legacy_snapshot(verdict, routed_rates="rated")
    assert "weighting" not in legacy["report"]["hallucination"]
    rates = [
        [h["rate"] for h in s["report"]["hallucination"]["per_adapter"]] for s in (verdict.snapshot, legacy)
    ]
    assert rates[0] != rates[1]
    reopened = verdict_reopen(verdict_with(project, legacy))
    assert (reopened.hash_ok, reopened.status) == (True, "identical"), [c.to_dict() for c in reopened.changes]
