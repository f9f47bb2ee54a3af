"""Rendering promptfoo's Nunjucks templates (prompts, assertion values) with a test's vars, bounded.

promptfoo renders `{{ var }}` templates with Nunjucks; the examples use what Jinja2 writes the same
way (variables, filters, `{% if %}`, `{% for %}`), so Jinja2's `SandboxedEnvironment` renders them:
no attribute access to internals, no unsafe calls. A template is untrusted, so its cost is bounded
too: `range()` is capped, for-loops may nest at most MAX_LOOP_DEPTH deep (nested loops over a
file's own lists are what multiply), output stops at `max_chars`, and every loop pass and macro call
counts against MAX_STEPS and a wall-clock budget (a loop with an empty body, or a macro that calls
itself twice, produces no output to stop at). Every failure is a `TemplateProblem` with a message for
the user and the template's line.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_LOOP_DEPTH = 2
MAX_RANGE = 10_000
DEFAULT_MAX_CHARS = 200_000
MAX_STEPS = 200_000  # loop passes and macro calls in one rendering
MAX_SECONDS = 2.0
# One file's renderings together (a config renders its prompts once per test): past this, reading stops.
FILE_MAX_STEPS = 2_000_000
FILE_MAX_SECONDS = 20.0
_TICK = "evalhub_step__"  # the counter's name in the template's context (no var is called that)


class TemplateProblem(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class UnknownFilter(TemplateProblem):
    """A filter the engine does not have: most often a config's own (`filters:`, in JavaScript)."""

    def __init__(self, name: str, line: int | None = None) -> None:
        super().__init__(
            f"the filter {name!r} (line {line}) is not one evalhub can render (the Nunjucks built-ins "
            "Jinja2 shares, and promptfoo's load and dump); a custom filter is JavaScript, which evalhub "
            "does not run",
            line,
        )
        self.name = name


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise TemplateProblem(f"range() of more than {MAX_RANGE:,} values (the limit)")
    return result


class _BoundedEnvironment(SandboxedEnvironment):
    """Arithmetic that could allocate without bound (`'x' * 10**9`, `9 ** 9 ** 9`) is checked first."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise TemplateProblem("a power above 64 (the limit)")
        repeated = operator == "*" and isinstance(left, str | list) and isinstance(right, int)
        if repeated and len(left) * right > DEFAULT_MAX_CHARS:
            raise TemplateProblem(f"a repetition of more than {DEFAULT_MAX_CHARS:,} characters (the limit)")
        if operator == "*" and isinstance(right, str | list) and isinstance(left, int):
            return self.call_binop(context, operator, right, left)
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedEnvironment(autoescape=False, keep_trailing_newline=True)
_ENV.globals["range"] = _bounded_range


def _load(text: Any) -> Any:
    """promptfoo's `load` filter: a var's JSON text as data (`{{ (style | load).tone }}`)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TemplateProblem(f"the load filter needs JSON text ({exc})") from exc


def _dump(value: Any) -> str:
    """Nunjucks' `dump` filter: the value as JSON text."""
    return json.dumps(value, ensure_ascii=False)


_ENV.filters["load"] = _load  # promptfoo adds it to Nunjucks
_ENV.filters["dump"] = _dump  # a Nunjucks built-in that Jinja2 calls tojson


def _loop_depth(node: nodes.Node, depth: int = 0) -> tuple[int, int | None]:
    """The deepest nesting of for-loops under `node`, and the line of the deepest loop."""
    deepest, line = depth, None
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        found, found_line = _loop_depth(child, inner)
        if found > deepest:
            deepest, line = found, found_line or getattr(child, "lineno", None)
    return deepest, line


def _js_value(value: Any) -> Any:
    """A YAML value as Nunjucks prints it: true/false, 1000 for 1000.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_template(text: Any) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


def check(source: str) -> None:
    """Refuse a template that does not parse or nests too many loops, before any rendering."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error: {exc.message} (line {exc.lineno})", exc.lineno) from exc
    for node in tree.find_all(nodes.Filter):
        # Jinja2 would only say so when compiling; promptfoo's custom filters are JavaScript.
        if node.name not in _ENV.filters:
            raise UnknownFilter(node.name, node.lineno)
    depth, line = _loop_depth(tree)
    if depth > MAX_LOOP_DEPTH:
        raise TemplateProblem(
            f"the template nests {depth} loops (line {line}); at most {MAX_LOOP_DEPTH} are allowed", line
        )


def _counted(tree: nodes.Template) -> nodes.Template:
    """The template with a call to the step counter at the start of every loop body and macro:
    loops and recursion then cost steps even when they print nothing."""
    step = nodes.Output([nodes.Call(nodes.Name(_TICK, "load"), [], [], None, None)])
    for node in tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock)):
        node.body.insert(0, step)  # type: ignore[attr-defined]  # each of these has a body
    return tree


class Steps:
    """A step counter: past `max_steps` steps or `max_seconds` it stops the rendering. One is made
    per rendering; a reader may pass its file's own (`render(..., file_steps=)`) to bound them all."""

    def __init__(self, max_steps: int, max_seconds: float, *, what: str = "the template") -> None:
        self.left = max_steps
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.what = what
        self.started = time.monotonic()
        self.spent = 0.0  # seconds inside renderings (a file's budget counts only those)

    @property
    def exhausted(self) -> bool:
        return self.left < 0 or self.spent > self.max_seconds

    def step(self, since: float) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateProblem(
                f"{self.what} loops or recurses more than {self.max_steps:,} times (the limit)"
            )
        if self.left % 1024 == 0 and self.spent + time.monotonic() - since > self.max_seconds:
            self.spent = self.max_seconds + 1
            raise TemplateProblem(f"{self.what} took more than {self.max_seconds:g} s to render (the limit)")


class _Tick:
    """What the template calls at each loop pass and macro call: one step on each counter."""

    def __init__(self, counters: list[Steps]) -> None:
        self.counters = counters
        self.since = time.monotonic()

    def __call__(self) -> str:
        for counter in self.counters:
            counter.step(self.since)
        return ""

    def close(self) -> None:
        for counter in self.counters[1:]:
            counter.spent += time.monotonic() - self.since


def render(
    source: str,
    variables: dict[str, Any],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_steps: int = MAX_STEPS,
    max_seconds: float = MAX_SECONDS,
    file_steps: Steps | None = None,
) -> str:
    """`source` rendered with `variables` (an unknown var renders empty, as in Nunjucks)."""
    check(source)
    if file_steps is not None and file_steps.exhausted:
        raise TemplateProblem(f"{file_steps.what} has used up its rendering budget")
    variables = {k: _js_value(v) for k, v in variables.items()}
    tick = _Tick([Steps(max_steps, max_seconds), *([file_steps] if file_steps is not None else [])])
    variables[_TICK] = tick
    out: list[str] = []
    size = 0
    try:
        for chunk in _ENV.from_string(_counted(_ENV.parse(source))).generate(**variables):
            size += len(chunk)
            if size > max_chars:
                raise TemplateProblem(
                    f"the template renders to more than {max_chars:,} characters (the limit)"
                )
            out.append(chunk)
    except TemplateProblem:
        raise
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc.message or exc}") from exc
    except (TypeError, ValueError, ArithmeticError, OverflowError, RecursionError) as exc:
        raise TemplateProblem(f"template error: {type(exc).__name__}: {exc}") from exc
    finally:
        tick.close()
    return "".join(out)
