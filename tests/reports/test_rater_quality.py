"""Rater quality in the report: each rater's measures and flags, the one-click re-run without the
flagged raters (page, API, PDF, frozen verdict and its reopening), and the no-gold warning."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Rating
from evalhub.reports.compute import NO_GOLD_WARNING
from evalhub.reports.exports import rater_quality_rows
from evalhub.reports.services import report_build, verdict_freeze, verdict_reopen
from evalhub.reports.snapshots import content_hash
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db

N_CASES, N_GOLD = 20, 4
FAST, FAILS_GOLD, STRAIGHT, GOOD = 0, 1, 2, 3


def _preference(i: int, r: int) -> str:
    # The three raters to distrust prefer the baseline; the good one prefers the candidate on 3 of 4.
    if r == STRAIGHT:
        return "tie"
    if r == GOOD:
        return "candidate" if i % 4 else "baseline"
    return "baseline"


@pytest.fixture
def built(project: Any) -> Any:
    """Four raters on 20 pairs and 4 gold tasks: one rates most tasks in 2 s, one answers every gold
    task wrong, one gives the same scores and a tie everywhere, and one is fine."""
    built = build_run(
        project,
        n_cases=N_CASES,
        n_raters=4,
        gold_cases=N_GOLD,
        gold_right=lambda r: r != FAILS_GOLD,
        preference=_preference,
        scores=lambda i, r: (3, 3) if r == STRAIGHT else (4 + i % 2, 2 + i % 3),
    )
    fast = Rating.objects.filter(rater=built.raters[FAST]).order_by("pk")
    Rating.objects.filter(pk__in=list(fast.values_list("pk", flat=True)[:15])).update(time_on_task_ms=2000)
    return built


def _rows(report: Any) -> dict[str, Any]:
    return {r.rater: r for r in report.rater_quality.raters}


def report_page(web: Client, base: str, query: dict[str, str] | None = None) -> str:
    """The report page once built: its state poll builds it first (tasks run in process here)."""
    assert web.get(f"{base}state.json", query or {}).json()["ready"]
    return web.get(base, query or {}).content.decode()


def test_each_rater_gets_median_time_fast_share_gold_accuracy_and_straight_lining(built: Any) -> None:
    report = report_build(run=built.run, resamples=200)
    rows = _rows(report)
    fast, wrong, same, good = (rows[u.username].quality for u in built.raters)
    # 24 tasks each (20 pairs, 4 gold); 15 of the fast rater's took 2 s, the rest 20 s.
    assert (fast.n_ratings, fast.n_timed) == (24, 24)
    assert fast.median_seconds == 2.0 and fast.fast_share == pytest.approx(15 / 24)
    assert good.median_seconds == 20.0 and good.fast_share == 0.0
    assert (wrong.n_gold, wrong.n_gold_correct, wrong.gold_accuracy) == (4, 0, 0.0)
    assert (good.n_gold, good.n_gold_correct, good.gold_accuracy) == (4, 4, 1.0)
    # Same answer everywhere: 20 pairs x 2 sides of factual accuracy, all 3, and 20 ties.
    assert (same.n_straight_ratings, same.n_answers, same.straight_share) == (20, 60, 1.0)
    # The good rater: factual accuracy 4 on 16 of 40 sides (the rest 5, 2 and 3), and "B" on 15 of
    # 20 preferences (the candidate sits on B for odd cases).
    assert good.straight_share == pytest.approx((16 + 15) / 60)
    assert [f.code for f in fast.flags] == ["too_fast"]
    assert [f.code for f in wrong.flags] == ["failed_gold"]
    assert [f.code for f in same.flags] == ["straight_lining"]
    assert good.flags == ()
    assert "15 of 24 ratings (62%) took under 5 s" in fast.flags[0].reason
    assert "0 of 4 gold tasks right (0%)" in wrong.flags[0].reason
    assert not report.rater_quality.exclude_flagged and report.rater_quality.warnings == ()
    assert not any(r.excluded for r in report.rater_quality.raters)


def test_the_minimum_time_is_a_report_parameter(built: Any) -> None:
    report = report_build(run=built.run, resamples=200, min_seconds=1.5)
    fast = _rows(report)[built.raters[FAST].username].quality
    assert report.rater_quality.rules.min_seconds == 1.5
    assert fast.fast_share == 0.0 and fast.flags == ()


def test_excluding_flagged_raters_changes_the_numbers_and_says_who(built: Any) -> None:
    everyone = report_build(run=built.run, resamples=200)
    only_good = report_build(run=built.run, resamples=200, exclude_flagged=True)
    rq = only_good.rater_quality
    flagged = {built.raters[r].username for r in (FAST, FAILS_GOLD, STRAIGHT)}
    assert rq.exclude_flagged and {r.rater for r in rq.excluded} == flagged
    assert everyone.counts.pair_ratings == 4 * N_CASES and only_good.counts.pair_ratings == N_CASES
    assert only_good.counts.raters == 1
    # With everyone the baseline wins; the good rater alone prefers the candidate on 15 of 20.
    assert everyone.win_rate.ties_as_half.rate < 0.5
    assert only_good.win_rate.wins == 15 and only_good.win_rate.losses == 5
    assert rq.before.win_rate.ties_as_half.rate == everyone.win_rate.ties_as_half.rate
    assert rq.after.win_rate.ties_as_half.rate == only_good.win_rate.ties_as_half.rate
    # The measures themselves are over every rating, so the flags do not change with the exclusion.
    assert [r.quality for r in rq.raters] == [r.quality for r in everyone.rater_quality.raters]


def test_every_rater_excluded_is_a_warning_not_an_error(project: Any) -> None:
    built = build_run(
        project, n_cases=12, n_raters=2, preference=lambda i, r: "tie", scores=lambda i, r: (3, 3)
    )
    report = report_build(run=built.run, resamples=200, exclude_flagged=True)
    assert report.counts.pair_ratings == 0
    assert "Every rater was excluded" in report.rater_quality.warnings[-1]


def test_a_gold_filter_without_gold_tasks_warns_that_it_excluded_nobody(project: Any, lead: Any) -> None:
    built = build_run(project, n_cases=12, n_raters=3)
    assert report_build(run=built.run, resamples=200).rater_quality.warnings == ()
    for params in ({"exclude_raters_below": 0.8}, {"exclude_flagged": True}):
        report = report_build(run=built.run, resamples=200, **params)
        assert report.rater_quality.warnings == (NO_GOLD_WARNING,)
        assert report.rater_quality.gold_ratings == 0
        assert not report.rater_quality.excluded
    web = Client()
    web.force_login(lead)
    html = report_page(web, f"/p/{project.slug}/runs/{built.run.pk}/report/", {"exclude_below": "0.8"})
    assert NO_GOLD_WARNING in html
    assert NO_GOLD_WARNING not in report_page(web, f"/p/{project.slug}/runs/{built.run.pk}/report/")


def test_a_frozen_verdict_records_the_exclusion_and_reopens_identical(built: Any, lead: Any) -> None:
    verdict = verdict_freeze(run=built.run, exclude_flagged=True, min_seconds=3.0, actor=lead)
    params = verdict.snapshot["params"]
    assert params["exclude_flagged"] is True and params["min_seconds"] == 3.0
    stored = verdict.snapshot["report"]["rater_quality"]
    assert {r["rater"] for r in stored["raters"] if r["excluded"]} == {
        built.raters[r].username for r in (FAST, FAILS_GOLD, STRAIGHT)
    }
    assert verdict.snapshot["report"]["counts"]["pair_ratings"] == N_CASES
    reopened = verdict_reopen(verdict)
    assert reopened.status == "identical", [str(c) for c in reopened.changes]
    # The parameter is what reproduces it: a snapshot claiming no exclusion recomputes other numbers.
    verdict.snapshot["params"]["exclude_flagged"] = False
    verdict.content_hash = content_hash(verdict.snapshot)
    changed = verdict_reopen(verdict)
    paths = {c.path for c in changed.changes}
    assert changed.status == "changed" and "report.counts.pair_ratings" in paths


def test_the_report_page_links_a_rerun_without_flagged_raters(project: Any, lead: Any, built: Any) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    html = report_page(web, base)
    assert 'id="rater-quality"' in html and "Re-run without the 3 flagged raters" in html
    assert 'href="?exclude_flagged=1"' in html and 'id="raters-excluded"' not in html
    assert "too fast: 15 of 24 ratings" in html and "failed gold: 0 of 4" in html
    rerun = report_page(web, base, {"exclude_flagged": "1"})
    names = ", ".join(built.raters[r].username for r in (FAST, FAILS_GOLD, STRAIGHT))
    assert f"Flagged raters excluded: {names}." in rerun
    assert 'href="?"' in rerun  # "Include all raters" drops the parameter again
    # The exports and the freeze form carry the parameter (the page's query string).
    assert "export.pdf?exclude_flagged=1" in rerun and "freeze?exclude_flagged=1" in rerun
    body = json.loads(web.get(f"{base}export.json", {"exclude_flagged": "1"}).content)
    assert body["report"]["rater_quality"]["exclude_flagged"] is True
    assert body["report"]["counts"]["pair_ratings"] == N_CASES


def test_bad_rater_quality_parameters_are_field_errors_not_500(project: Any, lead: Any, built: Any) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    for query in ({"min_seconds": "soon"}, {"min_seconds": "-1"}, {"exclude_flagged": "maybe"}):
        response = web.get(base, query)
        assert response.status_code == 400, query
        assert next(iter(query)) in response.content.decode()
    api = APIClient()
    api.force_authenticate(lead)
    response = api.get(f"/api/v1/runs/{built.run.pk}/report", {"min_seconds": "nan"})
    assert response.status_code == 400
    assert "min_seconds" in json.dumps(response.json())


def test_api_report_and_verdict_take_the_exclusion(project: Any, lead: Any, built: Any) -> None:
    api = APIClient()
    api.force_authenticate(lead)
    body = api.get(f"/api/v1/runs/{built.run.pk}/report", {"exclude_flagged": "1", "min_seconds": "3"}).json()
    rq = body["report"]["rater_quality"]
    assert rq["exclude_flagged"] is True and rq["rules"]["min_seconds"] == 3.0
    good = next(r for r in rq["raters"] if not r["excluded"])
    assert good["rater"] == built.raters[GOOD].username and good["flags"] == []
    fast = next(r for r in rq["raters"] if r["rater"] == built.raters[FAST].username)
    assert fast["flags"][0]["code"] == "too_fast" and fast["median_seconds"] == 2.0
    created = api.post("/api/v1/verdicts", {"run": built.run.pk, "exclude_flagged": True}, format="json")
    assert created.status_code == 201, created.content
    detail = api.get(f"/api/v1/verdicts/{created.json()['public_id']}", {"reopen": "1"}).json()
    assert detail["report"]["rater_quality"]["exclude_flagged"] is True
    assert detail["reopened"]["status"] == "identical"


def test_the_pdf_has_a_rater_quality_section(project: Any, lead: Any, built: Any) -> None:
    report = report_build(run=built.run, resamples=200, exclude_flagged=True)
    notes, table = rater_quality_rows(report)
    names = ", ".join(built.raters[r].username for r in (FAST, FAILS_GOLD, STRAIGHT))
    assert notes[0] == f"Flagged raters excluded from every human number: {names}."
    assert table[0][:4] == ["Rater", "Ratings", "Median s", "Under 5 s"]
    fast = next(row for row in table if row[0].startswith(built.raters[FAST].username))
    assert fast[0].endswith("(excluded)") and fast[2] == "2.0" and fast[6].startswith("too fast: 15 of 24")
    web = Client()
    web.force_login(lead)
    pdf = web.get(f"/p/{project.slug}/runs/{built.run.pk}/report/export.pdf", {"exclude_flagged": "1"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_the_owner_page_and_the_report_give_each_rater_the_same_median_time(
    project: Any, lead: Any, built: Any
) -> None:
    """One median time per rater (metrics/rater_quality.py) on the study owner's page and the report."""
    from django.urls import reverse

    from annotation.models import Study
    from annotation.selectors import study_rater_stats

    good = Rating.objects.filter(rater=built.raters[GOOD]).order_by("pk")
    for k, pk in enumerate(good.values_list("pk", flat=True)):  # 24 times: the median falls between two
        Rating.objects.filter(pk=pk).update(time_on_task_ms=1000 + 1050 * k)
    report = report_build(run=built.run, resamples=200)
    study = Study.objects.get(run=built.run)
    owner = {s.username: s.median_seconds for s in study_rater_stats(study=study)}
    assert owner == {name: row.quality.median_seconds for name, row in _rows(report).items()}
    assert owner[built.raters[GOOD].username] == 13.075 and owner[built.raters[FAST].username] == 2.0

    web = Client()
    web.force_login(lead)
    page = web.get(reverse("annotation:owner-study", args=[study.public_id])).content.decode()
    html = report_page(web, f"/p/{project.slug}/runs/{built.run.pk}/report/")
    for shown in ("13.1", "2.0", "20.0"):
        assert f"<td>{shown} s</td>" in page and f'<td class="num">{shown}</td>' in html


def test_the_gate_cli_takes_the_rater_quality_parameters(built: Any, lead: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    from evalhub.reports.models import Verdict

    def gate(*args: str) -> tuple[int, str, str]:
        out, err = StringIO(), StringIO()
        with pytest.raises(SystemExit) as exc:
            call_command("gate", str(built.run.pk), *args, stdout=out, stderr=err)
        return int(exc.value.code or 0), out.getvalue(), err.getvalue()

    code, out, _ = gate("--exclude-flagged", "--min-seconds", "3", "--freeze", "--user", lead.username, "--json")
    assert code in (0, 1, 2)
    params = Verdict.objects.get(public_id=json.loads(out)["verdict"]).snapshot["params"]
    assert params["exclude_flagged"] is True and params["min_seconds"] == 3.0
    # A bad value is the report's own field error and exit 3 (never argparse's 2, which reads as INCONCLUSIVE).
    for bad in ("soon", "-1", "99999"):
        code, _, err = gate("--min-seconds", bad)
        assert code == 3 and "min_seconds: A number of seconds from 0 to 3600." in err
    assert Verdict.objects.count() == 1
