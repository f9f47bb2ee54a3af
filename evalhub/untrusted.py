"""Reading text from outside: bounded YAML, strict JSON, and the values the database cannot store.

One home for these rules, used by suite uploads, gate policies and the API's JSON parser. A hostile
document must cost bounded work to read and must never reach the database or a JSON renderer with a
value they refuse: PostgreSQL refuses NUL in text and jsonb, UTF-8 (and so psycopg, jsonb and our
digests) refuses unpaired surrogates, jsonb refuses NaN and Infinity, and Python refuses to turn an
integer of more than 4,300 digits into text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_INT_DIGITS = 4300  # Python's default int <-> str limit (sys.get_int_max_str_digits())
_INT_LIMIT = 10**MAX_INT_DIGITS
HUGE_INT = f"has a number with more than {MAX_INT_DIGITS:,} digits"
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


# --- values the storage layer refuses ------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """Stands in for a JSON number that cannot be kept (huge integer, NaN, Infinity) until the walk
    in `unstorable` reports where it was."""

    reason: str


def _str_problem(text: str) -> str | None:
    match = _BAD_CHARS.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains an unpaired surrogate (\\u{ord(match.group()):04x}): it is not valid Unicode text"


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _str_problem(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return HUGE_INT if abs(value) >= _INT_LIMIT else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "has a number that is not finite (NaN or Infinity)"
    if isinstance(value, Refused):
        return value.reason
    return f"has a value of type {type(value).__name__}, which is not JSON"


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first value in a JSON-like tree that cannot be stored, or None.

    Keys are checked as well as values; the walk uses its own stack, so depth costs no recursion.
    `path` names the place like `cases[3].input`.
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = f"{where}.{key}" if where and isinstance(key, str) else where or str(key)
                if isinstance(key, str) and (reason := _str_problem(key)):
                    return printable(name), f"has a field name that {reason}"
                stack.append((name if isinstance(key, str) else f"{where}[{key!r}]", child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
        elif (reason := _scalar_problem(item)) is not None:
            return printable(where), reason
    return None


def printable(text: str) -> str:
    """`text` with NUL and unpaired surrogates written as escapes, safe to store and to render."""
    if _BAD_CHARS.search(text) is None:
        return text
    return _BAD_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _describe(value: Any) -> str:
    return f"<{value.reason}>" if isinstance(value, Refused) else f"<{type(value).__name__}>"


def display(value: Any) -> str:
    """Any parsed value as safe text for previews and messages (never raises)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Refused):
        return _describe(value)
    try:
        return printable(json.dumps(value, ensure_ascii=False, default=_describe))
    except (ValueError, TypeError, RecursionError):
        return f"<{type(value).__name__}>"


# --- JSON ----------------------------------------------------------------------------------------


def _int(text: str) -> int | Refused:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return Refused(HUGE_INT)
    return int(text)


def _constant(name: str) -> Refused:
    return Refused(f"has {name}, which is not a number JSON allows")


def json_loads(text: str | bytes) -> Any:
    """`json.loads` that never fails on numbers: huge integers, NaN and Infinity become `Refused`
    markers for `unstorable` to report with their place. Other errors are json's own."""
    return json.loads(text, parse_int=_int, parse_constant=_constant)


# --- YAML ----------------------------------------------------------------------------------------


class YamlTooLarge(yaml.YAMLError):
    """The document has more nodes than allowed (aliases count as often as they are used)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where available


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _count_nodes(text: str, max_nodes: int) -> None:
    """Count the document's nodes from its parse events, an alias counting as the whole subtree it
    names; raise YamlTooLarge past `max_nodes`. Only events are made, never the data, so a
    billion-laughs document is refused after `max_nodes` expanded nodes, in a fraction of a second."""
    count = 0
    sizes: dict[str, int] = {}
    open_collections: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                line = _line(event)
                raise YamlTooLarge(
                    f"The YAML alias *{event.anchor} refers to itself or to nothing (line {line}).", line
                )
            count += sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            count += 1
            open_collections.append((event.anchor, count - 1))
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            anchor, before = open_collections.pop()
            if anchor is not None:
                sizes[anchor] = count - before
        if count > max_nodes:
            line = _line(event)
            raise YamlTooLarge(
                f"The YAML has more than {max_nodes:,} values once its aliases are expanded "
                f"(line {line}); the limit keeps a small file from expanding without bound.",
                line,
            )


class JsonLikeLoader(_BaseLoader):
    """Safe loading of JSON-like data: timestamps stay text; integers longer than Python can print,
    binary, sets and ordered maps are refused (none of them is JSON). Call through `yaml_load`."""

    def construct_bounded_int(self, node: Any) -> Any:
        digits = str(node.value).replace("_", "").lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number with more than {MAX_INT_DIGITS:,} digits", node.start_mark
            )
        return self.construct_yaml_int(node)

    def construct_refused(self, node: Any) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"the YAML type {node.tag} is not supported", node.start_mark
        )


JsonLikeLoader.add_constructor("tag:yaml.org,2002:int", JsonLikeLoader.construct_bounded_int)
JsonLikeLoader.add_constructor("tag:yaml.org,2002:timestamp", JsonLikeLoader.construct_scalar)
for _tag in ("binary", "set", "omap", "pairs"):
    JsonLikeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", JsonLikeLoader.construct_refused)


class Yaml12Loader(JsonLikeLoader):
    """JSON-like loading under YAML 1.2's core schema, which promptfoo (js-yaml) follows: only
    true/false are booleans and only ~/null/empty is null, so `Yes`, `on` and `No` stay text; there
    are no sexagesimal numbers or timestamps, so `18:00` and `2024-01-02` stay text; integers are
    decimal, 0o octal or 0x hex. One deliberate difference: a decimal with a leading zero (`0777`,
    a zip code, an id) stays text, where js-yaml would read 777: evaluation data must not lose digits.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_core_int(self, node: Any) -> Any:
        self.construct_bounded_int(node)  # the digit bound
        value = str(self.construct_scalar(node))
        return int(value, 0) if value.lstrip("+-")[:2] in ("0o", "0x") else int(value)


_CORE_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        # A point or an exponent is needed: plain digits are the int resolver's (or text, `0777`).
        r"^(?:[-+]?(?:(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),  # js-yaml reads merge keys too
]
for _tag, _pattern, _first in _CORE_RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", Yaml12Loader.construct_core_int)


def yaml_load(text: str, *, max_nodes: int, core_schema: bool = False) -> Any:
    """Load one YAML document of JSON-like data, refusing more than `max_nodes` (expanded) values.

    `core_schema` reads it as YAML 1.2 (`Yaml12Loader`, for promptfoo files), else as PyYAML's 1.1.
    Raises `YamlTooLarge` past the cap, other `yaml.YAMLError`s for invalid YAML; a nesting deep
    enough to exhaust the stack raises RecursionError, which callers report as too deep.
    """
    _count_nodes(text, max_nodes)
    loader = Yaml12Loader if core_schema else JsonLikeLoader
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass


def yaml_error_text(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """A user-facing description of a YAML error and its line (no internals)."""
    if isinstance(exc, YamlTooLarge):
        return exc.message, exc.line
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "unreadable"
    line = mark.line + 1 if mark is not None else None
    where = f" (line {line}, column {mark.column + 1})" if mark is not None else ""
    return f"This is not valid YAML{where}: {printable(str(problem))}.", line
