"""Reading promptfoo configs: tests, prompts, vars and assertions mapped to evalhub cases.

A config's tests become `RawRow`s like any other file's rows, so validation, PII screening and
storage are the same for every format.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import yaml

from evalhub.suites.parsing import DecodedReader, FileProblem, RawRow, limits
from evalhub.suites.templating import TemplateProblem, check, is_template, render
from evalhub.untrusted import yaml_error_text, yaml_load

# --- promptfoo YAML --------------------------------------------------------------------------------


# promptfoo assertion type -> function(value) returning our expected-behaviour check, or None
def _escape(value: Any) -> str:
    return re.escape(str(value))


PROMPTFOO_ASSERTIONS: dict[str, Any] = {
    "contains": lambda v: {"type": "contains", "value": str(v)},
    "not-contains": lambda v: {"type": "not_contains", "value": str(v)},
    "icontains": lambda v: {"type": "contains", "value": str(v), "case_sensitive": False},
    "not-icontains": lambda v: {"type": "not_contains", "value": str(v), "case_sensitive": False},
    "regex": lambda v: {"type": "regex", "pattern": str(v)},
    "equals": lambda v: {"type": "regex", "pattern": r"\A" + _escape(v) + r"\Z"},
    "starts-with": lambda v: {"type": "regex", "pattern": r"\A" + _escape(v)},
    # promptfoo's value for these is an optional JSON schema the JSON must match.
    "is-json": lambda v: {"type": "valid_json", **({"schema": v} if isinstance(v, dict) else {})},
    "contains-json": lambda v: {"type": "contains_json", **({"schema": v} if isinstance(v, dict) else {})},
}
OUR_TYPES_IN_PROMPTFOO = {
    "must_refuse",
    "must_not_refuse",
    "contains",
    "not_contains",
    "regex",
    "valid_json",
    "contains_json",
    "max_length",
    "no_pii",
    "no_injection",
}
INPUT_VARS = ("input", "document", "prompt", "query", "question", "text")
REFERENCE_VARS = ("reference", "expected", "expected_output", "answer", "target")
# promptfoo test metadata keys that set a case field (mapped like file columns); other keys become slices.
PROMPTFOO_METADATA_FIELDS = ("id", "tags", "origin", "generator", "split", "category")


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


def _input_from_var(variables: dict[str, Any], name: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    """Set values["input"] from the var `name`; the problems found."""
    if not name or name not in variables:
        return [
            (
                "vars",
                f"no input variable: name it one of {', '.join(INPUT_VARS)} or choose the variable "
                f"(found: {', '.join(map(str, variables)) or 'none'})",
            )
        ]
    problems: list[tuple[str, str]] = []
    text = variables[name]
    if isinstance(text, list):
        problems.append(
            (
                f"vars.{name}",
                "a list of values (promptfoo expands it into several tests) is not "
                "supported: write one test per value",
            )
        )
    if isinstance(text, str) and text.startswith("file://"):
        problems.append((f"vars.{name}", "file:// references are not supported: put the text inline"))
    values["input"] = _scalar_text(text)
    return problems


@dataclass(frozen=True)
class Prompt:
    """One of a config's inline `prompts:`: its position (from 1), label and Nunjucks template."""

    number: int
    label: str
    template: str


def _input_var(variables: dict[str, Any], input_var: str) -> str:
    if input_var or len(variables) != 1:
        return input_var or next((v for v in INPUT_VARS if v in variables), "")
    return str(next(iter(variables)))


def _promptfoo_case(
    number: int, test: Any, input_var: str, default_asserts: list[Any], prompt: Prompt | None = None, *,
    several: bool = False,
) -> RawRow:  # fmt: skip
    """One case of a test: its input is `prompt` rendered with the test's vars (all of which are kept
    as slices), or, for a config without inline prompts, one var (`input_var`, or the usual names)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(test, dict):
        return RawRow(number, {}, [("", "each test must be a mapping with vars and assert")])
    variables = test.get("vars") or {}
    if not isinstance(variables, dict):
        return RawRow(number, {}, [("vars", "vars must be a mapping of names to text")])
    values: dict[str, Any] = {}
    name = ""
    if prompt is not None:
        try:
            values["input"] = render(prompt.template, variables)
        except TemplateProblem as exc:
            values["input"] = ""
            problems.append((f"prompts[{prompt.number}]", exc.message))
    else:
        name = _input_var(variables, input_var)
        problems.extend(_input_from_var(variables, name, values))
    metadata: dict[str, Any] = test["metadata"] if isinstance(test.get("metadata"), dict) else {}
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
    for key in PROMPTFOO_METADATA_FIELDS:
        if key in metadata:
            values[key] = metadata[key]
    for key, value in metadata.items():
        if key not in PROMPTFOO_METADATA_FIELDS:
            slices[str(key)] = _scalar_text(value)
    if prompt is not None and several:
        slices["prompt"] = prompt.label
        if "id" in values:
            values["id"] = f"{_scalar_text(values['id'])}-p{prompt.number}"
    if slices:
        values["slices"] = slices
    expected: list[dict[str, Any]] = []
    own = test.get("assert") or []
    if _file_reference(own):
        problems.append(("assert", "file:// references are not supported: put the assertions inline"))
        own = []
    elif not isinstance(own, list):
        problems.append(("assert", "assert must be a list of assertions"))
        own = []
    asserts = list(default_asserts) + own
    for i, item in enumerate(asserts, start=1):
        if not isinstance(item, dict) or "type" not in item:
            problems.append((f"assert[{i}]", "each assertion needs a type"))
            continue
        kind = str(item["type"])
        if is_template(item.get("value")):  # `equals: '{{answer}}'` means the test's answer
            try:
                item = {**item, "value": render(item["value"], variables)}
            except TemplateProblem as exc:
                problems.append((f"assert[{i}]", exc.message))
                continue
        if kind in PROMPTFOO_ASSERTIONS:
            if kind not in ("is-json", "contains-json") and item.get("value") in (None, ""):
                problems.append((f"assert[{i}]", f"assertion {kind!r} needs a value"))
                continue
            expected.append(PROMPTFOO_ASSERTIONS[kind](item.get("value")))
        elif kind in OUR_TYPES_IN_PROMPTFOO:
            expected.append({k: v for k, v in item.items() if k != "weight"})
        else:
            problems.append(
                (
                    f"assert[{i}]",
                    f"unknown assertion type {kind!r}: evalhub maps "
                    f"{', '.join(sorted(PROMPTFOO_ASSERTIONS))} (and its own check types); "
                    "remove it or replace it with one of these",
                )
            )
    values["expected"] = expected
    return RawRow(number, values, problems)


def _file_reference(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("file://")


def _default_asserts(default: Any) -> list[Any]:
    """defaultTest's assertions, added to every test; a file:// reference is refused, not ignored."""
    if default is None:
        return []
    if _file_reference(default):
        raise FileProblem(
            "defaultTest: file:// references are not supported: put the default test in this file."
        )
    if not isinstance(default, dict):
        raise FileProblem("defaultTest must be a mapping (with assert: a list of assertions).")
    asserts = default.get("assert")
    if asserts is None:
        return []
    if _file_reference(asserts):
        raise FileProblem(
            "defaultTest.assert: file:// references are not supported: put the assertions in this file."
        )
    if not isinstance(asserts, list):
        raise FileProblem("defaultTest.assert must be a list of assertions.")
    return asserts


def _default_vars(default: Any) -> dict[str, Any]:
    """defaultTest's vars, merged under every test's own (as promptfoo does)."""
    variables = default.get("vars") if isinstance(default, dict) else None
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise FileProblem("defaultTest.vars must be a mapping of names to values.")
    return variables


def read_rows_promptfoo(raw: IO[bytes], *, input_var: str = "") -> Iterator[RawRow]:
    lim = limits()
    data = raw.read(lim.max_yaml_bytes + 1)
    if len(data) > lim.max_yaml_bytes:
        raise FileProblem(f"The YAML file is larger than {lim.max_yaml_bytes / 1e6:,.0f} MB (the limit).")
    reader = DecodedReader(io.BytesIO(data))
    text = "".join(reader.lines(len(data) + 1))
    try:
        document = yaml_load(text, max_nodes=lim.max_yaml_nodes, core_schema=True)  # promptfoo: YAML 1.2
    except yaml.YAMLError as exc:
        message, line = yaml_error_text(exc)
        raise FileProblem(message, row=line) from exc
    except RecursionError as exc:
        raise FileProblem("The YAML is nested too deeply.") from exc
    default_asserts: list[Any] = []
    if isinstance(document, dict):
        default_asserts = _default_asserts(document.get("defaultTest"))
        if "tests" not in document:
            raise FileProblem("A promptfoo file needs a list of tests (a top-level list, or a 'tests:' key).")
        tests = document["tests"]
    else:
        tests = document
    if isinstance(tests, str):
        raise FileProblem("tests: file references are not supported: put the tests in this file.")
    if not isinstance(tests, list):
        raise FileProblem("A promptfoo file needs a list of tests (a top-level list, or a 'tests:' key).")
    prompts = _inline_prompts(document) if isinstance(document, dict) and not input_var else []
    default_vars = _default_vars(document.get("defaultTest") if isinstance(document, dict) else None)
    for number, test in enumerate(tests, start=1):
        if default_vars and isinstance(test, dict) and isinstance(test.get("vars") or {}, dict):
            test = {**test, "vars": {**default_vars, **(test.get("vars") or {})}}  # the test's own win
        if not prompts:
            yield _promptfoo_case(number, test, input_var, default_asserts)
        for prompt in prompts:
            yield _promptfoo_case(number, test, input_var, default_asserts, prompt, several=len(prompts) > 1)


def _inline_prompts(document: dict[str, Any]) -> list[Prompt]:
    """The config's `prompts:` written inline (text, or `{raw, label}`), each rendered into the input.

    [] when there are none, or when any is a file reference or a chat message list: those are read
    as before (one var is the input) until bundles bring the files.
    """
    raw = document.get("prompts")
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    prompts: list[Prompt] = []
    for number, item in enumerate(items, start=1):
        template, label = (
            (item.get("raw"), item.get("label") or item.get("id")) if isinstance(item, dict) else (item, None)
        )
        if not isinstance(template, str) or _file_reference(template) or not is_template(template):
            return []
        try:
            check(template)
        except TemplateProblem as exc:
            raise FileProblem(f"prompts[{number}]: {exc.message}") from exc  # the line is the template's
        prompts.append(Prompt(number, str(label or f"prompt {number}"), template))
    return prompts
