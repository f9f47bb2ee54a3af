"""Blinding: nothing a rater receives (pages, JSON, URLs, redirects) names the system behind an output."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from django.test import Client
from django.urls import reverse

from annotation.blinding import task_blind
from annotation.models import Task
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
        assert set(task) == {"public_id", "input", "reference", "sides", "rubric", "expected"}
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
    assert seen_responses >= 20  # four tasks: two pairs, one of the two single outputs, the gold pair
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
    assert set(blind) == {"public_id", "input", "reference", "sides", "rubric", "expected"}
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


ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def history_rows(project):
    """Two candidates against one baseline, greedy-style: an adapter writes one fixed text per case,
    so the baseline's text for a case is word for word the same in both of that case's pairs."""
    marks = {"baseline": "steady", "cand": "bolder", "other": "softer"}
    return run_rows(
        project,
        n_cases=6,
        adapters=("baseline", "cand", "other"),
        categories={5: "adversarial"},
        text=lambda key, case, i: f"Case {i}, {marks[key]} summary: revenue grew {3 + i} percent.",
    )


def serve_whole_history(client, study, secrets):
    """Everything one rater is served, through the pages and the API, until the queue says done."""
    served, extras = [], []
    for _ in range(30):
        response = client.get(reverse("annotation:next", args=[study.public_id]))
        if response.status_code != 302:
            assert_blind(response.content.decode(), secrets, "done page")
            break
        page = client.get(response["Location"]).content.decode()
        api = client.get("/api/v1/rater/next", {"study": study.public_id}).json()
        for body in (page, json.dumps(api)):
            assert_blind(body, secrets, "a served task")
            assert not ISO_MOMENT.search(body), "a served task carries a timestamp"
        task = api.pop("task")
        served.append(task)
        extras.append(api)
        data = rating_data(single=len(task["sides"]) == 1)
        posted = client.post(
            f"/api/v1/rater/tasks/{task['public_id']}/rating",
            json.dumps(data),
            content_type="application/json",
        )
        assert posted.status_code == 201, posted.content
    return served, extras


def test_a_raters_whole_history_reveals_no_adapter(project):
    rows = history_rows(project)
    study = study_create_from_run(run=rows.run, name="History study", overlap=2, terms="T", seed=5)
    rater = rater_user(project, "histo1")
    client = Client()
    client.force_login(rater)
    client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"})
    served, extras = serve_whole_history(client, study, rows.secrets())

    assert len(served) == 6, "one task per case: five pairs and one adversarial single output"
    texts = [side["text"] for task in served for side in task["sides"]]
    assert [t for t, n in Counter(texts).items() if n > 1] == [], "an output text was shown twice"
    assert len({task["input"] for task in served}) == 6
    # Every task has the same fields; the rubric differs only by task kind, never by adapter.
    assert {tuple(sorted(task)) for task in served} == {
        ("expected", "input", "public_id", "reference", "rubric", "sides")
    }
    assert len({json.dumps(t["rubric"], sort_keys=True) for t in served if len(t["sides"]) == 2}) == 1
    assert {json.dumps(extra, sort_keys=True) for extra in extras} == {json.dumps({"lease_seconds": 900})}
    # Sides: the baseline is sometimes A, sometimes B, in the order this rater met the pairs.
    baseline = rows.adapters["baseline"]
    tasks = {t.public_id: t for t in Task.objects.filter(study=study).select_related("output_a")}
    baseline_sides = [
        "A" if tasks[task["public_id"]].output_a.adapter_id == baseline.pk else "B"
        for task in served
        if len(task["sides"]) == 2
    ]
    assert set(baseline_sides) == {"A", "B"}, baseline_sides


def test_two_raters_histories_each_show_every_text_once_and_together_cover_the_study(project):
    rows = history_rows(project)
    study = study_create_from_run(run=rows.run, name="History study", overlap=1, terms="T", seed=6)
    histories = []
    for name in ("histo1", "histo2"):
        client = Client()
        client.force_login(rater_user(project, name))
        client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"})
        served, _ = serve_whole_history(client, study, rows.secrets())
        texts = [side["text"] for task in served for side in task["sides"]]
        assert len(texts) == len(set(texts)), f"{name} saw an output twice"
        histories.append({task["public_id"] for task in served})
    assert histories[0].isdisjoint(histories[1])
    assert len(histories[0] | histories[1]) == 12, "10 pair tasks and 2 of the 3 single outputs"
