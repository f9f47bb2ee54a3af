"""`manage.py import_suite`: import a CSV, JSONL, XLSX or promptfoo file as the next suite version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalhub.accounts.models import Project
from evalhub.errors import DomainError
from evalhub.suites.parsing import FORMATS
from evalhub.suites.services import PII_ACTIONS, ImportChoices, ImportOptions, suite_import_path
from evalhub.suites.validation import FIELDS

DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


def fidelity_lines(fidelity: dict[str, Any]) -> list[str]:
    """A promptfoo import's fidelity summary: what was read, mapped, kept pending and dropped."""
    if not fidelity:
        return []
    lines = [
        f"  promptfoo: {fidelity['tests_read']} tests read, {fidelity['cases_made']} cases made, "
        f"{fidelity['asserts_mapped']} asserts mapped, {fidelity['asserts_pending']} kept pending (for a judge)"
    ]
    dropped = fidelity.get("dropped") or {}
    if dropped:
        lines.append("  not used (dropped), with counts:")
        lines.extend(f"    {path}: {count}" for path, count in dropped.items())
    else:
        lines.append("  nothing dropped")
    return lines


def format_problem(problem: dict[str, Any]) -> str:
    row = problem.get("row")
    where = f"row {row}" if row is not None else "file"
    column = problem.get("column") or ""
    return f"  {where}{', column ' + repr(column) if column else ''}: {problem['problem']}"


class Command(BaseCommand):
    help = (
        "Import a suite file as the next version of a suite. Prints the row-level problems and stores "
        "nothing when the file has any (unless --only-valid-rows)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            help="CSV, JSONL, XLSX or promptfoo YAML file, or a promptfoo bundle: a folder, .zip or .tar.gz "
            "holding promptfooconfig.yaml and the files it references.",
        )
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--name", required=True, help="Suite name (created if new).")
        parser.add_argument("--format", choices=FORMATS, default="", help="Default: from the file name.")
        parser.add_argument("--delimiter", default=",", help="CSV delimiter: , ; tab or pipe.")
        parser.add_argument("--sheet", default="", help="XLSX sheet (default: the first).")
        parser.add_argument("--input-var", default="", help="promptfoo: the var holding the input.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help=f"Map a column to a field ({', '.join(FIELDS)}); repeatable. FIELD= unmaps.",
        )
        parser.add_argument("--pii", choices=PII_ACTIONS, default="redact", help="What to do with PII found.")
        parser.add_argument(
            "--justification", default="", help="Why PII may be kept (needed with --pii keep)."
        )
        parser.add_argument("--only-valid-rows", action="store_true", help="Skip rows with problems.")
        parser.add_argument("--data-source", default="", help="Where the cases come from.")
        parser.add_argument("--consent", default="", help="The consent statement for the data.")
        parser.add_argument("--user", default="", help="Username recorded as the actor in the audit trail.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"No user {options['user']!r}.")
        mapping: dict[str, str] = {}
        for item in options["map"]:
            fld, sep, column = item.partition("=")
            if not sep:
                raise CommandError(f"--map {item!r}: write FIELD=COLUMN.")
            mapping[fld.strip()] = column.strip()
        delimiter = DELIMITER_NAMES.get(options["delimiter"], options["delimiter"])
        try:
            imported = suite_import_path(
                project=project,
                name=options["name"],
                path=options["file"],
                actor=actor,
                options=ImportOptions(
                    format=options["format"],
                    delimiter=delimiter,
                    sheet=options["sheet"],
                    input_var=options["input_var"],
                    mapping=mapping or None,
                ),
                choices=ImportChoices(
                    pii_action=options["pii"],
                    pii_justification=options["justification"],
                    data_source=options["data_source"],
                    consent_statement=options["consent"],
                    only_valid_rows=options["only_valid_rows"],
                ),
            )
        except DomainError as error:
            lines = [str(error)]
            rows = error.fields.get("rows") or []
            lines.extend(format_problem(p) for p in rows)
            shown, total = len(rows), error.fields.get("problem_count", len(rows))
            if total > shown:
                lines.append(f"  … and {total - shown} more")
            for item in error.fields.get("pii") or []:
                found = "; ".join(f"{k}: {', '.join(v)}" for k, v in item["fields"].items())
                lines.append(f"  row {item['row']} ({item['key']}): {found}")
            report = getattr(error, "report", None)
            lines.extend(fidelity_lines(getattr(report, "fidelity", None) or {}))
            lines.append("Nothing was stored.")
            raise CommandError("\n".join(lines)) from error
        version = imported.version
        counts = version.diff.get("counts", {})
        if imported.unchanged:
            self.stdout.write(
                f"{version.suite.name} v{version.number}: unchanged (the file matches it); no new version."
            )
            for line in fidelity_lines(version.fidelity):
                self.stdout.write(line)
            return
        self.stdout.write(
            f"{version.suite.name} v{version.number}: {version.case_count} cases "
            f"(format {version.source_format or '-'}, PII: {version.get_pii_decision_display()})"
        )
        if version.diff.get("previous") is not None:
            self.stdout.write(
                f"  vs v{version.diff['previous']}: +{counts.get('added', 0)} added, "
                f"-{counts.get('removed', 0)} removed, ~{counts.get('changed', 0)} changed, "
                f"{counts.get('unchanged', 0)} unchanged"
            )
        if version.pii_report.get("rows_with_pii"):
            entities = ", ".join(
                f"{k} {v}" for k, v in sorted(version.pii_report.get("entities", {}).items())
            )
            self.stdout.write(f"  personal data in {version.pii_report['rows_with_pii']} rows: {entities}")
        for line in fidelity_lines(version.fidelity):
            self.stdout.write(line)
