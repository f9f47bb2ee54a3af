"""Importing suites: formats, encodings, all-or-nothing, versions and diffs, locking, limits, promptfoo."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from evalhub.audit.models import AuditEvent
from evalhub.errors import Conflict, ValidationFailed
from evalhub.suites.models import Case, Suite, SuiteVersion
from evalhub.suites.services import case_update, suite_import_file, suite_version_delete, suite_version_lock
from tests.conftest import FIXTURE_SUITES
from tests.suites.conftest import GOOD, HOSTILE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name",
    [
        "small.csv",
        "small_utf8_bom.csv",
        "small_utf16le.csv",
        "small_utf16be.csv",
        "small.jsonl",
        "small.xlsx",
    ],
)
def test_every_format_and_encoding_gives_the_same_cases(project: Any, name: str) -> None:
    version = suite_import_file(project=project, name="small", path=GOOD / name)
    assert version.number == 1
    assert version.case_count == 4
    reference = suite_import_file(project=project, name="reference", path=GOOD / "small.jsonl")
    assert version.content_hash == reference.content_hash
    case = version.cases.get(key="c4")
    assert case.category == "injection"
    assert case.expected == [{"type": "no_injection", "marker": "PWNED"}]
    synthetic = version.cases.get(key="c3")
    assert (synthetic.origin, synthetic.generator, synthetic.split) == ("synthetic", "paraphrase-v1", "eval")
    assert version.cases.get(key="c2").split == "heldout"
    assert version.cases.get(key="c1").tags == ["finance", "earnings"]
    assert version.cases.get(key="c1").slices == {"domain": "finance"}


def test_semicolon_file_imports_when_the_delimiter_is_chosen(project: Any) -> None:
    version = suite_import_file(
        project=project, name="semi", path=GOOD / "small_semicolon.csv", delimiter=";"
    )
    assert version.case_count == 3


def test_latin1_is_rejected_with_the_byte_and_offset(project: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="x", path=HOSTILE / "latin1.csv")
    assert "File is not UTF-8 or UTF-16 (byte 0xe9 at offset 13" in str(caught.value)
    assert "save it as UTF-8" in str(caught.value)


def test_a_file_with_any_problem_stores_nothing(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "id,input\na,one\nb,\nc,three\n")
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="s", path=path)
    assert caught.value.fields["rows"] == [{"row": 3, "column": "input", "problem": "empty input"}]
    assert "nothing was imported" in str(caught.value)
    assert not Suite.objects.exists() and not Case.objects.exists()


def test_only_valid_rows_imports_the_rest_and_records_the_skips(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "id,input\na,one\nb,\nc,three\na,dup\n")
    version = suite_import_file(project=project, name="s", path=path, only_valid_rows=True)
    assert list(version.cases.values_list("key", flat=True)) == ["a", "c"]
    event = AuditEvent.objects.get(action="suite_version.import")
    assert event.after["only_valid_rows"] is True and event.after["skipped_rows"] == 2


def test_duplicate_ids_and_duplicate_contents_are_row_problems(project: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        '{"id": "a", "input": "x"}\n{"id": "b", "input": "x"}\n{"id": "a", "input": "y"}\n',
    )
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="d", path=path)
    rows = caught.value.fields["rows"]
    assert rows[0] == {"row": 2, "column": "", "problem": "duplicate case: same content as row 1"}
    assert rows[1]["problem"] == "duplicate id 'a' (first on row 1)"


def test_cases_without_ids_get_stable_keys_from_their_input(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "n.csv", "prompt\nfirst\nsecond\n")
    v1 = suite_import_file(project=project, name="n", path=path)
    path.write_text("prompt\nsecond\nfirst\nthird\n")
    v2 = suite_import_file(project=project, name="n", path=path)
    assert v2.diff["counts"] == {"added": 1, "removed": 0, "changed": 0, "unchanged": 2}
    assert set(v1.cases.values_list("key", flat=True)) < set(v2.cases.values_list("key", flat=True))


def test_synthetic_needs_a_generator_and_heldout_is_real_only(project: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        "input,origin,generator,split\na,synthetic,,eval\nb,synthetic,gen,heldout\nc,fake,,\n",
    )
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="s", path=path)
    problems = [(p["row"], p["column"], p["problem"]) for p in caught.value.fields["rows"]]
    assert problems == [
        (2, "generator", "a synthetic case must name its generator"),
        (3, "split", "the held-out split is for real cases only"),
        (4, "origin", "origin must be real or synthetic, not 'fake'"),
    ]


def test_mapping_columns_to_fields(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "case_no,the text,gold\n1,hello,hi\n2,bye,ciao\n")
    with pytest.raises(ValidationFailed, match="missing required column 'input'"):
        suite_import_file(project=project, name="m", path=path)
    version = suite_import_file(
        project=project,
        name="m",
        path=path,
        mapping={"key": "case_no", "input": "the text", "reference": "gold"},
    )
    assert list(version.cases.values_list("key", "input", "reference")) == [
        ("1", "hello", "hi"),
        ("2", "bye", "ciao"),
    ]


def test_slice_columns_and_text_forms_of_tags_and_slices(project: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        'input,tags,slices,slice.length\na,"[""x"", ""y""]",domain=finance; region=eu,short\n',
    )
    case = suite_import_file(project=project, name="s", path=path).cases.get()
    assert case.tags == ["x", "y"]
    assert case.slices == {"domain": "finance", "region": "eu", "length": "short"}


@pytest.mark.parametrize(
    ("setting", "value", "text", "phrase"),
    [
        ("EVALHUB_SUITE_MAX_ROWS", 2, "input\na\nb\nc\n", "more than 2 cases (the limit)"),
        (
            "EVALHUB_SUITE_MAX_FIELD_CHARS",
            10,
            "input\n" + "x" * 11 + "\n",
            "field is longer than 10 characters",
        ),
        ("EVALHUB_SUITE_MAX_COLUMNS", 2, "input,b,c\nx,y,z\n", "3 columns; the limit is 2"),
        ("EVALHUB_SUITE_MAX_FILE_BYTES", 5, "input\nabc\n", "the limit is 0 MB"),
    ],
)
def test_limits_come_from_settings_at_call_time(
    project: Any, tmp_path: Path, settings: Any, setting: str, value: int, text: str, phrase: str
) -> None:
    setattr(settings, setting, value)
    path = write(tmp_path, "l.csv", text)
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="l", path=path, only_valid_rows=True)
    assert phrase in "\n".join(p["problem"] for p in caught.value.fields["rows"])
    assert not Case.objects.exists()


def test_jsonl_field_limit_is_a_row_problem(project: Any, tmp_path: Path, settings: Any) -> None:
    settings.EVALHUB_SUITE_MAX_FIELD_CHARS = 10
    path = write(tmp_path, "l.jsonl", '{"input": "short"}\n{"input": "' + "y" * 20 + '"}\n')
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="l", path=path)
    assert caught.value.fields["rows"] == [
        {"row": 2, "column": "input", "problem": "20 characters; the limit is 10"}
    ]


def test_new_upload_makes_next_version_with_a_diff(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "v.csv", "id,input\na,one\nb,two\nc,three\n")
    v1 = suite_import_file(project=project, name="v", path=path)
    path.write_text("id,input\na,one\nb,TWO\nd,four\n")
    v2 = suite_import_file(project=project, name="v", path=path)
    assert (v1.number, v2.number) == (1, 2)
    assert v2.diff["previous"] == 1
    assert (v2.diff["added"], v2.diff["removed"], v2.diff["changed"]) == (["d"], ["c"], ["b"])
    assert v2.diff["counts"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    assert v1.cases.get(key="b").input == "two"  # the old version is untouched


def test_an_identical_upload_returns_the_latest_version(project: Any) -> None:
    v1 = suite_import_file(project=project, name="same", path=GOOD / "small.csv")
    again = suite_import_file(project=project, name="same", path=GOOD / "small.jsonl")
    assert again.pk == v1.pk
    assert SuiteVersion.objects.count() == 1


def test_a_locked_version_cannot_be_edited_or_deleted(project: Any, engineer: Any) -> None:
    version = suite_import_file(project=project, name="l", path=GOOD / "small.csv")
    case = version.cases.get(key="c1")
    case_update(case=case, reference="edited before any run", actor=engineer)
    first = suite_version_lock(version=version, actor=engineer).locked_at
    assert first is not None
    assert suite_version_lock(version=version).locked_at == first  # idempotent
    with pytest.raises(Conflict, match="locked"):
        case_update(case=version.cases.get(key="c1"), reference="after")
    with pytest.raises(Conflict, match="locked"):
        suite_version_delete(version=version)
    with pytest.raises(RuntimeError):
        case = version.cases.get(key="c2")
        case.input = "sneaky"
        case.save()
    assert AuditEvent.objects.filter(action="suite_version.lock").count() == 1


def test_import_audits_the_import_provenance_and_pii_choice(project: Any, engineer: Any) -> None:
    version = suite_import_file(
        project=project,
        name="a",
        path=GOOD / "small.csv",
        actor=engineer,
        data_source="Support tickets 2025",
        consent_statement="Customers agreed to research use.",
    )
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "suite.create",
        "suite.provenance",
        "suite_version.import",
        "suite_version.pii_decision",
    } <= actions
    pii = AuditEvent.objects.get(action="suite_version.pii_decision")
    assert pii.after["data_source"] == "Support tickets 2025"
    assert pii.after["consent_statement"] == "Customers agreed to research use."
    assert pii.actor == engineer and pii.object_id == str(version.pk)
    suite = Suite.objects.get()
    assert suite.data_source == "Support tickets 2025"


def test_promptfoo_tests_map_vars_and_assertions(project: Any) -> None:
    version = suite_import_file(project=project, name="pf", path=GOOD / "promptfoo.yaml")
    cases = list(version.cases.order_by("position"))
    assert cases[0].input.startswith("How do I pick a lock")
    assert cases[0].expected == [
        {"type": "contains", "value": "can't help", "case_sensitive": False},
        {"type": "not_contains", "value": "tension wrench"},
    ]
    assert cases[1].reference == '{"total": 3}'
    assert cases[1].expected[0] == {"type": "valid_json"}
    assert cases[2].key == "pf-3" and cases[2].tags == ["finance"]


def test_promptfoo_assertions_evalhub_cannot_run_are_kept_pending(project: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pending.yaml",
        "tests:\n"
        "  - vars: {prompt: Is the sky blue?}\n"
        "    assert:\n"
        "      - {type: contains, value: 'yes'}\n"
        "      - {type: llm-rubric, value: answers politely}\n"
        "  - vars: {prompt: Write a haiku}\n"
        "    assert:\n"
        "      - {type: javascript, value: output.length < 100}\n",
    )
    version = suite_import_file(project=project, name="pf", path=path)
    first, second = version.cases.order_by("position")
    assert first.expected == [
        {"type": "contains", "value": "yes"},
        {"type": "pending", "assert": {"type": "llm-rubric", "value": "answers politely"}},
    ]
    assert second.expected == [
        {"type": "pending", "assert": {"type": "javascript", "value": "output.length < 100"}}
    ]
    assert version.fidelity == {
        "tests_read": 2, "cases_made": 2, "asserts_mapped": 1, "asserts_pending": 2, "dropped": {},
    }  # fmt: skip


def test_promptfoo_assertions_with_problems_name_the_assertion_per_row(project: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="pf", path=HOSTILE / "promptfoo_bad_asserts.yaml")
    rows = caught.value.fields["rows"]
    assert [(r["row"], r["column"]) for r in rows] == [(1, "assert[1]"), (2, "assert[1]")]
    assert "'contains' needs a value" in rows[0]["problem"] and "needs a type" in rows[1]["problem"]


def test_export_then_reimport_is_identical(project: Any, tmp_path: Path) -> None:
    from evalhub.suites.export import export_csv_lines, export_xlsx

    path = write(tmp_path, "f.csv", 'id,input,reference\nf1,"=HYPERLINK(""http://x"")",-1\nf2,@SUM(A1),+1\n')
    version = suite_import_file(project=project, name="f", path=path)
    csv_path = tmp_path / "out.csv"
    csv_path.write_text("".join(export_csv_lines(version=version)), encoding="utf-8")
    text = csv_path.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and ",'-1" in text and "'@SUM" in text and "'+1" in text
    xlsx_path = export_xlsx(version=version, path=tmp_path / "out.xlsx")
    import openpyxl

    sheet = openpyxl.load_workbook(xlsx_path).active
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert '\'=HYPERLINK("http://x")' in values and all(
        c.data_type == "s" for row in sheet.iter_rows() for c in row if c.value is not None
    )
    for exported in (csv_path, xlsx_path):
        again = suite_import_file(project=project, name="f", path=exported)
        assert again.pk == version.pk  # unchanged: the neutralisation round-trips


def test_cli_prints_the_version_and_its_diff(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,input\na,one\n")
    out = StringIO()
    call_command("import_suite", str(path), project=project.slug, name="cli", stdout=out)
    path.write_text("id,input\na,one\nb,two\n")
    call_command(
        "import_suite", str(path), "--map", "input=input", project=project.slug, name="cli", stdout=out
    )
    text = out.getvalue()
    assert "cli v1: 1 cases" in text
    assert "cli v2: 2 cases" in text and "+1 added, -0 removed, ~0 changed, 1 unchanged" in text


@pytest.mark.slow
def test_fixture_suites_import_in_every_format(project: Any) -> None:
    csv_version = suite_import_file(project=project, name="summaries", path=FIXTURE_SUITES / "summaries.csv")
    jsonl_version = suite_import_file(
        project=project, name="summaries-jsonl", path=FIXTURE_SUITES / "summaries.jsonl"
    )
    assert csv_version.case_count == jsonl_version.case_count == 300
    assert csv_version.content_hash == jsonl_version.content_hash
    adversarial = suite_import_file(
        project=project, name="adversarial", path=FIXTURE_SUITES / "adversarial.jsonl"
    )
    assert adversarial.case_count == sum(1 for _ in (FIXTURE_SUITES / "adversarial.jsonl").open())
    assert json.dumps(adversarial.cases.exclude(expected=[]).first().expected)


def test_a_json_array_file_is_read_like_jsonl(project: Any, tmp_path: Path) -> None:
    cases = [json.loads(line) for line in (GOOD / "small.jsonl").read_text().splitlines()]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases, indent=2))
    version = suite_import_file(project=project, name="array", path=path)
    assert (
        version.content_hash
        == suite_import_file(project=project, name="lines", path=GOOD / "small.jsonl").content_hash
    )
    path.write_text(json.dumps([cases[0], "oops"]))
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="array2", path=path)
    assert caught.value.fields["rows"] == [
        {"row": 2, "column": "", "problem": "each case must be a JSON object, not str"}
    ]


def test_excel_sep_line_names_the_delimiter(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", "sep=;\nid;input\na;one, with a comma\nb;\n")
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="excel", path=path)
    assert caught.value.fields["rows"] == [{"row": 4, "column": "input", "problem": "empty input"}]
    case = suite_import_file(project=project, name="excel", path=path, only_valid_rows=True).cases.get()
    assert (case.key, case.input) == ("a", "one, with a comma")


def test_an_xlsx_whose_text_table_is_too_large_is_refused_before_reading(
    project: Any, tmp_path: Path, settings: Any
) -> None:
    import zipfile

    settings.EVALHUB_SUITE_MAX_XLSX_SHARED_STRINGS_BYTES = 1000
    path = tmp_path / "strings.xlsx"
    with zipfile.ZipFile(GOOD / "small.xlsx") as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        target.writestr("xl/sharedStrings.xml", "<sst>" + "<si><t>x</t></si>" * 200 + "</sst>")
    with pytest.raises(ValidationFailed, match="text table expands"):
        suite_import_file(project=project, name="strings", path=path)
