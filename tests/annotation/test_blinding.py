"""Blinding: nothing a rater receives (pages, JSON, URLs, redirects) names the system behind an output."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation.blinding import task_blind
from annotation.services import rating_submit, study_create_from_run, task_skip
from tests.annotation.factories import rater_user, rating_data, run_rows

pytestmark = pytest.mark.django_db


def assert_blind(body: str, secrets: list[str], where: str) -> None:
    leaked = [s for s in secrets if s and s in body]
    assert not leaked, f"{where} reveals {leaked}"


def test_every_rater_visible_response_is_free_of_adapter_identity(project):
    rows = run_rows(project, n_cases=4, adapters=("baseline", "candidate"), categories={3: "adversarial"})
    gold = [{"case": rows.cases[0].key, "preference": "candidate"}]
    study = study_create_from_run(run=rows.run, name="Blind study", gold_rate=0.5, gold_tasks=gold, terms="T")
    rater = rater_user(project, "blind-rater")
    client = Client()
    client.force_login(rater)
    secrets = rows.secrets()
    seen_responses = 0

    def check(response, where):
        nonlocal seen_responses
        seen_responses += 1
        body = response.content.decode()
        assert_blind(body, secrets, where)
        assert_blind(response.headers.get("Location", ""), secrets, f"{where} redirect")
        for header in ("Location", "Link", "Set-Cookie"):
            assert_blind(str(response.headers.get(header, "")), secrets, f"{where} {header}")

    check(client.get(reverse("annotation:home")), "rater home")
    check(client.get(reverse("annotation:start", args=[study.public_id])), "onboarding")
    check(client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"}), "consent")
    check(client.get("/api/v1/rater/assigned-studies"), "api studies")
    for round_ in range(6):
        response = client.get(reverse("annotation:next", args=[study.public_id]))
        check(response, "next")
        if response.status_code != 302:
            break
        page = client.get(response["Location"])
        check(page, f"rating form {round_}")
        api = client.get("/api/v1/rater/next", {"study": study.public_id})
        check(api, "api next")
        task = api.json()["task"]
        assert set(task) == {"public_id", "input", "reference", "sides", "rubric"}
        if round_ == 1:
            check(client.post(response["Location"] + "skip/", {"reason": "expertise"}), "skip")
            continue
        single = len(task["sides"]) == 1
        data = rating_data(single=single)
        posted = client.post(
            f"/api/v1/rater/tasks/{task['public_id']}/rating",
            json.dumps(data),
            content_type="application/json",
        )
        check(posted, "api rating")
        assert posted.status_code == 201, posted.content
        check(client.get("/api/v1/rater/progress", {"study": study.public_id}), "api progress")
    check(client.get(reverse("annotation:next", args=[study.public_id])), "done page")
    assert seen_responses > 20
    # The error answers are blind too.
    check(client.get("/api/v1/rater/next", {"study": "nope"}), "api bad study")
    check(
        client.post("/api/v1/rater/tasks/nope/rating", "{}", content_type="application/json"), "api bad task"
    )


def test_rater_cannot_reach_owner_pages_or_endpoints(study, raters):
    client = Client()
    client.force_login(raters[0])
    assert client.get(reverse("annotation:owner-study", args=[study.public_id])).status_code == 404
    assert client.get(f"/api/v1/rater/studies/{study.public_id}/").status_code == 404
    assert client.get("/api/v1/rater/studies/").json() == []


def test_blind_task_carries_only_texts_sides_and_rubric(study):
    task = study.tasks.select_related("study", "case", "output_a", "output_b").first()
    blind = task_blind(task=task).as_dict()
    assert set(blind) == {"public_id", "input", "reference", "sides", "rubric"}
    assert [s["label"] for s in blind["sides"]] == ["A", "B"]
    assert blind["sides"][0]["text"] == task.output_a.text
    assert len(task.public_id) >= 20 and not task.public_id.isdigit()


def test_an_output_with_markup_is_escaped_in_the_form(project):
    evil = '<script>window.pwned=1</script><b onmouseover="x()">bold</b>'
    rows = run_rows(project, n_cases=1, text=lambda key, case, i: evil if key == "candidate" else "plain")
    study = study_create_from_run(run=rows.run, name="s")
    rater = rater_user(project, "r")
    client = Client()
    client.force_login(rater)
    client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"})
    page = client.get(
        client.get(reverse("annotation:next", args=[study.public_id]))["Location"]
    ).content.decode()
    assert "<script>window.pwned" not in page and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "<b onmouseover" not in page


def test_skip_and_rating_leave_no_trace_of_identity_in_messages(study, raters):
    client = Client()
    client.force_login(raters[0])
    from annotation.queue import task_assign_next

    a = task_assign_next(study=study, rater=raters[0])
    task_skip(public_id=a.task.public_id, rater=raters[0], reason="Other: tired")
    b = task_assign_next(study=study, rater=raters[0])
    rating_submit(public_id=b.task.public_id, rater=raters[0], data=rating_data())
    page = client.get(reverse("annotation:home")).content.decode()
    assert "1 rated" in page and "1 skipped" in page
