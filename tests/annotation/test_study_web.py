"""Creating a study from the run page: the form, its refusals, and where it leads."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from annotation import rubric
from annotation.models import Study
from tests.annotation.factories import rater_user, run_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_lead(lead: Any) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def form_data(rows: Any, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "Which summary would you ship?",
        "baseline": rows.adapters["baseline"].pk,
        "candidates": [rows.adapters["candidate"].pk],
        "pairing": "baseline",
        "sampling": "all",
        "rubric_template": "summary_pairwise",
        "overlap": 2,
        "lease_minutes": 15,
        "instructions": "Check every number against the transcript.",
        "terms": "I rate independently.",
    }
    data.update(changes)
    return data


def new_study_url(rows: Any) -> str:
    return reverse("annotation:study-new", args=[rows.run.pk])


def test_run_page_links_to_a_prefilled_study_form(project, client_lead):
    rows = run_rows(project, n_cases=3)
    page = client_lead.get(reverse("runs:detail", args=[project.slug, rows.run.pk])).content.decode()
    assert new_study_url(rows) in page and "No study on this run yet" in page
    form = client_lead.get(new_study_url(rows)).content.decode()
    assert f'<option value="{rows.adapters["baseline"].pk}" selected>' in form
    assert f'<option value="{rows.adapters["candidate"].pk}" selected>' in form


def test_a_valid_form_creates_the_study_and_the_run_page_links_to_it(project, client_lead):
    rows = run_rows(project, n_cases=3)
    response = client_lead.post(new_study_url(rows), form_data(rows, lease_minutes=5))
    study = Study.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{study.public_id}/")
    assert study.tasks.count() == 3 and study.lease_seconds == 300 and study.created_by is not None
    page = client_lead.get(reverse("runs:detail", args=[project.slug, rows.run.pk])).content.decode()
    assert reverse("annotation:owner-study", args=[study.public_id]) in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "candidate"}, "name", None),
        ({"candidates": []}, "candidates", "required"),
        ({"sampling": "random"}, "sample_size", "number of cases"),
        ({"overlap": 0}, "overlap", "greater than or equal to 1"),
    ],
)
def test_bad_forms_are_refused_field_by_field(project, client_lead, changes, field, message):
    rows = run_rows(project, n_cases=2)
    if changes.get("name") == "candidate":
        changes = {"name": f"Is {rows.adapters['candidate'].name} better?"}
        message = "Names an adapter"
    response = client_lead.post(new_study_url(rows), form_data(rows, **changes))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Study.objects.exists()


def test_baseline_chosen_as_candidate_is_a_clear_error(project, client_lead):
    rows = run_rows(project, n_cases=2)
    data = form_data(rows, candidates=[rows.adapters["baseline"].pk, rows.adapters["candidate"].pk])
    response = client_lead.post(new_study_url(rows), data)
    assert "cannot also be a candidate" in response.content.decode()
    assert not Study.objects.exists()


def test_missing_outputs_are_counted_and_the_owner_chooses_to_proceed(project, client_lead):
    rows = run_rows(project, n_cases=3)
    rows.outputs[("candidate", rows.cases[0].key)].delete()
    waiting = client_lead.post(new_study_url(rows), form_data(rows))
    assert "1 task would lack an output" in waiting.content.decode()
    assert not Study.objects.exists()
    proceeding = client_lead.post(new_study_url(rows), form_data(rows, allow_missing="on"))
    assert proceeding.status_code == 302
    assert Study.objects.get().tasks.count() == 2


def test_a_rater_cannot_open_the_study_form(project):
    rows = run_rows(project, n_cases=1)
    client = Client()
    client.force_login(rater_user(project, "someone"))
    assert client.get(new_study_url(rows)).status_code == 404


def test_run_page_links_to_outputs_and_report(project, client_lead):
    rows = run_rows(project, n_cases=1)
    page = client_lead.get(reverse("runs:detail", args=[project.slug, rows.run.pk])).content.decode()
    assert reverse("runs:outputs", args=[project.slug, rows.run.pk]) in page
    assert reverse("reports:report", args=[project.slug, rows.run.pk]) in page


def test_custom_criteria_with_anchors_become_the_studys_rubric(project, client_lead):
    rows = run_rows(project, n_cases=2)
    custom = (
        '{"criteria": [{"key": "clarity", "label": "Clarity", "min": 1, "max": 3,'
        ' "anchors": {"1": "Muddled", "3": "Crisp"}}], "rationale": "required"}'
    )
    response = client_lead.post(new_study_url(rows), form_data(rows, rubric_template="custom", rubric_custom=custom))
    assert response.status_code == 302
    study = Study.objects.get()
    assert [c["key"] for c in study.rubric["criteria"]] == ["clarity"]
    assert study.rubric["criteria"][0]["anchors"] == {"1": "Muddled", "3": "Crisp"}
    assert study.rubric["rationale"] == "required"


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ("not json", "as JSON"),
        ('{"criteria": [{"key": "Bad Key"}]}', "lower_snake_case"),
        ('{"criteria": [{"key": "clarity", "min": 1, "max": 3, "anchors": {"9": "x"}}]}', "anchors"),
    ],
)
def test_bad_custom_criteria_are_refused_on_their_field(project, client_lead, custom, message):
    rows = run_rows(project, n_cases=2)
    response = client_lead.post(new_study_url(rows), form_data(rows, rubric_template="custom", rubric_custom=custom))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["rubric_custom"])
    assert not Study.objects.exists()


def test_gold_tasks_are_given_as_case_key_and_answer(project, client_lead):
    rows = run_rows(project, n_cases=4)
    gold = f"{rows.cases[0].key} candidate\n\n{rows.cases[1].key} tie\n"
    response = client_lead.post(new_study_url(rows), form_data(rows, gold=gold, gold_rate="0.25"))
    assert response.status_code == 302
    study = Study.objects.get()
    assert study.gold_rate == 0.25
    assert study.tasks.filter(is_gold=True).count() == 2 and study.tasks.filter(is_gold=False).count() == 2


@pytest.mark.parametrize(
    ("gold", "message"),
    [("just-a-key", "Line 1: write the case key and the answer"), ("no-such-case candidate", "not in this run")],
)
def test_bad_gold_lines_are_refused(project, client_lead, gold, message):
    rows = run_rows(project, n_cases=2)
    response = client_lead.post(new_study_url(rows), form_data(rows, gold=gold, gold_rate="0.5"))
    assert response.status_code == 200 and message in response.content.decode()
    assert not Study.objects.exists()


def test_cases_of_the_chosen_categories_are_rated_alone(project, client_lead):
    rows = run_rows(project, n_cases=3, categories={0: "refusal"})
    form = client_lead.get(new_study_url(rows)).context["form"]
    assert form.fields["single_categories"].choices == [("refusal", "refusal")]
    response = client_lead.post(new_study_url(rows), form_data(rows, single_categories=["refusal"]))
    assert response.status_code == 302
    tasks = Study.objects.get().tasks
    assert tasks.filter(output_b=None).count() == 2 and tasks.exclude(output_b=None).count() == 2


def test_adversarial_only_without_a_category_is_refused(project, client_lead):
    rows = run_rows(project, n_cases=2, categories={0: "refusal"})
    response = client_lead.post(new_study_url(rows), form_data(rows, rubric_template="adversarial_single"))
    assert "Choose the categories" in " ".join(response.context["form"].errors["single_categories"])


@pytest.mark.skipif(
    not hasattr(rubric, "ADVERSARIAL_RUBRIC"), reason="the adversarial rubric template comes with branch ratingform"
)
def test_adversarial_template_rates_only_those_cases_alone_on_expected_behaviour(project, client_lead):
    rows = run_rows(project, n_cases=3, categories={0: "refusal"})
    data = form_data(rows, rubric_template="adversarial_single", single_categories=["refusal"])
    assert client_lead.post(new_study_url(rows), data).status_code == 302
    study = Study.objects.get()
    assert study.rubric.get("kind") == "adversarial"
    assert study.tasks.count() == 2 and not study.tasks.exclude(output_b=None).exists()
