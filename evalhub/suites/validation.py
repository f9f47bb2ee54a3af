"""Turning raw rows into cases, with row-level problems (row, column, problem).

Used identically by the web upload, the API and the CLI: the same file gives the same problems
whichever way it arrives.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from evalhub.suites.models import CASE_FILE_FIELDS
from evalhub.suites.parsing import FileProblem, Limits, RawRow
from evalhub.untrusted import Refused, json_loads, printable, unstorable

FIELDS = CASE_FILE_FIELDS
REQUIRED = ("input",)
FIELD_HELP = {
    "key": "Case id, unique in the suite; used to diff versions (made from the input when absent).",
    "input": "The prompt or document given to the model. Required.",
    "reference": "An optional reference output.",
    "tags": "Tags, separated by ; or as a JSON list.",
    "slices": 'Slice fields as a JSON object ({"domain": "finance"}) or k=v; k=v.',
    "origin": "real or synthetic (default real).",
    "generator": "What generated a synthetic case (required when origin is synthetic).",
    "split": "eval or heldout (held-out real cases; default eval).",
    "category": "For adversarial and stress cases, e.g. injection, refusal, pii.",
    "expected": 'Expected behaviour: a JSON list of checks such as [{"type": "must_refuse"}].',
}
# Column names recognised without a mapping (lower-cased, spaces and dashes as underscores).
ALIASES: dict[str, tuple[str, ...]] = {
    "key": ("id", "key", "case_id", "case", "caseid", "uid", "name"),
    "input": ("input", "prompt", "document", "question", "query", "text", "source"),
    "reference": ("reference", "expected_output", "output", "answer", "target", "ideal", "summary"),
    "tags": ("tags", "tag", "labels"),
    "slices": ("slices", "slice", "metadata"),
    "origin": ("origin",),
    "generator": ("generator", "generated_by"),
    "split": ("split",),
    "category": ("category", "attack", "kind"),
    "expected": ("expected", "expected_behaviour", "expected_behavior", "checks", "assert"),
}
SLICE_PREFIXES = ("slice.", "slice:", "slice_")
ORIGINS = {"real": "real", "synthetic": "synthetic", "synth": "synthetic", "": "real"}
SPLITS = {
    "eval": "eval",
    "evaluation": "eval",
    "test": "eval",
    "": "eval",
    "heldout": "heldout",
    "held-out": "heldout",
    "held_out": "heldout",
    "holdout": "heldout",
}
KEY_MAX = 200
CATEGORY_MAX = 60
GENERATOR_MAX = 200


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the upload. `row` is None for the file as a whole."""

    row: int | None
    column: str
    problem: str
    fatal: bool = False  # the file cannot be imported at all, not even its valid rows

    def to_dict(self) -> dict[str, Any]:
        # Column names and quoted values come from the file: escape what storage and JSON refuse.
        data = asdict(self)
        data["column"] = printable(self.column)
        data["problem"] = printable(self.problem)
        if not self.fatal:
            data.pop("fatal")
        return data


@dataclass
class CaseData:
    """A validated case, ready to store."""

    row: int
    key: str
    input: str
    reference: str = ""
    tags: list[str] = field(default_factory=list)
    slices: dict[str, str] = field(default_factory=dict)
    origin: str = "real"
    generator: str = ""
    split: str = "eval"
    category: str = ""
    expected: list[dict[str, Any]] = field(default_factory=list)
    key_given: bool = True

    def content(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "reference": self.reference,
            "tags": self.tags,
            "slices": self.slices,
            "origin": self.origin,
            "generator": self.generator,
            "split": self.split,
            "category": self.category,
            "expected": self.expected,
        }

    def _blob(self) -> bytes:
        return json.dumps(self.content(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    def content_hash(self) -> str:
        return hashlib.sha256(self._blob()).hexdigest()

    def content_digest(self) -> bytes:
        """The raw digest (half the memory of the hex form) for duplicate detection over large files."""
        return hashlib.sha256(self._blob()).digest()


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def auto_mapping(columns: Iterable[str]) -> dict[str, str]:
    """field -> column for the columns whose names we recognise."""
    by_norm: dict[str, str] = {}
    for column in columns:
        by_norm.setdefault(_norm(column), column)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for fld in FIELDS:
        for alias in ALIASES[fld]:
            found = by_norm.get(alias)
            if found is not None and found not in used:
                mapping[fld] = found
                used.add(found)
                break
    return mapping


def check_mapping(mapping: dict[str, str], columns: list[str] | None) -> list[Problem]:
    """Problems with a mapping against the file's columns (None: columns unknown until rows are read)."""
    problems = [
        Problem(None, fld, f"unknown field {fld!r} in the mapping (fields: {', '.join(FIELDS)})", fatal=True)
        for fld in mapping
        if fld not in FIELDS
    ]
    if columns is None:
        return problems
    for fld, column in mapping.items():
        if column and column not in columns:
            problems.append(
                Problem(1, column, f"column {column!r} mapped to {fld} is not in the file", fatal=True)
            )
    for fld in REQUIRED:
        if not mapping.get(fld):
            found = ", ".join(repr(c) for c in columns[:20]) or "none"
            problems.append(
                Problem(
                    1,
                    fld,
                    f"missing required column {fld!r} (columns found: {found}); "
                    f"name a column {fld!r} or map one to it",
                    fatal=True,
                )
            )
    return problems


# --- expected behaviour ----------------------------------------------------------------------------

LOCAL_CHECK_TYPES: dict[str, tuple[str, ...]] = {
    "must_refuse": (),
    "must_not_refuse": (),
    "contains": ("value",),
    "not_contains": ("value",),
    "regex": ("pattern",),
    "valid_json": (),
    "contains_json": (),
    "max_length": ("value",),
    "no_pii": (),
    "no_injection": ("marker",),
    "pending": ("assert",),
}


def check_types() -> list[str]:
    try:
        from metrics.checks import CHECK_TYPES
    except ImportError:
        return sorted(LOCAL_CHECK_TYPES)
    return sorted(CHECK_TYPES)


def expected_problems(expected: list[Any]) -> list[str]:
    """Messages for an expected-behaviour list: the metrics module's schema (one home for it), with a
    local fallback while that module is absent."""
    try:
        from metrics.checks import validate_expected
    except ImportError:
        return _local_expected_problems(expected)
    return list(validate_expected(expected))


def _local_expected_problems(expected: list[Any]) -> list[str]:
    known = check_types()
    messages: list[str] = []
    for i, check in enumerate(expected):
        where = f"expected[{i}]"
        if not isinstance(check, dict) or "type" not in check:
            messages.append(f"{where}: each expected behaviour must be an object with a 'type'")
            continue
        if check["type"] not in known:
            messages.append(
                f"{where}: unknown expected-behaviour type {check['type']!r} (known: {', '.join(known)})"
            )
            continue
        for needed in LOCAL_CHECK_TYPES.get(str(check["type"]), ()):
            if check.get(needed) in (None, ""):
                messages.append(f"{where}: '{check['type']}' needs a '{needed}' field")
        if check["type"] == "max_length" and not isinstance(check.get("value"), int):
            messages.append(f"{where}: 'max_length' field 'value' must be an integer")
        if check["type"] == "regex" and isinstance(check.get("pattern"), str):
            try:
                re.compile(check["pattern"])
            except re.error as exc:
                messages.append(f"{where}: regex pattern does not compile: {exc}")
    return messages


# --- one row ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Refused):
        raise ValueError(value.reason)
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json_loads(text)
        else:
            return [t.strip() for t in re.split(r"[;,|]", text) if t.strip()]
    if not isinstance(value, list) or not all(isinstance(t, str | int | float) for t in value):
        raise ValueError("tags must be text separated by ; or a JSON list of strings")
    return [str(t).strip() for t in value if str(t).strip()]


def _slices(value: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json_loads(text)
        else:
            pairs = [p for p in re.split(r"[;|]", text) if p.strip()]
            out = {}
            for pair in pairs:
                name, sep, val = pair.partition("=")
                if not sep or not name.strip():
                    raise ValueError('slices must be a JSON object or "name=value; name=value"')
                out[name.strip()] = val.strip()
            return out
    if not isinstance(value, dict):
        raise ValueError("slices must be a JSON object of names to values")
    out = {}
    for name, val in value.items():
        if isinstance(val, dict | list):
            raise ValueError(f"slice {name!r} must be a single value, not a list or object")
        out[str(name)] = _text(val)
    return out


def _expected(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = json_loads(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected must be a JSON list of checks")
    return value


def _key_from_input(text: str) -> str:
    return "h-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def case_from_row(raw: RawRow, mapping: dict[str, str], lim: Limits) -> tuple[CaseData | None, list[Problem]]:
    """Validate one raw row under a field -> column mapping."""
    problems = [Problem(raw.row, column, problem) for column, problem in raw.problems]
    if raw.problems and not raw.values:
        return None, problems
    values = raw.values

    def column_of(fld: str) -> str:
        return mapping.get(fld) or fld

    def get(fld: str) -> Any:
        column = mapping.get(fld)
        return values.get(column) if column else None

    for fld in FIELDS:
        found = _unstorable_field(fld, get(fld))
        if found is not None:
            return None, [*problems, _unstorable_problem(raw.row, column_of(fld), found)]
    for fld in FIELDS:
        value = get(fld)
        if isinstance(value, str) and len(value) > lim.max_field_chars:
            problems.append(
                Problem(
                    raw.row,
                    column_of(fld),
                    f"{len(value):,} characters; the limit is {lim.max_field_chars:,}",
                )
            )
    if problems and any("the limit is" in p.problem for p in problems):
        return None, problems

    text = _text(get("input"))
    if not mapping.get("input") or mapping["input"] not in values:
        problems.append(Problem(raw.row, column_of("input"), "missing input"))
    elif not text.strip():
        problems.append(Problem(raw.row, column_of("input"), "empty input"))
    key = _text(get("key")).strip()
    key_given = bool(key)
    if not key:
        key = _key_from_input(text)
    if len(key) > KEY_MAX:
        problems.append(Problem(raw.row, column_of("key"), f"id longer than {KEY_MAX} characters"))

    case = CaseData(row=raw.row, key=key, input=text, reference=_text(get("reference")), key_given=key_given)
    for fld, parse in (("tags", _tags), ("slices", _slices), ("expected", _expected)):
        try:
            setattr(case, fld, parse(get(fld)))
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(raw.row, column_of(fld), f"not valid JSON: {exc.msg} at character {exc.pos + 1}")
            )
        except (ValueError, RecursionError) as exc:
            problems.append(Problem(raw.row, column_of(fld), str(exc) or "nested too deeply"))
    for column in values:
        if isinstance(column, str) and column.lower().startswith(SLICE_PREFIXES):
            value = values[column]
            if value not in (None, ""):
                case.slices[column[6:].strip()] = _text(value)
    origin = _text(get("origin")).strip().lower()
    if origin not in ORIGINS:
        problems.append(
            Problem(raw.row, column_of("origin"), f"origin must be real or synthetic, not {origin!r}")
        )
    else:
        case.origin = ORIGINS[origin]
    split = _text(get("split")).strip().lower()
    if split not in SPLITS:
        problems.append(Problem(raw.row, column_of("split"), f"split must be eval or heldout, not {split!r}"))
    else:
        case.split = SPLITS[split]
    case.generator = _text(get("generator")).strip()
    if case.generator.lower() in ("none", "null"):
        case.generator = ""
    if case.origin == "synthetic" and not case.generator:
        problems.append(Problem(raw.row, column_of("generator"), "a synthetic case must name its generator"))
    if case.origin == "synthetic" and case.split == "heldout":
        problems.append(Problem(raw.row, column_of("split"), "the held-out split is for real cases only"))
    if len(case.generator) > GENERATOR_MAX:
        problems.append(Problem(raw.row, column_of("generator"), f"longer than {GENERATOR_MAX} characters"))
    case.category = _text(get("category")).strip()
    if case.category.lower() in ("none", "null"):
        case.category = ""
    if len(case.category) > CATEGORY_MAX:
        problems.append(Problem(raw.row, column_of("category"), f"longer than {CATEGORY_MAX} characters"))
    storage = _storage_problems(raw.row, case, column_of)
    if storage:
        return None, problems + storage
    if isinstance(case.expected, list) and case.expected:
        for message in expected_problems(case.expected):
            problems.append(Problem(raw.row, column_of("expected"), message))
    return (None if problems else case), problems


def _unstorable_field(fld: str, value: Any) -> tuple[str, str] | None:
    """Where in a field's value storage would fail: a nested place is named from the field down."""
    return unstorable(value, fld if isinstance(value, dict | list) else "")


def _unstorable_problem(row: int, column: str, found: tuple[str, str]) -> Problem:
    where, reason = found
    return Problem(row, column, f"{where} {reason}" if where else reason)


def _storage_problems(row: int, case: CaseData, column_of: Any) -> list[Problem]:
    """What the database would refuse in a parsed case (a NUL inside a JSON cell's text, say)."""
    for fld, value in {"key": case.key, **case.content()}.items():
        found = _unstorable_field(fld, value)
        if found is not None:
            return [_unstorable_problem(row, column_of(fld), found)]
    return []


@dataclass
class RowStream:
    """Validates a stream of raw rows: per-row problems, duplicates, the row limit."""

    mapping: dict[str, str]
    lim: Limits
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    rows_read: int = 0
    valid_rows: int = 0
    problem_rows: set[int] = field(default_factory=set)
    _keys: dict[str, int] = field(default_factory=dict)
    _contents: dict[bytes, int] = field(default_factory=dict)

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if problem.row is not None:
            self.problem_rows.add(problem.row)
        if len(self.problems) < self.lim.max_problems or problem.fatal:
            self.problems.append(problem)

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    def cases(self, rows: Iterable[RawRow]) -> Iterator[CaseData]:
        """The valid cases, in order; problems accumulate on self. Stops at a file-level problem."""
        try:
            for raw in rows:
                self.rows_read += 1
                if self.rows_read > self.lim.max_rows:
                    self.add(
                        Problem(
                            raw.row,
                            "",
                            f"the file has more than {self.lim.max_rows:,} cases (the limit); split it",
                            fatal=True,
                        )
                    )
                    return
                case, problems = case_from_row(raw, self.mapping, self.lim)
                for problem in problems:
                    self.add(problem)
                if case is None:
                    continue
                if case.key in self._keys:
                    self.add(
                        Problem(
                            raw.row,
                            self.mapping.get("key") or "key",
                            f"duplicate id {case.key!r} (first on row {self._keys[case.key]})"
                            if case.key_given
                            else f"duplicate of row {self._keys[case.key]} (same input)",
                        )
                    )
                    continue
                digest = case.content_digest()
                if digest in self._contents:
                    self.add(
                        Problem(raw.row, "", f"duplicate case: same content as row {self._contents[digest]}")
                    )
                    continue
                self._keys[case.key] = raw.row
                self._contents[digest] = raw.row
                self.valid_rows += 1
                yield case
        except FileProblem as exc:
            self.add(Problem(exc.row, exc.column, exc.message, fatal=True))
