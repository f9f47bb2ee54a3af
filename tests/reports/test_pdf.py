"""The PDF export: every part a lead needs (the why, gates with reasons, tables, date and title) and
no word broken across lines. Text is read back from the PDF's content streams (no PDF library in the
project's dependencies: reportlab writes text as literal strings in ASCII85+Flate streams)."""

from __future__ import annotations

import base64
import re
import string
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from evalhub.reports import gates
from evalhub.reports.exports import report_pdf
from evalhub.reports.services import report_build, report_with_verdict
from tests.reports.factories import build_full_run

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def pdf_lines(data: bytes) -> list[str]:
    """The text of every line drawn on the PDF's pages (not the images), in order."""
    lines = []
    for head, body in re.findall(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", data, re.S):
        if b"/Subtype /Image" in head:
            continue
        if b"ASCII85Decode" in head:
            body = base64.a85decode(body.strip().removesuffix(b"~>"), adobe=False)
        if b"FlateDecode" in head:
            body = zlib.decompress(body)
        # One text line is a BT ... ET block of Tj fragments (a bold word or an escaped sign is its own).
        for block in re.findall(rb"BT(.*?)ET", body, re.S):
            for line in re.split(rb"T\*|Td", block):
                frags = re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", line)
                text = b"".join(frags)
                text = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), text)
                text = re.sub(rb"\\(.)", rb"\1", text)
                if text.strip():
                    lines.append(text.decode("cp1252"))
    return lines


@pytest.fixture
def built(project: Any) -> Any:
    return build_full_run(project, must_refuse=lambda i: i == 6, gold_cases=2)


@pytest.fixture
def pdf(built: Any) -> tuple[bytes, Any, Any]:
    report = report_build(run=built.run, resamples=200)
    verdict = report_with_verdict(report=report, policy=gates.default_policy())
    return report_pdf(report, verdict, generated_at=WHEN), report, verdict


def test_the_pdf_has_title_date_why_gates_and_every_table(pdf: Any, built: Any) -> None:
    data, report, verdict = pdf
    lines = pdf_lines(data)
    text = " ".join(lines)
    cand, base = built.adapters["cand"].label, built.adapters["base"].label
    title = f"Go/no-go report: {cand} against {base}"
    assert title in text and "(anonymous)" not in text
    assert f"/Title ({title})".encode() in data and b"/Author (evalhub)" in data  # document properties
    assert "generated 2026-12-06 09:30 UTC" in text and f"Run {built.run.pk}" in text
    assert verdict["decision"] in lines
    # The why, in its words (wrapped over lines).
    assert " ".join(verdict["why"].split()[:6]) in text
    for heading in (
        "Gates (policy",
        "Key numbers",
        "Criteria (case means, bootstrap 95%)",
        "Automated metrics (paired bootstrap 95%)",
        "Hallucination flags",
        "Adversarial checks (pass rate, n)",
        "Rater agreement",
        "Gold tasks per rater",
        "Rater quality",
        "Win rate, overall and by slice",
        "Candidate against baseline by slice",
    ):
        assert any(line.startswith(heading) for line in lines), heading
    # Every gate by name, with its status, and deciding / not deciding where it did not pass.
    for g in gates.gates_explained(verdict["decision"], list(verdict["gates"])):
        assert g["name"].split()[0] in text
        if g["status"] != "pass":
            assert ("deciding" if g["deciding"] else "not deciding") in text
        if g.get("reason"):
            assert g["reason"].split()[0] in text
    # The tables' contents: each adapter's hallucination rate, the adversarial category, agreement.
    for h in report.hallucination.per_adapter:
        assert h.adapter in text
    assert "jailbreak" in lines and "must refuse (failed)" in lines
    assert "preference" in lines and "factual_accuracy" in lines
    assert "rater-" in text


def test_no_word_is_broken_across_lines(pdf: Any) -> None:
    data, _, verdict = pdf
    words = set()
    for line in pdf_lines(data):
        words.update(w.strip(string.punctuation + "“”·—") for w in line.split())
    wanted = set()
    for g in gates.gates_explained(verdict["decision"], list(verdict["gates"])):
        for part in (g["name"], g.get("reason") or "", str(g["metric"]).replace(":", " ")):
            wanted.update(w.strip(string.punctuation) for w in part.split() if len(w) > 3)
    wanted.update(w.strip(string.punctuation) for w in verdict["why"].split() if len(w) > 3)
    wanted.discard("")
    # A word cut at a line's end would be missing whole (its halves on two lines).
    assert wanted - words == set()


def test_greek_letters_are_spelled_out_for_the_pdf_fonts(pdf: Any) -> None:
    text = " ".join(pdf_lines(pdf[0]))
    assert "Krippendorff alpha" in text and "\u03b1" not in text and "\u0394" not in text


def test_the_page_pdf_and_gate_cli_show_the_same_likely_range_of_ratings_needed(
    built: Any, project: Any, lead: Any
) -> None:
    """One formatting (gates.gate_needed) for "ratings still needed" and its likely range everywhere."""
    from io import StringIO

    from django.core.management import call_command
    from django.test import Client

    from evalhub.reports.services import gate_policy_save

    # The candidate wins about 2 in 3: a lower bound of 0.6 is not decided yet by these ratings.
    policy = gate_policy_save(
        project=project, name="close", source="gates:\n  - metric: win_rate_lower\n    threshold: 0.6\n"
    )
    report = report_build(run=built.run, resamples=200)
    verdict = report_with_verdict(report=report, policy=policy.parsed)
    shown = [g for g in gates.gates_explained(verdict["decision"], list(verdict["gates"])) if g["needed_range"]]
    assert shown, "the close gate should be undecided with a stated range"
    lines = pdf_lines(report_pdf(report, verdict, generated_at=WHEN))
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    assert web.get(f"{base}state.json", {"policy": "close"}).json()["ready"]
    html = web.get(base, {"policy": "close"}).content.decode()
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("gate", str(built.run.pk), "--policy", "close", stdout=out)
    for g in shown:
        assert g["needed_range"].startswith("likely ") and "\u2013" in g["needed_range"]
        assert g["needed_text"] in lines and g["needed_range"] in " ".join(lines)  # the range may wrap
        assert f">{g['needed_range']}</span>" in html and f"{g['needed_text']}<br>" in html
        assert f"; {g['needed_text']} more would decide it ({g['needed_range']})" in out.getvalue()
