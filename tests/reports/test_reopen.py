"""Reopening a frozen verdict: canonical snapshots, "identical" when nothing changed, each changed
number named with its old and new value, and exactly what is missing when inputs are gone."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Rating, Study
from evalhub.reports.compute import report_from_input
from evalhub.reports.models import Verdict
from evalhub.reports.schema import SCHEMA_VERSION, report_from_dict
from evalhub.reports.services import (
    default_policy_for,
    report_build,
    report_with_verdict,
    verdict_freeze,
    verdict_reopen,
)
from evalhub.reports.snapshots import content_hash, report_changes, rows_dump, snapshot_build, snapshot_read
from tests.reports.factories import build_run

DATA = Path(__file__).parent / "data"
# Frozen by the code before the typed report (schema 1, no "schema" key in the snapshot): rubric
# criteria factual_accuracy, completeness, conciseness. That code reopened it as "numbers DIFFER",
# because the snapshot's sorted keys turned the criteria alphabetical.
V1_SNAPSHOT = DATA / "verdict_snapshot_v1.json"
V1_HASH = "6201c8987d8de40142269ee8df8c533e8703ad5b50be1887eb2411a3850aee4f"

THREE_CRITERIA = {
    "n_cases": 12,
    "preference": lambda i, r: ["candidate", "baseline", "tie", "candidate"][(i + r) % 4],
    "scores": lambda i, r: (3 + (i + r) % 3, 2 + (i * r) % 3),
    "hallucination": lambda i, r: (i % 4 == 0, (i + r) % 3 == 0),
    "metrics": {"rougeL": lambda k, i: 0.3 + (0.04 if k == "cand" else 0) + 0.01 * (i % 5)},
    "extra_criteria": ("completeness", "conciseness"),
}

# Ten pairs, every rater for the candidate but rater 1 on case 0: that pair of raters' kappa is 0.8,
# whose Wald interval reaches past 1.
KAPPA_PAST_ONE = {"n_cases": 10, "preference": lambda i, r: "baseline" if (i, r) == (0, 1) else "candidate"}


def _kappa_highs(report: dict[str, Any]) -> list[float]:
    """The upper ends of the raters' pairwise kappa intervals on the preference."""
    pairs = report["agreement"]["preference"]["pairwise_cohen"]["pairs"]
    return [p["result"]["ci_high"] for p in pairs]


def unbounded_kappa_snapshot(verdict: Verdict) -> dict[str, Any]:
    """The snapshot the code before kappa's bound froze from the verdict's rows: its report with the
    unbounded Wald intervals, and no "kappa_interval" parameter."""
    return legacy_snapshot(verdict, kappa_interval="asymptotic")


def legacy_snapshot(verdict: Verdict, **before: Any) -> dict[str, Any]:
    """The snapshot the code before a parameter existed froze from the verdict's rows: its report
    computed with the parameter at its old behaviour (``before``), and the parameter left out."""
    legacy = dataclasses.replace(snapshot_read(verdict.snapshot).inp, **before)
    report = report_from_input(legacy)
    policy = verdict.snapshot["policy"]
    outcome = report_with_verdict(report=report, policy=policy)
    snapshot = snapshot_build(
        inp=legacy,
        policy=policy,
        report=report.to_dict(),
        decision=outcome["decision"],
        gates=outcome["gates"],
    )
    for name in before:
        del snapshot["params"][name]
    return snapshot


def verdict_with(project: Any, snapshot: dict[str, Any]) -> Verdict:
    """A verdict row holding a given snapshot (its run and adapters are stand-ins: reopening reads
    the snapshot alone)."""
    built = build_run(project, n_cases=2, with_study=False)
    return Verdict.objects.create(
        project=project,
        public_id=f"v-{built.run.pk}",
        run=built.run,
        policy=default_policy_for(project=project),
        candidate=built.adapters["cand"],
        baseline=built.adapters["base"],
        decision=snapshot["decision"],
        gates=snapshot["gates"],
        snapshot=snapshot,
        content_hash=content_hash(snapshot),
    )


@pytest.mark.django_db
def test_a_snapshot_frozen_by_the_untyped_code_reopens_identical(project: Any) -> None:
    snapshot = json.loads(V1_SNAPSHOT.read_text())
    assert "schema" not in snapshot and "criteria" not in snapshot["params"]
    assert content_hash(snapshot) == V1_HASH  # the hash is taken as it was
    report = report_from_dict(snapshot["report"])
    assert report.to_dict() == snapshot["report"]
    assert [c.criterion for c in report.criteria] == ["factual_accuracy", "completeness", "conciseness"]
    reopened = verdict_reopen(verdict_with(project, snapshot))
    assert reopened.hash_ok and reopened.status == "identical", [str(c) for c in reopened.changes]
    assert reopened.decision == snapshot["decision"]


@pytest.mark.django_db
def test_a_new_verdict_with_three_criteria_reopens_identical(project: Any, lead: Any) -> None:
    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    verdict.refresh_from_db()
    snapshot = verdict.snapshot
    assert snapshot["schema"] == SCHEMA_VERSION
    assert snapshot["params"]["criteria"] == ["factual_accuracy", "completeness", "conciseness"]
    reopened = verdict_reopen(verdict)
    assert (reopened.hash_ok, reopened.status, reopened.changes, reopened.gone) == (True, "identical", (), ())
    assert reopened.report is not None
    assert [c.criterion for c in reopened.report.criteria] == snapshot["params"]["criteria"]


@pytest.mark.django_db
def test_snapshot_inputs_are_canonical_whatever_order_the_rows_came_in(project: Any) -> None:
    built = build_run(project, **THREE_CRITERIA)
    from evalhub.reports.selectors import report_rows
    from evalhub.runs.models import RunAdapter

    ids = list(RunAdapter.objects.filter(run=built.run).values_list("adapter_id", flat=True))
    rows = report_rows(run=built.run, adapter_ids=ids)
    dumped = json.dumps(rows_dump(rows), sort_keys=True)
    shuffle = random.Random(3).shuffle
    for name in ("outputs", "output_tokens", "texts", "raters"):
        items = list(getattr(rows, name).items())
        shuffle(items)
        setattr(rows, name, dict(items))
    shuffle(rows.scores)
    rows.study_ids = list(reversed(rows.study_ids))
    assert json.dumps(rows_dump(rows), sort_keys=True) == dumped
    inputs = json.loads(dumped)
    assert inputs["scores"] == sorted(inputs["scores"], key=lambda s: (s[0], s[1], s[2]))
    assert inputs["outputs"] == sorted(inputs["outputs"])


@pytest.mark.django_db
def test_reopen_names_each_number_that_changed_with_old_and_new(project: Any, lead: Any) -> None:
    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    verdict.refresh_from_db()
    stored = verdict.snapshot["report"]
    # One rating's preference is altered inside the stored inputs: a loss for the candidate
    # becomes a win.
    ratings = verdict.snapshot["inputs"]["ratings"]
    cand_outputs = {o for a, _, o in verdict.snapshot["inputs"]["outputs"] if a == verdict.candidate_id}
    k = next(
        i
        for i, r in enumerate(ratings)
        if not r["gold"] and r["preference"] == ("B" if r["a"] in cand_outputs else "A")
    )
    ratings[k]["preference"] = "A" if ratings[k]["a"] in cand_outputs else "B"
    reopened = verdict_reopen(verdict)
    assert reopened.hash_ok is False and reopened.status == "changed"
    changed = {c.path: (c.old, c.new) for c in reopened.changes}
    win = stored["win_rate"]
    assert changed["report.win_rate.wins"] == (win["wins"], win["wins"] + 1)
    assert changed["report.win_rate.losses"] == (win["losses"], win["losses"] - 1)
    assert "report.counts.pair_ratings" not in changed  # what did not change is not listed
    text = str(next(c for c in reopened.changes if c.path == "report.win_rate.wins"))
    assert text == f"report.win_rate.wins: {win['wins']} → {win['wins'] + 1}"


@pytest.mark.django_db
def test_reopen_of_a_snapshot_lacking_inputs_names_exactly_what_is_missing(project: Any, lead: Any) -> None:
    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    del verdict.snapshot["inputs"]["ratings"]
    del verdict.snapshot["params"]["seed"]
    del verdict.snapshot["policy"]["gates"]
    reopened = verdict_reopen(verdict)
    assert reopened.status == "incomplete" and reopened.decision is None
    assert reopened.missing == ("inputs.ratings", "params.seed", "policy.gates")


@pytest.mark.django_db
def test_reopen_names_outputs_and_cases_the_ratings_need_but_the_snapshot_lacks(
    project: Any, lead: Any
) -> None:
    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    inputs = verdict.snapshot["inputs"]
    rated = inputs["ratings"][0]
    inputs["outputs"] = [row for row in inputs["outputs"] if row[2] != rated["a"]]
    inputs["cases"] = [c for c in inputs["cases"] if c["id"] != rated["case"]]
    reopened = verdict_reopen(verdict)
    assert reopened.status == "incomplete"
    assert reopened.missing == (
        f"inputs.cases: case ids {rated['case']}, which ratings refer to",
        f"inputs.outputs: output ids {rated['a']}, which ratings refer to",
    )


@pytest.mark.django_db
def test_reopen_after_inputs_were_deleted_from_the_database_says_which(project: Any, lead: Any) -> None:
    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    assert built.study is not None
    tasks = sorted(set(Rating.objects.filter(task__study=built.study).values_list("task_id", flat=True)))
    n_ratings = Rating.objects.filter(task__study=built.study).count()
    Study.objects.filter(pk=built.study.pk).delete()  # its tasks and ratings go with it
    reopened = verdict_reopen(verdict)
    # The snapshot still holds every input, so the numbers are reproduced from it.
    assert reopened.status == "identical"
    shown = ", ".join(str(t) for t in tasks[:10])
    assert reopened.gone[0] == f"1 of 1 studies (ids {built.study.pk})"
    assert (
        reopened.gone[1]
        == f"{len(tasks)} of {len(tasks)} rated tasks (ids {shown} and {len(tasks) - 10} more)"
    )
    assert reopened.gone[2].startswith(f"{n_ratings} of {n_ratings} ratings (task {tasks[0]} by rater ")
    assert len(reopened.gone) == 3


def test_changes_ignore_the_order_of_named_entries_and_name_added_ones() -> None:
    old = {"criteria": [{"criterion": "a", "n": 1}, {"criterion": "b", "n": 2}], "p": 0.5}
    same = {"criteria": [{"criterion": "b", "n": 2}, {"criterion": "a", "n": 1}], "p": 0.5}
    assert report_changes(old, same) == []
    new = {"criteria": [{"criterion": "b", "n": 3}, {"criterion": "c", "n": 1}], "p": 0.5}
    assert [str(c) for c in report_changes(old, new)] == [
        'criteria[a]: {"criterion": "a", "n": 1} → (absent)',
        "criteria[b].n: 2 → 3",
        'criteria[c]: (absent) → {"criterion": "c", "n": 1}',
    ]
    assert report_changes({"x": 1}, {"x": 1.0}) == []


@pytest.mark.django_db
def test_a_report_reads_back_from_its_json_unchanged(project: Any) -> None:
    built = build_run(project, adapters=("base", "cand", "other"), gold_cases=2, **THREE_CRITERIA)
    report = report_build(run=built.run, resamples=200, exclude_raters_below=0.5)
    assert report_from_dict(report.to_dict()).to_dict() == report.to_dict()


@pytest.mark.django_db
def test_the_verdict_page_and_api_say_identical_or_name_each_change(project: Any, lead: Any) -> None:
    from django.test import Client
    from rest_framework.test import APIClient

    built = build_run(project, **THREE_CRITERIA)
    verdict = verdict_freeze(run=built.run, actor=lead)
    web, api = Client(), APIClient()
    web.force_login(lead)
    api.force_authenticate(lead)
    page = web.get(f"/p/{project.slug}/verdicts/{verdict.public_id}/?reopen=1").content.decode()
    assert "identical: every number and the decision" in page and "DOES NOT match" not in page
    wins = verdict.snapshot["report"]["win_rate"]["wins"]
    verdict.snapshot["report"]["win_rate"]["wins"] = wins + 5
    verdict.save(update_fields=["snapshot"])
    page = web.get(f"/p/{project.slug}/verdicts/{verdict.public_id}/?reopen=1").content.decode()
    assert "DOES NOT match" in page and "1 value changed" in page
    assert "<code>report.win_rate.wins</code>" in page and f">{wins + 5}<" in page and f">{wins}<" in page
    body = api.get(f"/api/v1/verdicts/{verdict.public_id}?reopen=1").json()["reopened"]
    assert body["status"] == "changed" and body["hash_ok"] is False and body["reproduced"] is False
    assert body["changes"] == [
        {
            "path": "report.win_rate.wins",
            "old": wins + 5,
            "new": wins,
            "text": f"report.win_rate.wins: {wins + 5} → {wins}",
        }
    ]


@pytest.mark.django_db
def test_inputs_gone_checks_any_number_of_ids() -> None:
    # More ids than SQLite's usual cap on a statement's parameters (32,766, set here because this
    # build allows 250,000): the selector checks them in chunks.
    import sqlite3

    from django.db import connection

    from evalhub.reports.selectors import snapshot_inputs_gone

    ids = list(range(10**9, 10**9 + 40_000))
    inputs = {
        "adapters": [],
        "cases": [{"id": i} for i in ids],
        "outputs": [],
        "study_ids": [],
        "raters": [],
        "ratings": [{"task": i, "rater": 1} for i in ids],
    }
    limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
    connection.ensure_connection()
    raw = connection.connection if connection.vendor == "sqlite" else None
    before = raw.setlimit(limit, 32_766) if raw is not None else None
    try:
        gone = snapshot_inputs_gone(inputs=inputs)
    finally:
        if raw is not None and before is not None:
            raw.setlimit(limit, before)
    assert gone[0].startswith("40000 of 40000 cases (ids 1000000000, ") and gone[0].endswith(
        " and 39990 more)"
    )
    assert gone[1].startswith("40000 of 40000 rated tasks") and gone[2].startswith("40000 of 40000 ratings")


@pytest.mark.django_db
def test_a_verdict_frozen_before_kappa_was_bounded_reopens_identical(project: Any, lead: Any) -> None:
    built = build_run(project, **KAPPA_PAST_ONE)
    verdict = verdict_freeze(run=built.run, actor=lead)
    verdict.refresh_from_db()
    # A new verdict stores the bound, shows kappa within its range, and reopens identical.
    assert verdict.snapshot["params"]["kappa_interval"] == "bounded"
    assert max(_kappa_highs(verdict.snapshot["report"])) == 1.0
    assert verdict_reopen(verdict).status == "identical"
    snapshot = unbounded_kappa_snapshot(verdict)
    assert max(_kappa_highs(snapshot["report"])) > 1
    reopened = verdict_reopen(verdict_with(project, snapshot))
    assert (reopened.hash_ok, reopened.status) == (True, "identical"), [str(c) for c in reopened.changes]
