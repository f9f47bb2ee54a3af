"""The report through its interfaces: the gate CLI's exit codes, the API, the pages, plots and exports."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from html import escape
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Rating
from evalhub.reports.exports import cases_csv, csv_cell
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.reports.services import gate_policy_save
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db

LENIENT = "gates:\n  - metric: win_rate_lower\n    threshold: 0.5\n"


@pytest.fixture
def built(project: Any) -> Any:
    return build_run(
        project,
        n_cases=24,
        preference=lambda i, r: "candidate" if i % 4 else "tie",
        metrics={"rougeL": lambda k, i: 0.3 + 0.01 * i, "bleu": lambda k, i: 10.0 + (k == "cand")},
    )


def gate(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("gate", *args, stdout=out, stderr=err)
    return int(exc.value.code or 0), out.getvalue(), err.getvalue()


def test_gate_cli_exit_codes_follow_the_decision(project: Any, built: Any) -> None:
    code, out, _ = gate(str(built.run.pk))
    assert code == 2 and out.startswith("INCONCLUSIVE")  # default policy: agreement below 0.6 with these rows
    from evalhub.reports.services import gate_policy_save

    gate_policy_save(project=project, name="lenient", source=LENIENT)
    code, out, _ = gate(str(built.run.pk), "--policy", "lenient")
    assert code == 0 and out.startswith("GO") and "PASS" in out
    gate_policy_save(
        project=project, name="harsh", source="gates:\n  - metric: win_rate_lower\n    threshold: 0.95\n"
    )
    code, out, _ = gate(str(built.run.pk), "--policy", "harsh", "--json", "--freeze")
    body = json.loads(out)
    assert (
        code == 1
        and body["decision"] == "NO-GO"
        and Verdict.objects.filter(public_id=body["verdict"]).exists()
    )


def test_gate_cli_errors_exit_3_with_the_reason(built: Any) -> None:
    code, _, err = gate(str(built.run.pk), "--candidate", "nope@9")
    assert code == 3 and "nope@9" in err
    code, _, err = gate("999999")
    assert code == 3 and "No run" in err
    code, _, err = gate(str(built.run.pk), "--policy", "missing")
    assert code == 3 and "missing" in err


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    for raw in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(raw) == "'" + raw
    assert csv_cell("plain") == "plain" and csv_cell(-2.5) == -2.5 and csv_cell(None) == ""


def test_cases_csv_has_one_row_per_case(built: Any) -> None:
    from evalhub.reports.services import report_build

    report = report_build(run=built.run, resamples=200)
    first = dataclasses.replace(report.cases[0], key="=HYPERLINK(1)")
    report = dataclasses.replace(report, cases=(first, *report.cases[1:]))
    rows = list(csv.reader(io.StringIO(cases_csv(report))))
    assert len(rows) == 1 + len(built.cases)
    assert rows[1][0] == "'=HYPERLINK(1)"
    assert "rougeL_candidate" in rows[0]


def test_api_report_policies_and_verdicts(project: Any, lead: Any, rater: Any, built: Any) -> None:
    client = APIClient()
    client.force_authenticate(lead)
    body = client.get(f"/api/v1/runs/{built.run.pk}/report").json()
    assert body["report"]["win_rate"]["n"] == 72 and body["verdict"]["decision"] in (
        "GO",
        "NO-GO",
        "INCONCLUSIVE",
    )
    bad = client.post(
        "/api/v1/gate-policies",
        {"project": project.slug, "name": "x", "source": "gates:\n  - metric: wat\n    threshold: 1\n"},
        format="json",
    )
    assert bad.status_code == 400 and "wat" in bad.json()["error"]["message"]
    assert bad.json()["error"]["fields"] == {"gates[0].metric": ["Unknown metric 'wat'."]}
    impossible = client.post(
        "/api/v1/gate-policies",
        {"project": project.slug, "name": "x", "source": "gates:\n  - metric: win_rate\n    threshold: 2\n"},
        format="json",
    )
    assert (
        impossible.status_code == 400
        and "never pass" in impossible.json()["error"]["fields"]["gates[0].threshold"][0]
    )
    explained = client.get("/api/v1/gate-policies/metrics").json()
    by_metric = {m["metric"]: m for m in explained["metrics"]}
    assert by_metric["hallucination_rate"]["default_use"] == "interval"
    assert "min_n" in explained["fields"] and "min_n" in by_metric["adversarial_pass_rate"]["meaning"]
    made = client.post(
        "/api/v1/gate-policies",
        {"project": project.slug, "name": "lenient", "source": LENIENT},
        format="json",
    )
    assert made.status_code == 201
    verdict = client.post("/api/v1/verdicts", {"run": built.run.pk, "policy": "lenient"}, format="json")
    assert verdict.status_code == 201 and verdict.json()["decision"] == "GO"
    assert verdict.json()["why"].startswith(f"GO for {built.adapters['cand'].label}: all ")
    assert body["verdict"]["why"].startswith(body["verdict"]["decision"])
    got = client.get(f"/api/v1/verdicts/{verdict.json()['public_id']}?reopen=1").json()
    assert got["reopened"] == {
        "hash_ok": True,
        "reproduced": True,
        "status": "identical",
        "decision": "GO",
        "changes": [],
        "missing": [],
        "gone": [],
    }
    assert client.delete(f"/api/v1/gate-policies/{made.json()['id']}").status_code == 409
    # Raters never see reports.
    client.force_authenticate(rater)
    assert client.get(f"/api/v1/runs/{built.run.pk}/report").status_code == 404
    assert client.get(f"/api/v1/verdicts/{verdict.json()['public_id']}").status_code == 404


def test_pages_plots_and_exports_render_for_staff_only(
    project: Any, lead: Any, rater: Any, built: Any
) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    assert web.get(f"{base}state.json").json()["ready"]  # builds the report (tasks run in process)
    page = web.get(base)
    assert page.status_code == 200
    html = page.content.decode()
    assert built.adapters["cand"].label in html and 'id="decision"' in html
    # The one-line why sits at the top, and counts print as integers.
    assert re.search(r'id="why">(GO|NO-GO|INCONCLUSIVE) for ', html)
    assert '<td class="num">72</td>' in html and "72.000" not in html
    # A gate that does not pass links its worst cases (here the baseline as candidate: lower bleu).
    source = "gates:\n  - metric: metric_delta:bleu\n    threshold: 0\n"
    gate_policy_save(project=project, name="strict", source=source)
    cand = built.adapters["cand"].label
    other = next(a.label for a in built.adapters.values() if a.label != cand)
    web.get(f"{base}state.json?candidate={other}&baseline={cand}")
    strict = web.get(f"{base}?policy=strict&candidate={other}&baseline={cand}").content.decode()
    assert "worst cases: <a href=" in strict and 'title="bleu -1.000"' in strict
    for name in ("win-rates", "criteria", "slices", "metric-vs-human"):
        png = web.get(f"{base}plot/{name}.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert web.get(f"{base}export.pdf").content.startswith(b"%PDF")
    assert json.loads(web.get(f"{base}export.json").content)["report"]["counts"]["cases"] == 24
    case = built.cases[0]
    # A rater marks a hallucination span: it shows in the per-rating CSV and JSON and the case view.
    rating = (
        Rating.objects.filter(task__case=case, task__output_b__isnull=False)
        .select_related("task__output_a")
        .first()
    )
    text = rating.task.output_a.text
    rating.hallucination = {"A": {"flagged": True, "spans": [{"start": 0, "end": 4, "text": text[:4]}]}}
    rating.save(update_fields=["hallucination"])
    ratings = list(csv.DictReader(io.StringIO(web.get(f"{base}export.ratings.csv").content.decode())))
    assert len(ratings) == 72
    marked = next(r for r in ratings if r["rating_id"] == str(rating.pk))
    assert (
        json.loads(marked["spans_A"]) == [{"start": 0, "end": 4, "text": text[:4]}]
        and marked["spans_B"] == ""
    )
    as_json = json.loads(web.get(f"{base}export.ratings.json").content)["ratings"]
    spans = next(r for r in as_json if r["id"] == rating.pk)["hallucination"]["A"]["spans"]
    assert spans == [{"start": 0, "end": 4, "text": text[:4]}]
    drill = web.get(f"{base}cases/{case.pk}/")
    assert drill.status_code == 200 and built.raters[0].username in drill.content.decode()
    assert f'rating">{escape(text[:4])}</mark>' in drill.content.decode()
    assert web.get(f"/p/{project.slug}/trend/").status_code == 200
    assert web.get(f"/p/{project.slug}/trend/plot.png").content.startswith(b"\x89PNG")
    policies = web.get(f"/p/{project.slug}/gate-policies/")
    assert policies.status_code == 200
    # The editor explains every gate metric, the absolute ones included.
    assert "both_bad_share" in policies.content.decode() and "never a pass" in policies.content.decode()
    unconfirmed = web.post(f"{base}freeze")
    assert unconfirmed.status_code == 302 and unconfirmed["Location"].endswith("/report/")
    assert not Verdict.objects.exists()
    freeze = web.post(f"{base}freeze", {"confirm": "yes"})
    assert freeze.status_code == 302
    assert web.get(freeze["Location"] + "?reopen=1").status_code == 200
    web.force_login(rater)
    assert web.get(base).status_code == 404
    assert web.get(f"{base}plot/win-rates.png").status_code == 404


def test_a_policy_with_an_unknown_field_is_refused_on_the_page(project: Any, lead: Any) -> None:
    web = Client()
    web.force_login(lead)
    page = web.post(
        f"/p/{project.slug}/gate-policies/",
        {"name": "x", "source": "gates:\n  - metric: win_rate\n    threshold: 0.5\n    colour: red\n"},
    )
    assert page.status_code == 200 and "colour" in page.content.decode()
    assert not GatePolicy.objects.filter(name="x").exists()
