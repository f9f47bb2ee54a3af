"""The run pages: list, start form, progress page with cancel/resume, and the outputs browser."""

from __future__ import annotations

import pytest
from django.test import Client

from evalhub.runs.models import Run, RunStatus
from evalhub.runs.services import run_create, run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_start_a_run_from_the_form_and_follow_it(project, tiny, suite_version, engineer):
    client = logged_in(engineer)
    page = client.get(f"/p/{project.slug}/runs/new/")
    assert page.status_code == 200 and b"alpha@1" in page.content
    response = client.post(f"/p/{project.slug}/runs/new/", {
        "suite_version": suite_version.pk, "base_model": tiny["base"].pk, "adapters": [tiny["alpha"].pk],
        "baseline": tiny["beta"].pk, "backend": "hf", "max_new_tokens": 5, "temperature": 0, "top_p": 1,
        "seed": 0, "samples_per_case": 1, "truncation": "left", "name": "from the form",
    })
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/p/{project.slug}/runs/{run.pk}/"
    assert run.status == RunStatus.COMPLETED

    detail = client.get(response["Location"]).content.decode()
    assert "from the form" in detail and "12</span>/<span data-field=\"total\">12" in detail
    assert "passed" in detail and "runs/progress.js" in detail and "<script>" not in detail
    assert 'data-finished="true"' in detail
    assert "from the form" in client.get(f"/p/{project.slug}/runs/").content.decode()
    assert "Runs</a>" in client.get("/").content.decode()


def test_the_form_shows_a_refused_run_as_an_error(project, tiny, suite_version, engineer, tmp_path):
    import shutil

    from evalhub.catalog.services import adapter_register

    folder = tmp_path / "gone"
    shutil.copytree(tiny["alpha"].folder, folder)
    gone = adapter_register(project=project, base_model=tiny["base"], folder=str(folder), name="gone")
    shutil.rmtree(folder)
    response = logged_in(engineer).post(f"/p/{project.slug}/runs/new/", {
        "suite_version": suite_version.pk, "base_model": tiny["base"].pk, "adapters": [gone.pk],
        "backend": "hf", "max_new_tokens": 5, "temperature": 0, "top_p": 1, "seed": 0,
        "samples_per_case": 1, "truncation": "left",
    })
    assert response.status_code == 200 and b"adapter folder does not exist" in response.content
    assert not Run.objects.exists()
    bad = logged_in(engineer).post(f"/p/{project.slug}/runs/new/", {"suite_version": suite_version.pk})
    assert bad.status_code == 200 and b"This field is required" in bad.content


def test_outputs_browser_shows_adapters_side_by_side_with_pagination(project, tiny, suite_version, engineer):
    from tests.runs.conftest import make_suite_version, words

    version = make_suite_version(project, [words(i, 8) for i in range(25)], name="long", splits=None)
    run = run_start(run=run_create(project=project, suite_version=version, base_model=tiny["base"],
                                   adapters=[tiny["alpha"]], baseline=tiny["beta"],
                                   generation_config={"max_new_tokens": 3}))
    client = logged_in(engineer)
    first = client.get(f"/p/{project.slug}/runs/{run.pk}/outputs/").content.decode()
    assert "alpha@1" in first and "beta@1" in first and "Page 1 of 2 (25 cases)" in first
    assert first.count("tokens ·") == 40  # 20 cases x 2 adapters
    second = client.get(f"/p/{project.slug}/runs/{run.pk}/outputs/?page=2").content.decode()
    assert second.count("tokens ·") == 10
    heldout = client.get(f"/p/{project.slug}/runs/{run.pk}/outputs/?split=heldout").content.decode()
    assert "No case." in heldout


def test_cancel_and_resume_buttons_post_with_csrf(project, tiny, suite_version, engineer):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 3})
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    assert client.post(f"/p/{project.slug}/runs/{run.pk}/cancel/").status_code == 403  # no token
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "Cancel the run" in page
    token = client.cookies["csrftoken"].value
    client.post(f"/p/{project.slug}/runs/{run.pk}/cancel/", {"csrfmiddlewaretoken": token})
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "Resume" in page and "Cancel the run" not in page
    client.post(f"/p/{project.slug}/runs/{run.pk}/resume/", {"csrfmiddlewaretoken": token})
    assert Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED


def test_raters_and_outsiders_get_404(project, other_project, tiny, suite_version, rater):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])
    client = logged_in(rater)
    for url in (f"/p/{project.slug}/runs/", f"/p/{project.slug}/runs/{run.pk}/",
                f"/p/{project.slug}/runs/{run.pk}/outputs/", f"/p/{project.slug}/runs/new/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/p/{project.slug}/runs/{run.pk}/cancel/").status_code == 404
    assert Run.objects.get(pk=run.pk).status == RunStatus.PENDING
