"""promptfoo files mean what promptfoo means: YAML 1.2 (js-yaml) values, rendered as JavaScript would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalhub.suites.services import suite_import_file
from evalhub.untrusted import yaml_load
from tests.suites.conftest import GOOD

pytestmark = pytest.mark.django_db


def test_yaml_12_keeps_the_strings_yaml_11_would_change(project: Any, no_pii_scan: None) -> None:
    version = suite_import_file(project=project, name="pf", path=GOOD / "promptfoo_yaml12.yaml")
    cases = list(version.cases.order_by("position"))
    # YAML 1.1 read these as True, 1080, 511, True and a date; promptfoo keeps the text.
    assert [c.input for c in cases] == ["Yes", "18:00", "0777", "on", "2024-01-02", "true", "31"]
    assert cases[0].slices == {"lang": "No"} and cases[5].slices == {"n": "1"}


def test_the_yaml_12_loader_reads_the_core_schema() -> None:
    text = "a: true\nb: 12\nc: 0o17\nd: 1.5\ne: ~\nf: 1e3\ng: .inf\nh: &x {p: 1}\ni: {<<: *x, r: 2}\n"
    doc = yaml_load(text, max_nodes=100, core_schema=True)
    assert doc == {
        "a": True, "b": 12, "c": 15, "d": 1.5, "e": None, "f": 1000.0, "g": float("inf"),
        "h": {"p": 1}, "i": {"p": 1, "r": 2},
    }  # fmt: skip
    # The 1.1 reading stays where it is asked for (gates), unchanged.
    assert yaml_load("a: Yes\nb: 18:00\n", max_nodes=10) == {"a": True, "b": 1080}


def test_prompts_are_rendered_with_vars_one_case_per_prompt(project: Any, no_pii_scan: None) -> None:
    version = suite_import_file(project=project, name="pf", path=GOOD / "promptfoo_prompts.yaml")
    cases = list(version.cases.order_by("position"))
    assert [(c.input, c.slices.get("prompt")) for c in cases] == [
        ("Convert this English to French: Hello world", "prompt 1"),
        ("French translation of: Hello world", "terse"),
        ("Convert this English to German: Hello world", "prompt 1"),
        ("German translation of: Hello world", "terse"),
    ]
    # The var that tells the tests apart is part of each case, so nothing collapses as a duplicate.
    assert cases[0].slices["language"] == "French" and cases[2].slices["language"] == "German"
    assert all(c.slices["register"] == "formal" for c in cases)  # defaultTest.vars, merged
    # Templates inside assertions are rendered with the test's vars.
    assert cases[0].expected == [{"type": "contains", "value": "Bonjour le monde"}]
    assert cases[2].expected == [{"type": "regex", "pattern": r"\AHallo\ Welt\Z"}]
    assert cases[0].reference == "Bonjour le monde" and cases[2].reference == "Hallo Welt"


def test_is_json_keeps_its_schema_and_contains_json_means_json_inside(
    project: Any, tmp_path: Path, no_pii_scan: None
) -> None:
    path = tmp_path / "json.yaml"
    path.write_text(
        "tests:\n"
        "  - vars: {input: Give the totals.}\n"
        "    assert:\n"
        "      - type: is-json\n"
        "        value: {type: object, required: [total]}\n"
        "      - type: contains-json\n"
    )
    case = suite_import_file(project=project, name="pf", path=path).cases.get()
    assert case.expected == [
        {"type": "valid_json", "schema": {"type": "object", "required": ["total"]}},
        {"type": "contains_json"},
    ]


def test_the_fidelity_summary_counts_everything_and_lists_what_was_dropped(
    project: Any, tmp_path: Path, no_pii_scan: None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "description: two tests\n"
        "providers: [openai:gpt-4.1-mini]\n"
        "prompts: ['Answer: {{question}}']\n"
        "defaultTest:\n"
        "  options: {provider: openai:gpt-4.1}\n"
        "tests:\n"
        "  - vars: {question: Capital of France?}\n"
        "    options: {cache: false}\n"
        "    assert:\n"
        "      - {type: contains, value: Paris, weight: 2}\n"
        "      - {type: llm-rubric, value: is concise}\n"
        "  - vars: {question: 2 + 2?}\n"
        "    provider: echo\n"
        "    assert: [{type: equals, value: '4'}]\n"
    )
    version = suite_import_file(project=project, name="pf", path=path)
    assert version.fidelity == {
        "tests_read": 2,
        "cases_made": 2,
        "asserts_mapped": 2,
        "asserts_pending": 1,
        "dropped": {
            "assert[].weight": 1,
            "description": 1,
            "providers": 1,
            "tests[].options.cache": 1,
            "tests[].provider": 1,
        },
    }


def test_grader_options_are_kept_with_the_pending_checks_for_the_judge(
    project: Any, tmp_path: Path, no_pii_scan: None
) -> None:
    # promptfoo grades model-graded assertions with options.provider and options.rubricPrompt (from
    # defaultTest or the test): they go with each pending check; an assertion's own setting wins.
    path = tmp_path / "config.yaml"
    path.write_text(
        "defaultTest:\n"
        "  options:\n"
        "    provider: openai:gpt-4.1\n"
        "    rubricPrompt: 'Grade {{ output }} by {{ rubric }}'\n"
        "tests:\n"
        "  - vars: {input: Capital of France?}\n"
        "    assert:\n"
        "      - {type: contains, value: Paris}\n"
        "      - {type: llm-rubric, value: is concise}\n"
        "      - {type: factuality, value: Paris, provider: local:judge}\n"
    )
    version = suite_import_file(project=project, name="pf", path=path)
    case = version.cases.get()
    assert case.expected == [
        {"type": "contains", "value": "Paris"},
        {
            "type": "pending",
            "assert": {
                "type": "llm-rubric", "value": "is concise",
                "provider": "openai:gpt-4.1", "rubricPrompt": "Grade {{ output }} by {{ rubric }}",
            },
        },
        {
            "type": "pending",
            "assert": {
                "type": "factuality", "value": "Paris",
                "provider": "local:judge", "rubricPrompt": "Grade {{ output }} by {{ rubric }}",
            },
        },
    ]  # fmt: skip
    assert version.fidelity["dropped"] == {}


def test_the_cli_prints_the_fidelity_summary_and_every_dropped_field(
    project: Any, tmp_path: Path, no_pii_scan: None
) -> None:
    from io import StringIO

    from django.core.management import call_command

    path = tmp_path / "config.yaml"
    path.write_text(
        "providers: [echo]\ntests:\n  - vars: {input: hi}\n    assert: [{type: similar, value: hello}]\n"
    )
    out = StringIO()
    call_command("import_suite", str(path), "--project", project.slug, "--name", "pf", stdout=out)
    text = out.getvalue()
    assert "1 tests read, 1 cases made, 0 asserts mapped, 1 kept pending" in text
    assert "not used (dropped), with counts:\n    providers: 1" in text


def test_the_api_answers_with_the_fidelity_and_the_dropped_fields(
    api: Any, project: Any, tmp_path: Path, no_pii_scan: None
) -> None:
    body = b"providers: [echo]\ntests:\n  - vars: {input: hi}\n    metadata: {id: a1}\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(
        "/api/v1/suites/upload/",
        {"project": project.slug, "name": "pf", "file": SimpleUploadedFile("c.yaml", body)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert response.json()["dropped"] == {"providers": 1}
    assert response.json()["fidelity"]["cases_made"] == 1


@pytest.mark.parametrize(
    ("kind", "value", "output", "passes"),
    [
        ("not-regex", "(?i)error", "An ERROR here", False),
        ("not-regex", "(?i)error", "all fine", True),
        ("not-equals", "4", "4", False),
        ("not-equals", "4", "44", True),
        ("contains-any", ["a.b", "c"], "axb", False),
        ("contains-any", ["a.b", "c"], "x a.b", True),
        ("icontains-any", ["PARIS"], "paris!", True),
        ("contains-all", "red, blue", "red and blue", True),
        ("contains-all", "red, blue", "red only", False),
        ("not-contains-any", ["x", "y"], "has y", False),
        ("starts-with", "Yes.", "Yes. Indeed", True),
        ("not-starts-with", "Yes.", "Yes. Indeed", False),
        ("equals", "a+b", "a+b", True),
        ("equals", "a+b", "aab", False),
    ],
)
def test_mapped_assertions_pass_and_fail_as_in_promptfoo(
    kind: str, value: Any, output: str, passes: bool
) -> None:
    from evalhub.suites.promptfoo import PROMPTFOO_ASSERTIONS
    from metrics.checks import run_checks, validate_expected

    checks = PROMPTFOO_ASSERTIONS[kind](value)
    assert validate_expected(checks) == []
    assert all(r.passed for r in run_checks(output, checks)) is passes


def test_promptfoos_load_and_nunjucks_dump_filters_work_in_prompts() -> None:
    from evalhub.suites.templating import TemplateProblem, render

    style = '{"tone": "formal", "n": 2}'
    assert render("Tone: {{ (style | load).tone }}; {{ {'a': 1} | dump }}", {"style": style}) == (
        'Tone: formal; {"a": 1}'
    )
    with pytest.raises(TemplateProblem, match="the load filter needs JSON text"):
        render("{{ (style | load).tone }}", {"style": "not json"})


def test_a_template_that_loops_without_printing_is_stopped_by_its_step_count() -> None:
    from evalhub.suites.templating import TemplateProblem, render

    spin = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateProblem, match="loops or recurses more than 1,000 times"):
        render(spin, {}, max_steps=1000)
    twice = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(30) }}"
    with pytest.raises(TemplateProblem, match="loops or recurses more than 1,000 times"):
        render(twice, {}, max_steps=1000)
