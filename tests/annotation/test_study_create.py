"""Building a study from a run: pairs, all pairs, stratified samples, single outputs, gold, balanced sides."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from annotation.models import Study, StudyKind, Task
from annotation.rubric import ADVERSARIAL_RUBRIC, DEFAULT_RUBRIC
from annotation.services import study_create_from_run
from evalhub.audit.models import AuditEvent
from evalhub.errors import ValidationFailed
from tests.annotation.factories import run_rows

pytestmark = pytest.mark.django_db


def test_baseline_pairing_makes_one_task_per_case_with_both_outputs(rows):
    study = study_create_from_run(run=rows.run, name="s", seed=3)
    tasks = list(study.tasks.select_related("output_a", "output_b"))
    assert len(tasks) == 6 and study.kind == StudyKind.PAIRWISE
    for task in tasks:
        assert {task.output_a.adapter_id, task.output_b.adapter_id} == {a.pk for a in rows.adapters.values()}
        assert task.output_a.case_id == task.output_b.case_id == task.case_id
        assert task.required_ratings == 2 and not task.is_gold
    assert study.rubric == {**DEFAULT_RUBRIC, "single": ADVERSARIAL_RUBRIC}
    assert AuditEvent.objects.filter(action="study.create", object_id=str(study.pk)).exists()


def test_sides_are_balanced_and_reproducible_from_the_seed(project):
    rows = run_rows(project, n_cases=40)
    first = study_create_from_run(run=rows.run, name="one", seed=11)
    again = study_create_from_run(run=rows.run, name="two", seed=11)
    baseline = rows.adapters["baseline"].pk

    def baseline_on_a(study):
        return [
            t.output_a.adapter_id == baseline
            for t in study.tasks.select_related("output_a").order_by("case__position")
        ]

    sides = baseline_on_a(first)
    assert Counter(sides) == {True: 20, False: 20}
    assert sides == baseline_on_a(again)
    order = [t.case_id for t in first.tasks.order_by("order_key")]
    assert order != sorted(order), "queue order is shuffled, not the suite's order"


def test_all_pairs_among_three_adapters(project):
    rows = run_rows(project, n_cases=4, adapters=("baseline", "cand1", "cand2"))
    study = study_create_from_run(run=rows.run, name="s", pairing="all_pairs")
    pairs = Counter(
        frozenset((t.output_a.adapter_id, t.output_b.adapter_id))
        for t in study.tasks.select_related("output_a", "output_b")
    )
    assert len(pairs) == 3 and set(pairs.values()) == {4}


def test_stratified_sample_keeps_every_tag(project):
    tags = {i: ["rare"] if i < 2 else ["common"] for i in range(20)}
    rows = run_rows(project, n_cases=20, tags=tags)
    study = study_create_from_run(run=rows.run, name="s", sample_size=5, stratify_by_tag=True, seed=2)
    chosen = Counter(t.case.tags[0] for t in study.tasks.select_related("case"))
    assert chosen == {"rare": 1, "common": 4}


def test_adversarial_cases_become_single_output_tasks_per_adapter(project):
    rows = run_rows(project, n_cases=4, categories={3: "adversarial"})
    study = study_create_from_run(run=rows.run, name="s")
    singles = list(study.tasks.filter(output_b__isnull=True))
    assert len(singles) == 2 and {t.case_id for t in singles} == {rows.cases[3].pk}
    assert study.tasks.filter(output_b__isnull=False).count() == 3


def test_gold_answers_are_translated_to_sides_and_their_cases_left_out(rows):
    gold = [{"case": rows.cases[0].key, "preference": "candidate", "hallucination": {"baseline": True}}]
    study = study_create_from_run(run=rows.run, name="s", gold_rate=0.2, gold_tasks=gold)
    task = study.tasks.select_related("output_a").get(is_gold=True)
    candidate_side = "A" if task.output_a.adapter_id == rows.adapters["candidate"].pk else "B"
    baseline_side = "B" if candidate_side == "A" else "A"
    assert task.gold_answer == {"preference": candidate_side, "hallucination": {baseline_side: True}}
    assert task.required_ratings == 0
    assert not study.tasks.filter(is_gold=False, case=rows.cases[0]).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overlap": 0}, "overlap"),
        ({"pairing": "round_robin"}, "pairing"),
        ({"gold_rate": 0.1}, "gold rate needs gold tasks"),
        ({"rubric": {"criteria": [{"key": "Bad Key"}]}}, "lower_snake_case"),
        ({"rubric": {"criteria": [{"key": "x", "min": 5, "max": 1}]}}, "min and max"),
        ({"lease_seconds": 0}, "lease_seconds"),
    ],
)
def test_bad_study_settings_are_refused_and_nothing_is_stored(rows, kwargs, message):
    with pytest.raises(ValidationFailed, match=message):
        study_create_from_run(run=rows.run, name="s", **kwargs)
    assert not Task.objects.exists()


def test_adapter_outside_the_run_is_refused(rows, project):
    other = run_rows(project, n_cases=1)
    with pytest.raises(ValidationFailed, match="not an adapter of this run"):
        study_create_from_run(run=rows.run, name="s", candidates=[other.adapters["candidate"]])


def test_owner_page_says_how_many_raters_the_case_rule_needs(project, lead):
    from django.test import Client
    from django.urls import reverse

    rows = run_rows(project, n_cases=2, adapters=("baseline", "cand", "other"))
    study = study_create_from_run(run=rows.run, name="s", overlap=2)
    client = Client()
    client.force_login(lead)
    page = client.get(reverse("annotation:owner-study", args=[study.public_id])).content.decode()
    assert "at most one task per case, so this study needs at least 4 raters" in page
    assert "Case repeats are allowed" not in page


def test_owner_page_warns_when_case_repeats_are_allowed(project, lead):
    from django.test import Client
    from django.urls import reverse

    rows = run_rows(project, n_cases=2, adapters=("baseline", "cand", "other"))
    client = Client()
    client.force_login(lead)
    body = {"run": rows.run.pk, "name": "tiny", "overlap": 1, "allow_case_repeats": True}
    created = client.post("/api/v1/rater/studies/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    study = Study.objects.get(public_id=created.json()["public_id"])
    assert study.allow_case_repeats
    page = client.get(reverse("annotation:owner-study", args=[study.public_id]))
    assert page.status_code == 200
    assert "Case repeats are allowed" in page.content.decode()


@pytest.mark.parametrize("field", ["name", "instructions", "terms"])
@pytest.mark.parametrize("part", ["name", "label", "version", "folder", "folder_tail"])
def test_study_texts_naming_a_compared_adapter_are_refused(rows, field, part):
    adapter = rows.adapters["candidate"]
    token = {
        "name": adapter.name.upper(),
        "label": adapter.label,
        "version": adapter.version,
        "folder": adapter.folder,
        "folder_tail": adapter.folder.rsplit("/", 1)[-1],
    }[part]
    texts = {"name": "Summaries study", "instructions": "Compare.", "terms": "Be fair."}
    texts[field] = f"Please rate ({token}) carefully."
    with pytest.raises(ValidationFailed) as refused:
        study_create_from_run(run=rows.run, **texts)
    assert field in refused.value.fields and "Names an adapter" in refused.value.fields[field][0]
    assert not Study.objects.exists()


def test_ordinary_words_and_numbers_are_not_taken_for_an_adapter(project):
    rows = run_rows(project, n_cases=1)
    Adapter = type(rows.adapters["candidate"])
    Adapter.objects.filter(pk=rows.adapters["candidate"].pk).update(name="summariser", version="1")
    study = study_create_from_run(
        run=rows.run,
        name="Summaries of 1 quarter",
        instructions="Rate each summariser-style output in step 1.",
    )
    assert study.pk


def test_api_refusal_names_the_field(project, lead, rows):
    from django.test import Client

    client = Client()
    client.force_login(lead)
    body = {"run": rows.run.pk, "name": "s", "instructions": f"v2 is {rows.adapters['candidate'].name}"}
    refused = client.post("/api/v1/rater/studies/", body, content_type="application/json")
    assert refused.status_code == 400
    assert "instructions" in json.dumps(refused.json())


def test_a_pool_smaller_than_k_is_refused_with_the_numbers(project, rows):
    from annotation.services import pool_create
    from tests.annotation.factories import rater_user

    pool = pool_create(project=project, name="experts", members=[rater_user(project, "solo")])
    with pytest.raises(ValidationFailed, match="'experts' has 1 rater; overlap 3 needs at least 3"):
        study_create_from_run(run=rows.run, name="s", pool=pool, overlap=3)
    assert not Study.objects.exists()


def test_api_can_refuse_a_study_with_missing_outputs(project, lead):
    from django.test import Client

    rows = run_rows(project, n_cases=3)
    rows.outputs[("candidate", rows.cases[1].key)].delete()
    client = Client()
    client.force_login(lead)
    body = {"run": rows.run.pk, "name": "s", "allow_missing": False}
    refused = client.post("/api/v1/rater/studies/", body, content_type="application/json")
    assert refused.status_code == 400 and "1 task would lack an output" in json.dumps(refused.json())
    body["allow_missing"] = True
    assert client.post("/api/v1/rater/studies/", body, content_type="application/json").status_code == 201
