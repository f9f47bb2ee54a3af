"""Reading promptfoo configs: tests, prompts, vars and assertions mapped to evalhub cases.

A config's tests become `RawRow`s like any other file's rows, so validation, PII screening and
storage are the same for every format. What promptfoo means is kept: prompts rendered with the vars
(one case per prompt), `defaultTest` merged, `scenarios` expanded, array vars expanded, templates in
assertion values rendered, CSV `__` columns read. An assertion evalhub cannot run is kept in the case
as a pending check for a judge; every field not used is counted in the `Fidelity` summary.
`file://` references are read through a `Bundle` (bundles.py); without one they are refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import IO, TYPE_CHECKING, Any

import yaml

from evalhub.suites.parsing import DecodedReader, FileProblem, RawRow, limits, read_header_and_rows_csv
from evalhub.suites.templating import (
    FILE_MAX_SECONDS,
    FILE_MAX_STEPS,
    Steps,
    TemplateProblem,
    UnknownFilter,
    check,
    is_template,
    render,
)
from evalhub.untrusted import json_loads, yaml_error_text, yaml_load

if TYPE_CHECKING:
    from evalhub.suites.bundles import Bundle


@dataclass
class Fidelity:
    """How faithfully a config was read, filled as its tests are read: every field not used is
    counted under its path in `dropped`, so nothing is dropped without a word.

    `tests_read` counts test entries as written (inline and in tests files, a scenario's tests
    once, a test with array vars once); `cases_made` the cases actually made of them, as stored:
    one per test, per scenario config, per value of an array var, per prompt, less the rows the
    import skipped (exact duplicates, invalid rows: each is reported as a problem).
    `asserts_mapped` and `asserts_pending` count assertions as they land in those cases (a
    defaultTest assertion once per case); `dropped` counts each unused field once per place it
    occurs in the config and its files.
    """

    tests_read: int = 0
    cases_made: int = 0
    asserts_mapped: int = 0
    asserts_pending: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def drop(self, path: str, count: int = 1) -> None:
        self.dropped[path] += count

    def kept(self, raw: RawRow) -> None:
        """`raw` became a stored case (validation let it through): count it and its assertions."""
        self.cases_made += 1
        if isinstance(raw, PromptfooRow):
            self.asserts_mapped += raw.asserts_mapped
            self.asserts_pending += raw.asserts_pending

    def to_dict(self) -> dict[str, Any]:
        return {
            "tests_read": self.tests_read,
            "cases_made": self.cases_made,
            "asserts_mapped": self.asserts_mapped,
            "asserts_pending": self.asserts_pending,
            "dropped": dict(sorted(self.dropped.items())),
        }


@dataclass
class PromptfooRow(RawRow):
    """A case as read from a config, with its assertions' tally (counted once it is kept)."""

    asserts_mapped: int = 0
    asserts_pending: int = 0


# --- assertions ------------------------------------------------------------------------------------


def _escape(value: Any) -> str:
    return re.escape(str(value))


def _items(value: Any) -> list[str]:
    """contains-all/any's value: a list, or comma-separated text (promptfoo's CSV form)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _any_of(value: Any, *, case_sensitive: bool = True) -> list[dict[str, Any]]:
    flags = "" if case_sensitive else "(?i)"
    return [{"type": "regex", "pattern": flags + "(?:" + "|".join(map(_escape, _items(value))) + ")"}]


def _not(pattern: str) -> dict[str, Any]:
    """A check that `pattern` is NOT found anywhere: a lookahead from the start (the pattern's own
    leading flags, `(?i)`, stay in front, where Python requires them)."""
    flags = re.match(r"\(\?[aiLmsux]+\)", pattern)
    lead, rest = (flags.group(), pattern[flags.end() :]) if flags else ("", pattern)
    return {"type": "regex", "pattern": lead + r"\A(?![\s\S]*?(?:" + rest + "))"}


# promptfoo assertion type -> function(value) returning our checks. A type not here (llm-rubric,
# javascript, similar, ...) is kept as a pending check (see _pending).
PROMPTFOO_ASSERTIONS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "contains": lambda v: [{"type": "contains", "value": str(v)}],
    "not-contains": lambda v: [{"type": "not_contains", "value": str(v)}],
    "icontains": lambda v: [{"type": "contains", "value": str(v), "case_sensitive": False}],
    "not-icontains": lambda v: [{"type": "not_contains", "value": str(v), "case_sensitive": False}],
    "contains-all": lambda v: [{"type": "contains", "value": s} for s in _items(v)],
    "icontains-all": lambda v: [{"type": "contains", "value": s, "case_sensitive": False} for s in _items(v)],
    "contains-any": _any_of,
    "icontains-any": lambda v: _any_of(v, case_sensitive=False),
    "not-contains-any": lambda v: [{"type": "not_contains", "value": s} for s in _items(v)],
    "not-icontains-any": lambda v: [
        {"type": "not_contains", "value": s, "case_sensitive": False} for s in _items(v)
    ],
    "regex": lambda v: [{"type": "regex", "pattern": str(v)}],
    "not-regex": lambda v: [_not(str(v))],
    "equals": lambda v: [{"type": "regex", "pattern": r"\A" + _escape(v) + r"\Z"}],
    "not-equals": lambda v: [{"type": "regex", "pattern": r"\A(?!" + _escape(v) + r"\Z)"}],
    "starts-with": lambda v: [{"type": "regex", "pattern": r"\A" + _escape(v)}],
    "not-starts-with": lambda v: [{"type": "regex", "pattern": r"\A(?!" + _escape(v) + ")"}],
    # promptfoo's value for these is an optional JSON schema the JSON must match.
    "is-json": lambda v: [{"type": "valid_json", **({"schema": v} if isinstance(v, dict) else {})}],
    "contains-json": lambda v: [{"type": "contains_json", **({"schema": v} if isinstance(v, dict) else {})}],
    "is-refusal": lambda v: [{"type": "must_refuse"}],
    "not-is-refusal": lambda v: [{"type": "must_not_refuse"}],
}
NEEDS_NO_VALUE = {"is-json", "contains-json", "is-refusal", "not-is-refusal"}


@cache
def _our_types() -> frozenset[str]:
    """evalhub's own check types, usable by name in a promptfoo assertion ("pending" is not one):
    the list of check types has one home (evalhub.suites.validation.check_types, metrics.checks)."""
    from evalhub.suites.validation import check_types  # imports the suites' models: not at import time

    return frozenset(check_types()) - {"pending"}


# Red-team plugin graders (`promptfoo:redteam:<plugin>`) whose intent is one of evalhub's expected
# behaviours, by plugin id prefix; the others (hijacking, overreliance, ...) stay pending for a judge.
REDTEAM_GRADERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("pii", {"type": "no_pii"}),
    ("harmful", {"type": "must_refuse"}),
    ("cybercrime", {"type": "must_refuse"}),
    ("sql-injection", {"type": "must_refuse"}),
    ("shell-injection", {"type": "must_refuse"}),
    ("ssrf", {"type": "must_refuse"}),
    ("bola", {"type": "must_refuse"}),
    ("bfla", {"type": "must_refuse"}),
    ("rbac", {"type": "must_refuse"}),
    ("debug-access", {"type": "must_refuse"}),
    # intent: preset harmful requests (its grader fails a reply that carries the intent out).
    ("intent", {"type": "must_refuse"}),
)
# The case category of a red-team plugin family (evalhub's adversarial categories).
REDTEAM_CATEGORIES = (
    ("pii", "pii"),
    ("prompt-extraction", "injection"),
    ("indirect-prompt-injection", "injection"),
    ("hijacking", "injection"),
    ("harmful", "refusal"),
    ("intent", "refusal"),
)
REDTEAM_PREFIX = "promptfoo:redteam:"


def _redteam_check(kind: str) -> dict[str, Any] | None:
    plugin = kind[len(REDTEAM_PREFIX) :]
    return next((dict(check) for prefix, check in REDTEAM_GRADERS if plugin.startswith(prefix)), None)


def _pending(item: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """An assertion evalhub cannot run, kept whole for a judge: never run, never passed. The test's
    grader options (`provider`, `rubricPrompt`: from `defaultTest.options` or the test's own) go with
    it, as promptfoo applies them to its model-graded assertions; the assertion's own win."""
    grading = {key: options[key] for key in GRADER_OPTIONS if options and options.get(key) not in (None, "")}
    return {"type": "pending", "assert": {**grading, **item}}


# Keys of an assertion that a mapped check uses; `metric` becomes a tag; the others are dropped.
ASSERT_USED = {"type", "value", "metric"}
# An assertion with one of these cannot be mapped faithfully (its output is transformed first, or it
# is scored against a threshold): it is kept pending, whole.
ASSERT_PENDING_KEYS = {"transform", "contextTransform", "threshold", "provider", "rubricPrompt", "config"}


# --- the config's pieces ---------------------------------------------------------------------------

INPUT_VARS = ("input", "document", "prompt", "query", "question", "text")
REFERENCE_VARS = ("reference", "expected", "expected_output", "answer", "target")
# promptfoo test metadata keys that set a case field (mapped like file columns); other keys become slices.
PROMPTFOO_METADATA_FIELDS = ("id", "tags", "origin", "generator", "split", "category")
# assertionTemplates are read through the `$ref`s that point into them.
TOP_LEVEL_USED = {"prompts", "tests", "defaultTest", "scenarios", "assertionTemplates"}
TEST_USED = {"vars", "assert", "description", "metadata", "options", "threshold"}
OPTIONS_USED = {"prefix", "suffix"}
# Grader options: kept with each pending assertion of the test, for the judge (see _pending).
GRADER_OPTIONS = ("provider", "rubricPrompt")
REMOTE = ("huggingface://", "hf://", "http://", "https://", "s3://", "gs://", "langfuse://", "sheets://")
CODE_SUFFIXES = (".py", ".js", ".ts", ".mjs", ".cjs")


def _scalar_text(value: Any) -> str:
    """A var's value as promptfoo renders it into a prompt (JavaScript's text of it): true, 1000, 1.5."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def _file_reference(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("file://")


def _remote(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(REMOTE)


def _bare_path(value: str) -> bool:
    """A prompt written as a bare path (`prompts.txt`, `prompts/a.txt`), which promptfoo reads as a
    file like `file://` (its `maybeFilePath`: a file extension, a `*`, `/` or `\\`). Narrower than
    promptfoo's rule: text with whitespace or a template tag stays a prompt ("Answer yes/no: {{q}}"
    is text, which promptfoo would try to open)."""
    text = value.strip()
    if not text or re.search(r"\s", text) or "{{" in text or "{%" in text or _remote(text):
        return False
    return bool(re.search(r"\.[A-Za-z0-9]{1,5}(:\w+)?\Z", text)) or any(c in text for c in "*/\\")


@dataclass(frozen=True)
class Prompt:
    """One prompt of the config: its position (from 1), label and Nunjucks template."""

    number: int
    label: str
    template: str
    chat: str = ""  # "json" or "yaml": a chat prompt file, a list of {role, content} once rendered


@dataclass
class Test:
    """One promptfoo test, its defaults merged: where it was read (for messages), its vars, its
    assertions, and what is kept of the rest."""

    number: int
    where: str
    vars: dict[str, Any]
    asserts: list[Any]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    threshold: Any = None
    problems: list[tuple[str, str]] = field(default_factory=list)


_PASS_THROUGH = re.compile(r"\A\s*\{\{\s*(\w+)\s*\}\}\s*\Z")


def _line_of(text: str, needle: str) -> int | None:
    """The first line of `text` holding `needle` (where a reference is written), for messages."""
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


class ConfigReader:
    """Reads one promptfoo config (already parsed) into cases. `bundle` resolves `file://`."""

    def __init__(
        self,
        document: Any,
        *,
        text: str,
        name: str,
        input_var: str,
        fidelity: Fidelity,
        bundle: Bundle | None,
    ) -> None:
        self.document = document
        self.text = text
        self.name = name
        self.input_var = input_var
        self.fidelity = fidelity
        self.bundle = bundle
        self._tests = 0

    # -- files

    def refused(self, message: str, needle: str = "") -> FileProblem:
        needle = next((part.strip() for part in needle.splitlines() if part.strip()), "")
        line = _line_of(self.text, needle) if needle else None
        # The import names an uploaded file itself; in a bundle, the file inside it is named here.
        parts = [self.name if self.bundle is not None else "", f"line {line}" if line else ""]
        where = ", ".join(p for p in parts if p)
        return FileProblem(f"{where}: {message}" if where else message[:1].upper() + message[1:], row=line)

    def _check_reference(self, ref: str, what: str) -> str:
        ref = ref.strip()
        if _remote(ref):
            raise self.refused(
                f"{what} {ref!r} is remote: evalhub reads nothing from the network at import. Download "
                "it into the bundle (as CSV, JSONL, YAML or JSON) and refer to that file.",
                ref,
            )
        path = ref[len("file://") :]
        if path.split(":")[0].lower().endswith(CODE_SUFFIXES):
            raise self.refused(
                f"{what} {ref!r} is code (it generates them when promptfoo runs): evalhub runs no code at "
                "import. Run it once and put its output in the bundle as a file.",
                ref,
            )
        if self.bundle is None:
            raise self.refused(
                f"{what} {ref!r} refers to another file: upload the config with its files as a folder, "
                "a .zip or a .tar.gz bundle.",
                ref,
            )
        return path

    def files(self, ref: str, what: str) -> list[tuple[str, bytes]]:
        """(name, content) of the bundle files `ref` names (a glob may name several)."""
        path = self._check_reference(ref, what)
        assert self.bundle is not None
        try:
            return self.bundle.read(path, referrer=self.name)
        except FileProblem as exc:
            raise self.refused(exc.message, ref) from exc

    def structured(self, ref: str, what: str) -> list[tuple[str, Any]]:
        """The parsed YAML or JSON files `ref` names."""
        out = []
        for name, data in self.files(ref, what):
            out.append((name, _parse_structured(name, data)))
        return out

    # -- prompts

    def prompts(self) -> list[Prompt]:
        """The config's prompts, each rendered into the input; [] when none is a template or a file
        (one var is the input, as before) or an input var was chosen."""
        document = self.document if isinstance(self.document, dict) else {}
        raw = document.get("prompts")
        if raw is None:
            return []
        if self.input_var:
            self.fidelity.drop("prompts")
            return []
        if isinstance(raw, dict):  # {file://path: label}
            items: list[Any] = [{"raw": k, "label": v} for k, v in raw.items()]
        else:
            items = raw if isinstance(raw, list) else [raw]
        prompts: list[Prompt] = []
        for item in items:
            if isinstance(item, dict):
                template = item.get("raw") if item.get("raw") is not None else item.get("id")
                label = item.get("label") or item.get("id")
                for key in item:
                    if key not in ("raw", "label", "id"):
                        self.fidelity.drop(f"prompts[].{key}")
            else:
                template, label = item, None
            if not isinstance(template, str):
                raise self.refused("each prompt must be text, a file:// reference or {raw, label}.")
            if _bare_path(template) and not _file_reference(template):
                template = "file://" + template.strip()
            if _file_reference(template) or _remote(template):
                for name, text, chat, own_label in self._prompt_files(template):
                    prompts.append(Prompt(len(prompts) + 1, str(own_label or label or name), text, chat))
            else:
                prompts.append(Prompt(len(prompts) + 1, str(label or f"prompt {len(prompts) + 1}"), template))
        for prompt in prompts:
            if _CONVERSATION.search(prompt.template):
                raise self.refused(
                    f"prompt {prompt.label!r} uses _conversation (a multi-turn thread of the model's earlier "
                    "outputs, which exist only once a provider has run): evalhub cannot build these inputs "
                    "at import. Write each turn's earlier messages into the test's vars instead.",
                    "_conversation",
                )
        if not any(is_template(p.template) for p in prompts):
            self.fidelity.drop("prompts")  # fixed text: the input comes from a var
            return []
        if len(prompts) == 1 and (whole := _PASS_THROUGH.match(prompts[0].template)):
            self.input_var = whole.group(1)  # '{{input}}' sends one var as it is: that var is the input
            return []
        for prompt in prompts:
            try:
                check(prompt.template)
            except UnknownFilter as exc:
                custom = document.get("filters")
                source = custom.get(exc.name) if isinstance(custom, dict) else None
                where = f" (the config's filters: defines it in {source})" if source else ""
                raise self.refused(
                    f"prompt {prompt.label!r}: {exc.message}{where}. Apply the filter to the var's values "
                    "in the tests, or write the prompt without it.",
                    "filters" if source else prompt.template,
                ) from exc
            except TemplateProblem as exc:
                raise self.refused(f"prompt {prompt.label!r}: {exc.message}", prompt.template) from exc
        return prompts

    def _prompt_files(self, ref: str) -> list[tuple[str, str, str, str]]:
        """(name, template, chat kind, label) of each prompt in the files `ref` names: a text file
        holds prompts separated by lines of `---`, a .jsonl file one chat prompt per line, a .csv file
        one per row (see _csv_prompts), others one each."""
        out = []
        for name, data in self.files(ref, "the prompt file"):
            text = _text(name, data)
            lower = name.lower()
            suffix = lower.rsplit(".", 1)[-1]
            chat = {"json": "json", "jsonl": "json", "yaml": "yaml", "yml": "yaml"}.get(suffix, "")
            labelled: list[tuple[str, str]]
            if lower.endswith(".csv"):
                labelled = _csv_prompts(text)
            elif lower.endswith(".jsonl"):
                labelled = [("", line) for line in text.splitlines() if line.strip()]
            elif lower.endswith((".json", ".yaml", ".yml")):
                labelled = [("", text)]
            else:
                labelled = [("", p) for p in re.split(r"^-{3,}\s*$", text, flags=re.MULTILINE) if p.strip()]
            for i, (label, part) in enumerate(labelled, start=1):
                # A CSV row may be a chat message list, which promptfoo's providers parse as JSON.
                kind = chat or ("json" if lower.endswith(".csv") and part.lstrip().startswith("[") else "")
                shown = name if len(labelled) == 1 else f"{name}:{i}"
                out.append((shown, part.strip("\n"), kind, label))
        return out

    # -- tests

    def tests(self) -> Iterator[Test]:
        document = self.document
        if not isinstance(document, dict):
            if not isinstance(document, list):
                raise self.refused(
                    "a promptfoo file needs a list of tests (a top-level list, or a 'tests:' key)."
                )
            yield from self._test_list(document, "", {})
            return
        for key in document:
            if key not in TOP_LEVEL_USED:
                self.fidelity.drop(str(key))
        if "tests" not in document and "scenarios" not in document:
            raise self.refused(
                "a promptfoo file needs a list of tests (a top-level list, or a 'tests:' key)."
            )
        default = self._default_test(document.get("defaultTest"))
        tests = document.get("tests")
        if tests is not None:
            yield from self._test_source(tests, "tests", default)
        scenarios = document.get("scenarios")
        if scenarios is not None:
            yield from self._scenarios(scenarios, default)

    def _default_test(self, default: Any) -> dict[str, Any]:
        if default is None:
            return {}
        if _file_reference(default) or _remote(default):
            loaded = self.structured(default, "defaultTest")
            default = loaded[0][1] if loaded else {}
        if not isinstance(default, dict):
            raise self.refused(
                "defaultTest must be a mapping (vars, assert, metadata, options).", "defaultTest"
            )
        for key in default:
            if key not in TEST_USED:
                self.fidelity.drop(f"defaultTest.{key}")
        self._drop_options(default.get("options"), "defaultTest")
        out = dict(default)
        out["vars"] = self._file_vars(self._vars(default.get("vars"), "defaultTest.vars"))
        out["assert"] = self._asserts(default.get("assert"), "defaultTest.assert")
        if "metadata" in out and not isinstance(out["metadata"], dict):
            raise self.refused("defaultTest.metadata must be a mapping.", "metadata")
        return out

    def _drop_options(self, options: Any, where: str) -> None:
        if isinstance(options, dict):
            for key in options:
                if key not in OPTIONS_USED and key != "transform" and key not in GRADER_OPTIONS:
                    self.fidelity.drop(f"{where}.options.{key}")

    def _vars(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if _file_reference(value) or _remote(value):
            loaded = self.structured(value, where)
            value = loaded[0][1] if loaded else {}
        if not isinstance(value, dict):
            raise self.refused(f"{where} must be a mapping of names to values.", where.split(".")[-1])
        return value

    def _asserts(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if _file_reference(value) or _remote(value):
            value = [a for _, loaded in self.structured(value, where) for a in _as_list(loaded)]
        if not isinstance(value, list):
            raise self.refused(f"{where} must be a list of assertions.", "assert")
        return self._deref(value)

    def _deref(self, asserts: list[Any]) -> list[Any]:
        """Assertions written as `$ref: '#/assertionTemplates/name'` replaced by what they point to
        (a JSON pointer inside this config only; the assertion's other keys override the template's),
        as promptfoo dereferences them when it loads the config."""
        out = []
        for item in asserts:
            if isinstance(item, dict) and "$ref" in item:
                ref = item["$ref"]
                target = self._pointer(ref)
                if not isinstance(target, dict):
                    raise self.refused(f"$ref {ref!r} does not point to an assertion (a mapping).", str(ref))
                item = {**target, **{k: v for k, v in item.items() if k != "$ref"}}
            out.append(item)
        return out

    def _pointer(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise self.refused(
                f"$ref {ref!r} is not a pointer inside this config ('#/assertionTemplates/<name>'): evalhub "
                "resolves no other reference.",
                str(ref),
            )
        node: Any = self.document
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise self.refused(f"$ref {ref!r} points to nothing in the config.", ref)
        return node

    def _test_source(self, tests: Any, where: str, default: dict[str, Any]) -> Iterator[Test]:
        """Tests given inline, as one reference (file, glob) or as a list mixing both."""
        if isinstance(tests, str):
            tests = [tests]
        if isinstance(tests, dict) and ("path" in tests or "file" in tests):
            tests = [tests.get("path") or tests.get("file")]
        if not isinstance(tests, list):
            raise self.refused(f"{where} must be a list of tests or a file:// reference.", where)
        for i, item in enumerate(tests, start=1):
            if isinstance(item, str):
                yield from self._tests_from_files(item, default)
            else:
                yield from self._test_list(
                    [item], "" if where == "tests" else f"{where}[{i}]", default, one=True
                )

    def _tests_from_files(self, ref: str, default: dict[str, Any]) -> Iterator[Test]:
        if not (_file_reference(ref) or _remote(ref)):
            ref = "file://" + ref  # promptfoo reads a bare path as a file too
        for name, data in self.files(ref, "the tests file"):
            lower = name.lower()
            if lower.endswith(".csv"):
                yield from self._csv_tests(name, data, default)
            elif lower.endswith((".jsonl", ".ndjson")):
                for number, line in enumerate(_text(name, data).splitlines(), start=1):
                    if line.strip():
                        test = _parse_json(name, line, number)
                        yield from self._test_list([test], f"{name} line {number}", default, one=True)
            elif lower.endswith((".json", ".yaml", ".yml")):
                loaded = _parse_structured(name, data)
                yield from self._test_list(_as_list(loaded), name, default)
            else:
                raise self.refused(
                    f"the tests file {name!r} is not CSV, JSONL, YAML or JSON (save it as one of these).", ref
                )

    def _csv_tests(self, name: str, data: bytes, default: dict[str, Any]) -> Iterator[Test]:
        try:
            _, rows = read_header_and_rows_csv(io.BytesIO(data))
            for raw in rows:
                test = _test_from_csv_row(raw.values)
                yield from self._test_list([test], f"{name} line {raw.row}", default, one=True)
        except FileProblem as exc:
            line = f" line {exc.row}" if exc.row else ""
            raise FileProblem(f"{name}{line}: {exc.message}", row=exc.row) from exc

    def _scenarios(self, scenarios: Any, default: dict[str, Any]) -> Iterator[Test]:
        if _file_reference(scenarios):
            scenarios = [s for _, loaded in self.structured(scenarios, "scenarios") for s in _as_list(loaded)]
        if not isinstance(scenarios, list):
            raise self.refused("scenarios must be a list of {config, tests}.", "scenarios")
        for i, scenario in enumerate(scenarios, start=1):
            if _file_reference(scenario):
                loaded = self.structured(scenario, "the scenario")
                scenario = loaded[0][1] if loaded else {}
            if not isinstance(scenario, dict):
                raise self.refused("each scenario must be a mapping with config and tests.", "scenarios")
            for key in scenario:
                if key not in ("config", "tests", "description"):
                    self.fidelity.drop(f"scenarios[].{key}")
            configs = scenario.get("config") or [{}]
            if isinstance(configs, str):
                configs = [
                    c
                    for _, loaded in self.structured(configs, "the scenario config")
                    for c in _as_list(loaded)
                ]
            if not isinstance(configs, list):
                raise self.refused("a scenario's config must be a list of {vars, ...}.", "config")
            tests = list(self._test_source(scenario.get("tests") or [{}], f"scenarios[{i}].tests", {}))
            for config in configs:
                if not isinstance(config, dict):
                    raise self.refused("a scenario's config must be a list of mappings.", "config")
                for test in tests:
                    yield self._scenario_test(test, config, default, scenario)

    def _scenario_test(
        self, test: Test, config: dict[str, Any], default: dict[str, Any], scenario: dict[str, Any]
    ) -> Test:
        """A test of a scenario, under one of its configs and the defaults (promptfoo's order: the
        defaults, then the config, then the test)."""
        merged = Test(
            number=test.number,
            where=test.where,
            vars={
                **default.get("vars", {}),
                **self._file_vars(self._vars(config.get("vars"), "config.vars")),
                **test.vars,
            },
            asserts=[
                *default.get("assert", []),
                *self._asserts(config.get("assert"), "config.assert"),
                *test.asserts,
            ],
            description=test.description or str(config.get("description") or ""),
            metadata={**(default.get("metadata") or {}), **(config.get("metadata") or {}), **test.metadata},
            options={**(default.get("options") or {}), **(config.get("options") or {}), **test.options},
            threshold=test.threshold,
            problems=test.problems,
        )
        for key in config:
            if key not in TEST_USED:
                self.fidelity.drop(f"scenarios[].config[].{key}")
        if scenario.get("description"):
            merged.metadata.setdefault("scenario", str(scenario["description"]))
        return merged

    def _test_list(
        self, tests: list[Any], where: str, default: dict[str, Any], *, one: bool = False
    ) -> Iterator[Test]:
        for i, raw in enumerate(tests, start=1):
            self._tests += 1
            self.fidelity.tests_read += 1
            label = where if one or not where else f"{where} test {i}"
            if not isinstance(raw, dict):
                yield Test(
                    self._tests,
                    label,
                    {},
                    [],
                    problems=[("", "each test must be a mapping with vars and assert")],
                )
                continue
            for key in raw:
                if key not in TEST_USED:
                    self.fidelity.drop(f"tests[].{key}")
            self._drop_options(raw.get("options"), "tests[]")
            problems: list[tuple[str, str]] = []
            variables = raw.get("vars") or {}
            if _file_reference(variables):
                variables = self._vars(variables, "vars")
            if not isinstance(variables, dict):
                yield Test(
                    self._tests, label, {}, [], problems=[("vars", "vars must be a mapping of names to text")]
                )
                continue
            asserts = raw.get("assert") or []
            if _file_reference(asserts):
                asserts = self._asserts(asserts, "assert")
            elif not isinstance(asserts, list):
                problems.append(("assert", "assert must be a list of assertions"))
                asserts = []
            else:
                asserts = self._deref(asserts)
            metadata: dict[str, Any] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
            options: dict[str, Any] = raw["options"] if isinstance(raw.get("options"), dict) else {}
            yield Test(
                number=self._tests,
                where=label,
                vars={**default.get("vars", {}), **self._file_vars(variables)},
                asserts=[*default.get("assert", []), *asserts],
                description=str(raw.get("description") or ""),
                metadata={**(default.get("metadata") or {}), **metadata},
                options={**(default.get("options") or {}), **options},
                threshold=raw.get("threshold", default.get("threshold")),
                problems=problems,
            )

    def _file_vars(self, variables: dict[str, Any]) -> dict[str, Any]:
        """Vars whose value is a file:// reference, read from the bundle: text, or parsed JSON/YAML;
        a glob reads as the list of its files (an array var, expanded into tests)."""
        out = dict(variables)
        for name, value in variables.items():
            if _file_reference(value) or _remote(value):
                read = self.files(value, f"vars.{name}")
                values = [
                    _parse_structured(n, d) if n.lower().endswith((".json", ".yaml", ".yml")) else _text(n, d)
                    for n, d in read
                ]
                out[name] = values[0] if len(values) == 1 and "*" not in value else values
        return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{name} is not UTF-8 text (byte offset {exc.start}).") from exc


def _parse_json(name: str, text: str, line: int) -> Any:
    try:
        return json_loads(text)
    except (ValueError, RecursionError) as exc:
        raise FileProblem(f"{name} line {line}: not valid JSON ({exc}).", row=line) from exc


def _parse_structured(name: str, data: bytes) -> Any:
    """A YAML or JSON file of the bundle, parsed whole: capped like the config itself."""
    cap = limits().max_yaml_bytes
    if len(data) > cap:
        raise FileProblem(f"{name} is larger than {cap / 1e6:,.0f} MB (the limit for a YAML or JSON file).")
    text = _text(name, data)
    if name.lower().endswith(".json"):
        return _parse_json(name, text, 1)
    return _load_yaml(text, name)


def _load_yaml(text: str, name: str) -> Any:
    try:
        return yaml_load(text, max_nodes=limits().max_yaml_nodes, core_schema=True)  # promptfoo: YAML 1.2
    except yaml.YAMLError as exc:
        message, line = yaml_error_text(exc)
        raise FileProblem(f"{name}: {message}", row=line) from exc
    except RecursionError as exc:
        raise FileProblem(f"{name}: the YAML is nested too deeply.") from exc


def _test_from_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A promptfoo CSV row as a test: `__expected`/`__expectedN` assertions, `__description`,
    `__metric`, `__threshold`, `__prefix`/`__suffix`, `__metadata:name` (`name[]`: a list split on
    commas), `__providerOutput` (dropped); every other column is a var."""
    test: dict[str, Any] = {"vars": {}, "assert": [], "options": {}, "metadata": {}}
    metric = ""
    for column, value in row.items():
        value = "" if value is None else str(value)
        if column.startswith("__expected"):
            if value.strip():
                test["assert"].append(assertion_from_string(value))
        elif column in ("__prefix", "__suffix"):
            test["options"][column[2:]] = value
        elif column == "__description":
            test["description"] = value
        elif column == "__metric":
            metric = value
        elif column == "__threshold":
            test["threshold"] = value
        elif column == "__providerOutput":
            test["providerOutput"] = value  # counted as dropped with the test's other unused fields
        elif column.startswith("__metadata:"):
            key = column[len("__metadata:") :]
            if key.endswith("[]"):  # split on commas; `\,` is a comma inside a value
                parts = re.split(r"(?<!\\),", value)
                test["metadata"][key[:-2]] = [v.replace("\\,", ",").strip() for v in parts if v.strip()]
            elif value:
                test["metadata"][key] = value
        else:
            test["vars"][column] = value
    if metric:
        for item in test["assert"]:
            item["metric"] = metric
    return test


_ASSERTION_STRING = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_STRING_TYPES = {
    "equals", "contains", "icontains", "contains-all", "contains-any", "icontains-all", "icontains-any",
    "starts-with", "regex", "is-json", "contains-json", "is-sql", "contains-sql", "is-xml", "contains-xml",
    "similar", "levenshtein", "rouge-n", "bleu", "answer-relevance", "classifier", "context-faithfulness",
    "context-recall", "context-relevance", "cost", "latency", "perplexity", "perplexity-score",
    "is-refusal", "llm-rubric", "model-graded-closedqa", "factuality", "moderation", "webhook",
    "is-valid-openai-tools-call", "is-valid-openai-function-call", "g-eval", "word-count", "meteor", "gleu",
}  # fmt: skip


def assertion_from_string(expected: str) -> dict[str, Any]:
    """promptfoo's `__expected` text as an assertion (its csv.ts `assertionFromString`): `type:value`,
    `not-type:value`, `type(threshold):value`, `grade:`/`fn:`/`python:` shorthands; else equals."""
    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"),
                         ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("python:", "python")):  # fmt: skip
        if expected.startswith(prefix):
            return {
                "type": kind,
                "value": expected[len(prefix) :].strip() if kind != "llm-rubric" else expected[len(prefix) :],
            }
    if expected.startswith("file://"):
        return {"type": "python" if ".py" in expected else "javascript", "value": expected[len("file://") :]}
    match = _ASSERTION_STRING.match(expected)
    if match and match.group(2) in _STRING_TYPES:
        negate, kind, threshold, value = match.groups()
        item: dict[str, Any] = {"type": f"{negate or ''}{kind}", "value": value if value is not None else ""}
        if kind in ("contains-all", "contains-any", "icontains-all", "icontains-any"):
            item["value"] = _items(item["value"])
        if threshold:
            item["threshold"] = float(threshold)
        return item
    return {"type": "equals", "value": expected}


_CONVERSATION = re.compile(r"\b_conversation\b")


def _csv_prompts(text: str) -> list[tuple[str, str]]:
    """(label, prompt) of each row of a prompts CSV, as promptfoo reads one (its csv.ts): with a
    header, the `prompt` column and an optional `label`; without a comma, one prompt per line (a
    first line `prompt` is the header)."""
    if "," not in text:
        lines = [line for line in text.splitlines() if line.strip()]
        start = 1 if lines and lines[0].strip().lower() == "prompt" else 0
        return [("", line) for line in lines[start:]]
    rows = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    return [
        ((row.get("label") or "").strip(), (row.get("prompt") or "").strip())
        for row in rows
        if (row.get("prompt") or "").strip()
    ]


# --- cases -----------------------------------------------------------------------------------------


def _input_var(variables: dict[str, Any], input_var: str) -> str:
    if input_var or len(variables) != 1:
        return input_var or next((v for v in INPUT_VARS if v in variables), "")
    return str(next(iter(variables)))


def _expansions(variables: dict[str, Any], lim: int) -> list[dict[str, Any]]:
    """promptfoo runs a test once per combination of its array vars' values (arrays of text only:
    a list of numbers or objects is one value, as in its `generateVarCombinations`)."""
    arrays = {k: v for k, v in variables.items() if isinstance(v, list) and v and isinstance(v[0], str)}
    if not arrays:
        return [variables]
    total = 1
    for values in arrays.values():
        total *= max(len(values), 1)
        if total > lim:
            raise FileProblem(f"a test's array vars expand into more than {lim:,} tests (the row limit).")
    names = list(arrays)
    return [
        {**variables, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*arrays.values())
    ]


def _redteam_metadata(metadata: dict[str, Any], values: dict[str, Any], slices: dict[str, str]) -> None:
    """A generated red-team test: its plugin and strategy become tags and slices, its family the
    case category, and the case is synthetic (made by promptfoo's red-team generator)."""
    # Generated files write the grader's full id (promptfoo:redteam:intent); the plugin is its last part.
    plugin = str(metadata.get("pluginId") or "").removeprefix(REDTEAM_PREFIX)
    strategy = str(metadata.get("strategyId") or "")
    if not plugin:
        return
    tags = list(values.get("tags") or [])
    tags.append(f"plugin:{plugin}")
    slices["plugin"] = plugin
    if strategy:
        tags.append(f"strategy:{strategy}")
        slices["strategy"] = strategy
    values["tags"] = tags
    values.setdefault("origin", "synthetic")
    values.setdefault("generator", f"promptfoo redteam ({strategy or 'basic'})")
    family = next((c for prefix, c in REDTEAM_CATEGORIES if plugin.startswith(prefix)), plugin.split(":")[0])
    values.setdefault("category", family[:60])


def _case_key(
    values: dict[str, Any], variables: dict[str, Any], prompt: Prompt | None, several: bool, test: Test
) -> None:
    """The case id: the test's own (`metadata.id`, `vars.id`), with the prompt's number when there are
    several; else one made of the input, every var and the test's metadata and description, so tests
    told apart by a var (`language`) or by their metadata (a red-team strategy applied to the same
    vars) are not taken for duplicates."""
    if "id" in values:
        if prompt is not None and several:
            values["id"] = f"{_scalar_text(values['id'])}-p{prompt.number}"
        return
    key: dict[str, Any] = {
        "input": values.get("input", ""), "vars": variables, "prompt": prompt.number if prompt and several else 0,
    }  # fmt: skip
    if test.metadata or test.description:  # absent otherwise: the ids of plain tests stay as they were
        key["test"] = {"metadata": test.metadata, "description": test.description}
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False, default=str)
    values["id"] = "pf-" + hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def make_case(
    test: Test, variables: dict[str, Any], input_var: str, fidelity: Fidelity, prompt: Prompt | None = None, *,
    several: bool = False, steps: Steps | None = None,
) -> RawRow:  # fmt: skip
    """One case of a test: its input is `prompt` rendered with the vars (all of which are kept as
    slices), or, for a config without prompts, one var (`input_var`, or the usual names)."""
    prefix = f"{test.where}: " if test.where else ""
    problems: list[tuple[str, str]] = [(prefix + c if c else test.where, p) for c, p in test.problems]
    values: dict[str, Any] = {}
    name = ""
    if prompt is not None:
        try:
            values["input"] = render(prompt.template, variables, file_steps=steps)
            if prompt.chat:
                values["input"] = _chat_text(values["input"], prompt.chat)
        except TemplateProblem as exc:
            _stop_if_spent(steps, exc, f"prompt {prompt.label!r}")
            values["input"] = ""
            problems.append((f"{prefix}prompt {prompt.label}", exc.message))
    else:
        name = _input_var(variables, input_var)
        problems.extend((prefix + c, p) for c, p in _input_from_var(variables, name, values))
    options = test.options
    if values.get("input") and (options.get("prefix") or options.get("suffix")):
        values["input"] = f"{options.get('prefix') or ''}{values['input']}{options.get('suffix') or ''}"
    slices: dict[str, str] = {}
    for var, value in variables.items():
        if var == name:
            continue
        if var in REFERENCE_VARS and "reference" not in values:
            values["reference"] = _scalar_text(value)
        elif var in ("id", "key"):
            values["id"] = _scalar_text(value)
        else:
            slices[str(var)] = _scalar_text(value)
    metadata = test.metadata
    for key in PROMPTFOO_METADATA_FIELDS:
        if key in metadata:
            values[key] = metadata[key]
    for key, value in metadata.items():
        if key not in PROMPTFOO_METADATA_FIELDS and not (key in ("pluginId", "strategyId") and value):
            slices[str(key)] = _scalar_text(value)  # a red-team plugin and strategy: slices below
    _redteam_metadata(metadata, values, slices)
    if test.description:
        slices["description"] = test.description
    if test.threshold not in (None, ""):
        slices["threshold"] = _scalar_text(test.threshold)
    if prompt is not None and several:
        slices["prompt"] = prompt.label
    _case_key(values, variables, prompt, several, test)
    if slices:
        values["slices"] = slices
    tally: Counter[str] = Counter()
    values["expected"] = _expected(test, variables, values, fidelity, problems, prefix, tally, steps)
    return PromptfooRow(test.number, values, problems, tally["mapped"], tally["pending"])


def _stop_if_spent(steps: Steps | None, exc: TemplateProblem, what: str) -> None:
    """A file whose templates have used up its rendering budget is refused whole, at once."""
    if steps is not None and steps.exhausted:
        raise FileProblem(f"{what}: {exc.message}; reading stopped.") from exc


def _chat_text(rendered: str, kind: str) -> str:
    """A rendered chat prompt as the case's input: the one message's content, or each message as
    "role: content" in order (a system message stays visible). Text that does not parse as a message
    list is kept as rendered, as promptfoo then sends it."""
    try:
        if kind == "json":
            messages = json.loads(rendered)
        else:
            messages = yaml_load(rendered, max_nodes=limits().max_yaml_nodes, core_schema=True)
    except (ValueError, yaml.YAMLError, RecursionError):
        return rendered
    if not (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) and "content" in m for m in messages)
    ):
        return rendered
    if len(messages) == 1:
        return _scalar_text(messages[0]["content"])
    return "\n\n".join(f"{m.get('role', 'user')}: {_scalar_text(m['content'])}" for m in messages)


def _input_from_var(variables: dict[str, Any], name: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    """Set values["input"] from the var `name`; the problems found."""
    if not name or name not in variables:
        return [
            (
                "vars",
                f"no input variable: name it one of {', '.join(INPUT_VARS)}, choose the variable, or "
                f"give prompts: (found: {', '.join(map(str, variables)) or 'none'})",
            )
        ]
    values["input"] = _scalar_text(variables[name])
    return []


def _expected(
    test: Test, variables: dict[str, Any], values: dict[str, Any], fidelity: Fidelity,
    problems: list[tuple[str, str]], prefix: str, tally: Counter[str], steps: Steps | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The case's checks; `tally` counts its assertions mapped and pending."""
    expected: list[dict[str, Any]] = []
    transformed = bool(test.options.get("transform"))
    for i, item in enumerate(test.asserts, start=1):
        where = f"{prefix}assert[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            problems.append((where, "each assertion needs a type"))
            continue
        kind = str(item["type"])
        if is_template(item.get("value")):  # `equals: '{{answer}}'` means the test's answer
            try:
                item = {**item, "value": render(item["value"], variables, file_steps=steps)}
            except TemplateProblem as exc:
                _stop_if_spent(steps, exc, where)
                problems.append((where, exc.message))
                continue
        if transformed:
            item = {**item, "transform": test.options["transform"]}
        checks = _mapped(kind, item)
        if checks is None:
            expected.append(_pending(item, test.options))
            tally["pending"] += 1
            continue
        if (
            kind not in NEEDS_NO_VALUE
            and kind in PROMPTFOO_ASSERTIONS
            and item.get("value") in (None, "", [])
        ):
            problems.append((where, f"assertion {kind!r} needs a value"))
            continue
        if (
            kind in PROMPTFOO_ASSERTIONS
            and isinstance(item.get("value"), dict | list)
            and not kind.endswith(("json", "-all", "-any"))
        ):
            expected.append(
                _pending(item, test.options)
            )  # equals an object: a JSON comparison, left to a judge
            tally["pending"] += 1
            continue
        for key in item:
            if key not in ASSERT_USED:
                fidelity.drop(f"assert[].{key}")
        if item.get("metric"):
            values["tags"] = [*(values.get("tags") or []), f"metric:{item['metric']}"]
        expected.extend(checks)
        tally["mapped"] += 1
    return expected


def _mapped(kind: str, item: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Our checks for an assertion, or None when evalhub cannot run it (kept pending)."""
    if any(key in item for key in ASSERT_PENDING_KEYS):
        return None
    if kind in PROMPTFOO_ASSERTIONS:
        return PROMPTFOO_ASSERTIONS[kind](item.get("value"))
    if kind in _our_types():
        return [{k: v for k, v in item.items() if k not in ("weight", "metric")}]
    if kind.startswith(REDTEAM_PREFIX):
        found = _redteam_check(kind)
        return [found] if found is not None else None
    return None


# --- the entry point -------------------------------------------------------------------------------


def read_rows_promptfoo(
    raw: IO[bytes],
    *,
    input_var: str = "",
    fidelity: Fidelity | None = None,
    bundle: Bundle | None = None,
    name: str = "the config",
) -> Iterator[RawRow]:
    """The cases of a promptfoo config, one per test, array-var value and prompt."""
    lim = limits()
    fidelity = fidelity if fidelity is not None else Fidelity()
    data = raw.read(lim.max_yaml_bytes + 1)
    if len(data) > lim.max_yaml_bytes:
        raise FileProblem(f"The YAML file is larger than {lim.max_yaml_bytes / 1e6:,.0f} MB (the limit).")
    reader = DecodedReader(io.BytesIO(data))
    text = "".join(reader.lines(len(data) + 1))
    try:
        document = yaml_load(text, max_nodes=lim.max_yaml_nodes, core_schema=True)  # promptfoo: YAML 1.2
    except yaml.YAMLError as exc:
        message, line = yaml_error_text(exc)
        raise FileProblem(message if bundle is None else f"{name}: {message}", row=line) from exc
    except RecursionError as exc:
        raise FileProblem("The YAML is nested too deeply.") from exc
    config = ConfigReader(
        document, text=text, name=name, input_var=input_var, fidelity=fidelity, bundle=bundle
    )
    prompts = config.prompts()
    steps = Steps(FILE_MAX_STEPS, FILE_MAX_SECONDS, what="the config's templates")
    for test in config.tests():
        variables_list = [test.vars]
        try:
            variables_list = _expansions(test.vars, lim.max_rows)
        except FileProblem as exc:
            raise FileProblem(f"{test.where or f'test {test.number}'}: {exc.message}") from exc
        for variables in variables_list:
            several = len(prompts) > 1
            choices: list[Prompt | None] = [*prompts] if prompts else [None]
            for prompt in choices:
                yield make_case(
                    test, variables, config.input_var, fidelity, prompt, several=several, steps=steps
                )
