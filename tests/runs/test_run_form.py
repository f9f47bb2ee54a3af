"""The run form: sensible defaults, and a clear refusal of one adapter as both candidate and baseline."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evalhub.runs.forms import RunStartForm
from evalhub.runs.models import Run
from tests.factories import AdapterFactory, BaseModelFactory, SuiteFactory, SuiteVersionFactory

pytestmark = pytest.mark.django_db


def test_a_single_base_model_and_suite_are_preselected(project):
    base = BaseModelFactory(project=project)
    version = SuiteVersionFactory(suite=SuiteFactory(project=project))
    form = RunStartForm(project=project)
    assert form["base_model"].initial == base.pk
    assert form["suite_version"].initial == version.pk


def test_two_base_models_leave_the_choice_open(project):
    BaseModelFactory(project=project)
    BaseModelFactory(project=project, name="other-base", folder="/srv/other-base")
    assert RunStartForm(project=project)["base_model"].initial is None


def test_the_baseline_among_the_candidates_is_a_clear_error(project, engineer, client):
    base = BaseModelFactory(project=project)
    version = SuiteVersionFactory(suite=SuiteFactory(project=project))
    one = AdapterFactory(project=project, base_model=base)
    data = {
        "suite_version": version.pk,
        "base_model": base.pk,
        "adapters": [one.pk],
        "baseline": one.pk,
        "backend": "hf",
        "max_new_tokens": 8,
        "temperature": 0,
        "top_p": 1,
        "seed": 0,
        "samples_per_case": 1,
        "truncation": "left",
    }
    client.force_login(engineer)
    response = client.post(reverse("runs:new", args=[project.slug]), data)
    assert response.status_code == 200
    assert "both a candidate and the baseline" in response.context["form"].errors["baseline"][0]
    assert not Run.objects.exists()
