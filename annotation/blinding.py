"""The only code that turns a Task into what a rater sees, and the only code that picks sides.

What leaves here: the task's opaque public id, the case input (and reference, if the rubric says
so), the texts of sides A and B in the order recorded at task creation, the rubric the task is rated
on, and for a single output the case's expected behaviour in words. Never an
adapter's name, id, version or folder, an output or run id, a case key, a timestamp or gold status:
views, templates and the API serialise a BlindTask and nothing else of a Task.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

from django.db import connection
from django.db.models import QuerySet

from annotation.models import Task
from annotation.rubric import expected_describe, rubric_for_task
from annotation.sql import column, table

T = TypeVar("T")


@dataclass(frozen=True)
class BlindSide:
    label: str
    text: str


@dataclass(frozen=True)
class BlindTask:
    public_id: str
    input: str
    reference: str
    sides: tuple[BlindSide, ...]
    rubric: dict[str, Any]
    expected: tuple[str, ...] = ()

    @property
    def is_pair(self) -> bool:
        return len(self.sides) == 2

    @property
    def side_labels(self) -> tuple[str, ...]:
        return tuple(side.label for side in self.sides)

    def texts(self) -> dict[str, str]:
        return {side.label: side.text for side in self.sides}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sides"] = [asdict(side) for side in self.sides]
        return data


def display_text(text: str) -> str:
    """Text as a browser holds it: HTML parsing turns CR LF and CR into LF, and hallucination span
    offsets are counted in the browser, so the server counts in the same text."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def blind_queryset() -> QuerySet[Task]:
    """Tasks with exactly the joined rows task_blind needs (one query, no lazy loads)."""
    return Task.objects.select_related("study", "case", "output_a", "output_b").only(
        "public_id",
        "study__rubric",
        "case__input",
        "case__reference",
        "case__expected",
        "output_a__text",
        "output_b__text",
    )


def _blind(
    *,
    public_id: str,
    rubric: dict[str, Any],
    text_in: str,
    reference: str,
    text_a: str,
    text_b: str | None,
    expected: Any = None,
) -> BlindTask:
    """What a rater sees, from exactly these values and nothing else of a task."""
    sides = [BlindSide(label="A", text=display_text(text_a))]
    if text_b is not None:
        sides.append(BlindSide(label="B", text=display_text(text_b)))
    rubric = rubric_for_task(rubric, sides=len(sides))
    return BlindTask(
        public_id=public_id,
        input=display_text(text_in),
        reference=display_text(reference) if rubric.get("show_reference") else "",
        sides=tuple(sides),
        rubric=rubric,
        expected=tuple(expected_describe(expected)) if len(sides) == 1 else (),
    )


def task_blind(*, task: Task) -> BlindTask:
    return _blind(
        public_id=task.public_id,
        rubric=task.study.rubric,
        text_in=task.case.input,
        reference=task.case.reference,
        text_a=task.output_a.text,
        text_b=task.output_b.text if task.output_b_id is not None and task.output_b is not None else None,
        expected=task.case.expected,
    )


def task_blind_by_id(*, task_id: int) -> BlindTask:
    """task_blind for a task id, in one statement (SQL from the models' names, see annotation.sql:
    every fetch of a new task runs it)."""
    from annotation.models import Study
    from evalhub.runs.models import Output
    from evalhub.suites.models import Case

    t, s, c, o = Task, Study, Case, Output
    sql = (
        f"SELECT t.{column(t, 'public_id')}, s.{column(s, 'rubric')}, c.{column(c, 'input')},"  # noqa: S608
        f" c.{column(c, 'reference')}, oa.{column(o, 'text')}, ob.{column(o, 'text')}, c.{column(c, 'expected')}"
        f" FROM {table(t)} t JOIN {table(s)} s ON s.{column(s, 'id')} = t.{column(t, 'study')}"
        f" JOIN {table(c)} c ON c.{column(c, 'id')} = t.{column(t, 'case')}"
        f" JOIN {table(o)} oa ON oa.{column(o, 'id')} = t.{column(t, 'output_a')}"
        f" LEFT JOIN {table(o)} ob ON ob.{column(o, 'id')} = t.{column(t, 'output_b')}"
        f" WHERE t.{column(t, 'id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id])
        row = cursor.fetchone()
    if row is None:
        raise Task.DoesNotExist(task_id)
    public_id, rubric, text_in, reference, text_a, text_b, expected = row
    # PostgreSQL's jsonb and SQLite's JSON both reach a raw cursor as text (the ORM parses it).
    rubric = json.loads(rubric) if isinstance(rubric, str | bytes) else rubric
    expected = json.loads(expected) if isinstance(expected, str | bytes) else expected
    return _blind(
        public_id=public_id,
        rubric=rubric,
        text_in=text_in,
        reference=reference,
        text_a=text_a,
        text_b=text_b,
        expected=expected,
    )


def sides_assign(pairs: Sequence[tuple[T, T]], *, rng: random.Random) -> list[tuple[T, T]]:
    """Put each pair's first element on side A in exactly half the pairs (odd counts: one extra either way).

    Balanced rather than coin flips, so no adapter sits on side A noticeably more often in a small
    study; which pairs are swapped is a seeded shuffle, so a study can be rebuilt identically.
    """
    flips = [i < len(pairs) // 2 for i in range(len(pairs))]
    if len(pairs) % 2:
        flips[-1] = rng.random() < 0.5
    rng.shuffle(flips)
    return [(b, a) if flip else (a, b) for (a, b), flip in zip(pairs, flips, strict=True)]


def _identity_tokens(adapter: Any) -> list[str]:
    """The strings that name an adapter: its name, label, folder and folder's last part, and its
    version where a rater could tell it from ordinary words and numbers (not all digits, 2+ chars)."""
    tokens = [adapter.name, f"{adapter.name}@{adapter.version}", adapter.folder]
    tokens.append(PurePosixPath(adapter.folder.rstrip("/")).name if adapter.folder else "")
    version = str(adapter.version or "")
    if len(version) >= 2 and not version.isdigit():
        tokens.append(version)
    return [token for token in tokens if token and len(token) >= 2]


def identity_mentions(text: str, *, adapters: Sequence[Any]) -> list[str]:
    """Which of these adapters' names, versions or folders the text mentions (as a whole word, any
    case): a study's name, instructions and terms reach raters, so they must name none of them."""
    found = []
    for adapter in adapters:
        for token in _identity_tokens(adapter):
            if re.search(rf"(?<![\w.@/-]){re.escape(token)}(?![\w@/-])", text, re.IGNORECASE):
                found.append(token)
    return sorted(set(found))
