"""Reads for reports: the rows a report is computed from, fetched in a handful of flat queries.

Everything returned is plain Python (ids, numbers, dicts) so `compute` never touches the ORM and a
frozen snapshot can be recomputed without the database.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.fields.json import KT

from annotation.models import Rating, Study
from annotation.rubric import DEFAULT_RUBRIC, MET_KEY, SEVERITY_KEY
from evalhub.catalog.models import Adapter
from evalhub.errors import NotFound, ValidationFailed
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.runs.models import AdapterRole, MetricScore, Output, Run, RunAdapter
from evalhub.suites.models import Case
from metrics.registry import JUDGE_CHECKS_METRIC

PREFERENCES: tuple[str | None, ...] = ("", "A", "B", "tie", "both_bad", None)
"""Preference codes of ``RatingColumns.preference`` (the labels a Rating may hold, and None)."""
SIDES = ("A", "B")


@dataclass
class CriterionColumns:
    """One criterion's scores per rating: NaN where a side has no score; ``*_int`` says the
    value was an integer (so that "3" and "3.0" stay apart, as in the rating dicts)."""

    present: np.ndarray  # bool: the rating's scores hold this criterion
    a: np.ndarray
    b: np.ndarray
    a_int: np.ndarray
    b_int: np.ndarray

    def side(self, k: int) -> np.ndarray:
        return self.a if k == 0 else self.b

    def side_int(self, k: int) -> np.ndarray:
        return self.a_int if k == 0 else self.b_int


@dataclass
class RatingColumns:
    """The ratings of a report as columns (one entry per rating, in id order): the report works
    on these with numpy, since 100k rating dicts cost seconds to build and to group.

    ``b`` is 0 for single-output tasks; ``preference`` holds codes into ``PREFERENCES``;
    ``hall_a``/``hall_b`` are -1 (no flag), 0 or 1. ``to_dicts()`` gives the rating dicts a
    frozen verdict's snapshot stores, and ``from_dicts`` reads them back.
    """

    task: np.ndarray
    rater: np.ndarray
    case: np.ndarray
    a: np.ndarray
    b: np.ndarray
    gold: np.ndarray
    preference: np.ndarray
    hall_a: np.ndarray
    hall_b: np.ndarray
    scores: dict[str, CriterionColumns]
    criteria_seen: list[str]
    """Criterion keys in order of first appearance in the ratings' scores."""
    gold_answers: dict[int, Any]
    """Row index -> the task's gold answer, where it has one."""
    time_ms: list[Any]

    def __len__(self) -> int:
        return int(self.task.size)

    def hall(self, k: int) -> np.ndarray:
        return self.hall_a if k == 0 else self.hall_b

    @classmethod
    def from_dicts(cls, ratings: Sequence[dict[str, Any]]) -> RatingColumns:
        """Columns from rating dicts (as ``to_dicts`` writes them, e.g. from a snapshot)."""
        n = len(ratings)

        def ints(key: str) -> np.ndarray:
            return np.array([r[key] or 0 for r in ratings], dtype=np.int64).reshape(n)

        pref_code = {label: code for code, label in enumerate(PREFERENCES)}
        unknown = {r["preference"] for r in ratings} - set(pref_code)
        if unknown:
            raise ValueError(f"unknown preferences {sorted(map(str, unknown))}")
        criteria: dict[str, None] = {}
        for r in ratings:
            for key in r["scores"] or {}:
                criteria.setdefault(key, None)
        scores = {}
        for criterion in criteria:
            entries = [(r["scores"] or {}).get(criterion, _ABSENT) for r in ratings]
            present = np.array([e is not _ABSENT for e in entries], dtype=bool).reshape(n)
            sides = []
            for side in SIDES:
                values = [(e or {}).get(side) if isinstance(e, dict) else None for e in entries]
                sides.append(_number_columns(values))
            scores[criterion] = CriterionColumns(present, sides[0][0], sides[1][0], sides[0][1], sides[1][1])
        hall = [
            np.array(
                [_flag_code((r["hallucination"] or {}).get(side)) for r in ratings], dtype=np.int8
            ).reshape(n)
            for side in SIDES
        ]
        return cls(
            task=ints("task"),
            rater=ints("rater"),
            case=ints("case"),
            a=ints("a"),
            b=ints("b"),
            gold=np.array([bool(r["gold"]) for r in ratings], dtype=bool).reshape(n),
            preference=np.array([pref_code[r["preference"]] for r in ratings], dtype=np.int8).reshape(n),
            hall_a=hall[0],
            hall_b=hall[1],
            scores=scores,
            criteria_seen=list(criteria),
            gold_answers={i: r["gold_answer"] for i, r in enumerate(ratings) if r["gold_answer"] is not None},
            time_ms=[r.get("time_ms") for r in ratings],
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rating dicts (what ``report_rows`` fetched, one per rating)."""
        columns = {
            "task": self.task.tolist(),
            "rater": self.rater.tolist(),
            "case": self.case.tolist(),
            "a": self.a.tolist(),
            "b": [b or None for b in self.b.tolist()],
            "gold": self.gold.tolist(),
            "preference": [PREFERENCES[c] for c in self.preference.tolist()],
        }
        score_cols = {
            c: (
                col.present.tolist(),
                [_value(v, i) for v, i in zip(col.a.tolist(), col.a_int.tolist(), strict=True)],
                [_value(v, i) for v, i in zip(col.b.tolist(), col.b_int.tolist(), strict=True)],
            )
            for c, col in self.scores.items()
        }
        hall_a, hall_b = self.hall_a.tolist(), self.hall_b.tolist()
        out = []
        for k in range(len(self)):
            scores: dict[str, dict[str, Any]] = {}
            for criterion in self.criteria_seen:
                present, va, vb = score_cols[criterion]
                if present[k]:
                    entry = scores[criterion] = {}
                    if va[k] is not None:
                        entry["A"] = va[k]
                    if vb[k] is not None:
                        entry["B"] = vb[k]
            out.append(
                {
                    "task": columns["task"][k],
                    "rater": columns["rater"][k],
                    "scores": scores,
                    "preference": columns["preference"][k],
                    "hallucination": {
                        side: {"flagged": bool(flag)}
                        for side, flag in zip(SIDES, (hall_a[k], hall_b[k]), strict=True)
                        if flag >= 0
                    },
                    "case": columns["case"][k],
                    "a": columns["a"][k],
                    "b": columns["b"][k],
                    "gold": columns["gold"][k],
                    "gold_answer": self.gold_answers.get(k),
                    "time_ms": self.time_ms[k],
                }
            )
        return out


_ABSENT = object()


def _value(value: float, is_int: bool) -> int | float | None:
    if math.isnan(value):
        return None
    return int(value) if is_int else value


def _flag_code(entry: Any) -> int:
    """-1 when there is no flag, else 0/1 (a dict's "flagged", or the entry's truth)."""
    if isinstance(entry, dict):
        return int(bool(entry.get("flagged")))
    if entry is None:
        return -1
    return int(bool(entry))


def _number_columns(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN where missing or not a number) and whether each value was an int."""
    pairs = [_number_pair(v) for v in values]
    return _pair_arrays(pairs)


def _coded(values: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """The distinct values and each value's index among them (for columns of few distinct values)."""
    distinct = list(set(values))
    index = {v: i for i, v in enumerate(distinct)}
    return distinct, np.array([index[v] for v in values], dtype=np.int64)


def _text_number_columns(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_number_columns`` for the database's JSON text values, converting each distinct text
    once (scores take a handful of values), and where a text was there at all."""
    distinct, codes = _coded(texts)
    floats, is_int = _pair_arrays([_number_pair(t) for t in distinct])
    there = np.array([t is not None for t in distinct], dtype=bool)
    return floats[codes], is_int[codes], there[codes]


def _pair_arrays(pairs: Sequence[tuple[float, bool]]) -> tuple[np.ndarray, np.ndarray]:
    n = len(pairs)
    floats = np.fromiter((p[0] for p in pairs), dtype=float, count=n)
    is_int = np.fromiter((p[1] for p in pairs), dtype=bool, count=n)
    return floats, is_int


def _number_pair(value: Any) -> tuple[float, bool]:
    number = _number(value) if isinstance(value, str) else value
    if not isinstance(number, int | float) or isinstance(number, bool):
        return math.nan, False
    return float(number), isinstance(number, int)


@dataclass
class ReportRows:
    """The raw inputs of one report."""

    cases: list[dict[str, Any]]
    adapters: list[dict[str, Any]]
    # (adapter_id, case_id) -> output id (sample 0)
    outputs: dict[tuple[int, int], int]
    output_adapter: dict[int, int]
    output_tokens: dict[int, int]
    texts: dict[int, str]
    # (adapter_id, case_id, metric) -> (value, passed)
    scores: list[tuple[int, int, str, float | None, bool | None]]
    ratings: RatingColumns
    raters: dict[int, str] = field(default_factory=dict)
    study_ids: list[int] = field(default_factory=list)
    # The judge's verdicts on the pending checks (adapter_id, case_id, passed, "judge@version"): the
    # newest judgement of each sample-0 output; kept out of `scores`, never counted as a check's.
    judge_checks: list[tuple[int, int, bool | None, str]] = field(default_factory=list)


def adapter_info(adapter: Adapter) -> dict[str, Any]:
    return {
        "id": adapter.pk,
        "label": adapter.label,
        "name": adapter.name,
        "version": adapter.version,
        "stage": adapter.stage,
        "status": adapter.status,
        "parent_id": adapter.parent_id,
        "created_at": adapter.created_at.isoformat() if adapter.created_at else None,
    }


def run_adapters_by_role(*, run: Run) -> tuple[Adapter | None, list[Adapter]]:
    """The run's baseline (if any) and its candidates, in registration order."""
    rows = RunAdapter.objects.filter(run=run).select_related("adapter").order_by("adapter__created_at")
    baseline = next((r.adapter for r in rows if r.role == AdapterRole.BASELINE), None)
    candidates = [r.adapter for r in rows if r.role != AdapterRole.BASELINE]
    return baseline, candidates


def adapter_in_run(*, run: Run, label: str) -> Adapter:
    """An adapter of the run by ``name@version`` (or bare name when unambiguous)."""
    adapters = [r.adapter for r in RunAdapter.objects.filter(run=run).select_related("adapter")]
    found = [a for a in adapters if a.label == label] or [a for a in adapters if a.name == label]
    if len(found) != 1:
        known = ", ".join(sorted(a.label for a in adapters)) or "none"
        raise ValidationFailed(f"Adapter {label!r} is not (uniquely) in run {run.pk}; the run has: {known}.")
    return found[0]


def report_rows(
    *, run: Run, adapter_ids: Iterable[int], study_ids: Iterable[int] | None = None
) -> ReportRows:
    """Cases, outputs, metric scores and ratings of a run for the given adapters."""

    ids = list(adapter_ids)
    adapters = [adapter_info(a) for a in Adapter.objects.filter(pk__in=ids).order_by("created_at", "pk")]
    decode = _JsonMemo()
    cases = [
        {
            "id": pk,
            "key": key,
            "tags": decode(tags) or [],
            "slices": decode(slices) or {},
            "origin": origin,
            "split": split,
            "category": category,
            "expected": decode(expected) or [],
        }
        for pk, key, tags, slices, origin, split, category, expected in _raw_rows(
            Case.objects.filter(version_id=run.suite_version_id)
            .order_by("position")
            .values_list("pk", "key", "tags", "slices", "origin", "split", "category", "expected")
        )
    ]
    outputs: dict[tuple[int, int], int] = {}
    output_adapter: dict[int, int] = {}
    output_tokens: dict[int, int] = {}
    # The texts come along: the rated outputs are nearly always among these, and one scan of the
    # run's outputs is cheaper than choosing the rated ones in the database.
    sample_texts: dict[int, str] = {}
    for pk, adapter_id, case_id, tokens, text in _raw_rows(
        Output.objects.filter(run=run, sample=0, adapter_id__in=ids).values_list(
            "pk", "adapter_id", "case_id", "output_tokens", "text"
        )
    ):
        outputs[(adapter_id, case_id)] = pk
        output_adapter[pk] = adapter_id
        output_tokens[pk] = tokens
        sample_texts[pk] = text
    # Through the raw cursor; SQLite returns booleans as 0/1, so "passed" is made a bool again.
    # Sorted by (adapter, case, metric), the order a snapshot stores: metric means add in this order.
    scores = sorted(
        [
            (adapter_id, case_id, metric, value, passed if passed is None else bool(passed))
            for adapter_id, case_id, metric, value, passed in _raw_rows(
                MetricScore.objects.filter(run=run, adapter_id__in=ids)
                .filter(Q(sample=0) | Q(output__isnull=True))
                .exclude(metric=JUDGE_CHECKS_METRIC)
                .values_list("adapter_id", "case_id", "metric", "value", "passed")
            )
        ],
        key=lambda s: (s[0], s[1], s[2]),
    )
    studies = Study.objects.filter(run=run)
    if study_ids is not None:
        studies = studies.filter(pk__in=list(study_ids))
    chosen = list(studies.order_by("pk").values_list("pk", flat=True))
    criteria = study_criteria(study_ids=chosen)
    # Single adversarial outputs' verdicts too (compute reports them apart from the criteria).
    verdict_keys = [key for key in (MET_KEY, SEVERITY_KEY) if key not in criteria]
    ratings = _ratings(study_ids=chosen, criteria=criteria + verdict_keys)
    # The rated outputs' texts (for the style features).
    rated_outputs = np.unique(np.concatenate([ratings.a, ratings.b[ratings.b != 0]])).tolist()
    texts = {pk: sample_texts[pk] for pk in rated_outputs if pk in sample_texts}
    others = [pk for pk in rated_outputs if pk not in sample_texts]
    if others:
        texts.update(Output.objects.filter(run=run, pk__in=others).values_list("pk", "text"))
    from django.contrib.auth import get_user_model

    rater_ids = set(np.unique(ratings.rater).tolist())
    raters = dict(get_user_model().objects.filter(pk__in=rater_ids).values_list("pk", "username"))
    return ReportRows(
        cases=cases,
        adapters=adapters,
        outputs=outputs,
        output_adapter=output_adapter,
        output_tokens=output_tokens,
        texts=texts,
        scores=scores,
        ratings=ratings,
        raters=raters,
        study_ids=chosen,
        judge_checks=_judge_checks(run=run, adapter_ids=ids),
    )


def _judge_checks(*, run: Run, adapter_ids: list[int]) -> list[tuple[int, int, bool | None, str]]:
    """The newest judge verdict of each (adapter, case) sample-0 output, with the judge's identity."""
    newest: dict[tuple[int, int], tuple[int, int, bool | None, str]] = {}
    rows = (
        MetricScore.objects.filter(run=run, adapter_id__in=adapter_ids, metric=JUDGE_CHECKS_METRIC, sample=0)
        .order_by("created_at", "pk")
        .values_list("adapter_id", "case_id", "passed", "details__judge__name", "details__judge__version")
    )
    for adapter_id, case_id, passed, name, version in rows:
        newest[(adapter_id, case_id)] = (adapter_id, case_id, passed, f"{name}@{version}")
    return sorted(newest.values(), key=lambda r: (r[0], r[1]))


def _raw_rows(query: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """A values_list query's rows through the raw cursor, skipping the ORM's per-row converters
    (JSON columns come back as text: see ``_JsonMemo``)."""
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:  # Django knows the answer without asking the database
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _JsonMemo:
    """Decodes JSON text from the raw cursor once per distinct text: 10k cases repeat a few tag
    lists, and decoding each one cost more than the query."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, bool]] = {}

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        known = self.seen.get(value)
        if known is None:
            decoded = json.loads(value)
            items = (
                decoded.values()
                if isinstance(decoded, dict)
                else decoded
                if isinstance(decoded, list)
                else ()
            )
            known = self.seen[value] = (decoded, all(map(_scalar, items)))
        # A fresh container per row, so that no two rows share one mutable list or dict.
        decoded, flat = known
        if not isinstance(decoded, list | dict):
            return decoded
        return decoded.copy() if flat else json.loads(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def study_criteria(*, study_ids: list[int]) -> list[str]:
    """Criterion keys of the studies' rubrics, in rubric order (the default rubric's when unset)."""

    keys: dict[str, None] = {}
    for rubric in Study.objects.filter(pk__in=study_ids).values_list("rubric", flat=True):
        for criterion in (rubric or DEFAULT_RUBRIC).get("criteria", []):
            keys.setdefault(criterion["key"], None)
    return list(keys)


def _number(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return value
    try:
        return int(value)
    except ValueError:
        return float(value)


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    return value in (True, 1, "1", "true")


def _ratings(*, study_ids: list[int], criteria: list[str]) -> RatingColumns:
    """Ratings as columns, with their scores and hallucination flags pulled out of the JSON by
    the database (decoding 100k JSON documents in Python costs more than the rest of the query),
    read through the raw cursor: the ORM's per-row work costs more than the query."""

    fields: dict[str, Any] = {}
    for i, criterion in enumerate(criteria):
        for side in SIDES:
            fields[f"s{i}{side}"] = KT(f"scores__{criterion}__{side}")
    for side in SIDES:
        fields[f"h{side}"] = KT(f"hallucination__{side}__flagged")
    names = [
        "task_id",
        "rater_id",
        "preference",
        "task__case_id",
        "task__output_a_id",
        "task__output_b_id",
        "task__is_gold",
        "task__gold_answer",
        "time_on_task_ms",
    ]
    query = (
        Rating.objects.filter(task__study_id__in=study_ids)
        .annotate(**fields)
        .order_by("pk")
        .values_list(*names, *fields)
    )
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:  # no studies: Django knows the answer without asking the database
        return RatingColumns.from_dicts([])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    n = len(rows)
    columns: list[tuple[Any, ...]] = (
        list(zip(*rows, strict=True)) if rows else [()] * (len(names) + len(fields))
    )

    def ints(k: int) -> np.ndarray:
        # numpy reads None as NaN in a float array; ids stay exact below 2**53.
        return np.nan_to_num(np.array(columns[k], dtype=float), nan=0.0).astype(np.int64).reshape(n)

    scores = {}
    for i, criterion in enumerate(criteria):
        a, a_int, a_there = _text_number_columns(columns[len(names) + 2 * i])
        b, b_int, b_there = _text_number_columns(columns[len(names) + 2 * i + 1])
        present = a_there | b_there
        if present.any():
            scores[criterion] = CriterionColumns(present, a, b, a_int, b_int)
    hall = []
    for k in range(2):
        distinct, codes = _coded(columns[-2 + k])
        flag = np.array([-1 if f is None else int(bool(_flag(f))) for f in distinct], dtype=np.int8)
        hall.append(flag[codes])
    distinct, codes = _coded(columns[2])
    preference = np.array([PREFERENCES.index(p) for p in distinct], dtype=np.int8)[codes]
    answers = columns[7]
    return RatingColumns(
        task=ints(0),
        rater=ints(1),
        case=ints(3),
        a=ints(4),
        b=ints(5),
        gold=np.array(columns[6], dtype=bool).reshape(n),
        preference=preference,
        hall_a=hall[0],
        hall_b=hall[1],
        scores=scores,
        criteria_seen=_first_seen(criteria, scores),
        # The raw cursor returns JSON as text (Django decodes it in the field's from_db_value).
        gold_answers={
            k: json.loads(v) if isinstance(v, str) else v for k, v in enumerate(answers) if v is not None
        },
        time_ms=list(columns[8]),
    )


def _first_seen(criteria: list[str], scores: dict[str, CriterionColumns]) -> list[str]:
    """The criteria in order of first appearance in the rows (rubric order within a row)."""
    first = {c: int(np.argmax(col.present)) for c, col in scores.items()}
    return sorted(first, key=lambda c: (first[c], criteria.index(c)))


def run_for_user(*, user: Any, run_id: int, projects: QuerySet[Any]) -> Run:
    run = (
        Run.objects.filter(pk=run_id, project__in=projects).select_related("project", "suite_version").first()
    )
    if run is None:
        raise NotFound("No such run.")
    return run


def policy_for_run(*, run: Run, name: str | None = None) -> GatePolicy | None:
    """The named policy of the run's project, else its newest one; None means the default policy."""
    policies = GatePolicy.objects.filter(project_id=run.project_id)
    if name:
        policy = policies.filter(name=name).first()
        if policy is None:
            raise ValidationFailed(f"No gate policy named {name!r} in this project.")
        return policy
    return policies.order_by("-updated_at").first()


def verdict_get(*, public_id: str, projects: QuerySet[Any]) -> Verdict:
    verdict = (
        Verdict.objects.filter(public_id=public_id, project__in=projects)
        .select_related("run", "policy", "candidate", "baseline", "frozen_by")
        .first()
    )
    if verdict is None:
        raise NotFound("No such verdict.")
    return verdict


def project_trend(*, project: Any) -> list[dict[str, Any]]:
    """Per run and adapter: mean of each automated metric, with the adapter's version, stage, date
    and parent (its lineage).

    One grouped query; the human side comes from frozen verdicts (their snapshot holds the win rate).
    """
    rows = (
        MetricScore.objects.filter(run__project=project)
        .filter(Q(sample=0) | Q(output__isnull=True))
        .values(
            "run_id",
            "run__name",
            "run__created_at",
            "adapter_id",
            "adapter__name",
            "adapter__version",
            "adapter__stage",
            "adapter__created_at",
            "adapter__parent__name",
            "adapter__parent__version",
            "metric",
        )
        .annotate(mean=Avg("value"), n=Count("pk"))
        .order_by("adapter__created_at", "run__created_at", "metric")
    )
    points = []
    for row in rows:
        points.append(
            {
                "run": row["run_id"],
                "run_name": row["run__name"],
                "run_at": row["run__created_at"].isoformat(),
                "adapter": f"{row['adapter__name']}@{row['adapter__version']}",
                "adapter_name": row["adapter__name"],
                "stage": row["adapter__stage"],
                "adapter_at": row["adapter__created_at"].isoformat(),
                "parent": f"{row['adapter__parent__name']}@{row['adapter__parent__version']}"
                if row["adapter__parent__name"] is not None
                else None,
                "metric": row["metric"],
                "mean": row["mean"],
                "n": row["n"],
            }
        )
    verdicts = (
        Verdict.objects.filter(project=project).select_related("candidate__parent").order_by("frozen_at")
    )
    for verdict in verdicts:
        win = (verdict.snapshot.get("report") or {}).get("win_rate") or {}
        rate = (win.get("ties_as_half") or {}).get("rate")
        if rate is None:
            continue
        c = verdict.candidate
        points.append(
            {
                "run": verdict.run_id,
                "run_name": "",
                "run_at": verdict.frozen_at.isoformat(),
                "adapter": c.label,
                "adapter_name": c.name,
                "stage": c.stage,
                "adapter_at": c.created_at.isoformat(),
                "parent": c.parent.label if c.parent else None,
                "metric": "human_win_rate",
                "mean": rate,
                "n": win.get("n"),
            }
        )
    return points


def rating_rows(*, run: Run, case_id: int | None = None) -> list[dict[str, Any]]:
    """Every rating of the run's studies with both sides' adapters named (report readers only)."""

    ratings = Rating.objects.filter(task__study__run=run)
    if case_id is not None:
        ratings = ratings.filter(task__case_id=case_id)
    rows = ratings.order_by("task__case__position", "pk").values(
        "id",
        "task__case__key",
        "rater__username",
        "task__output_a__adapter__name",
        "task__output_a__adapter__version",
        "task__output_b__adapter__name",
        "task__output_b__adapter__version",
        "task__output_a_id",
        "task__output_b_id",
        "preference",
        "scores",
        "hallucination",
        "time_on_task_ms",
        "task__is_gold",
        "rationale",
    )
    out = []
    for r in rows:
        b_name = r["task__output_b__adapter__name"]
        out.append(
            {
                "id": r["id"],
                "case_key": r["task__case__key"],
                "rater": r["rater__username"],
                "adapter_a": f"{r['task__output_a__adapter__name']}@{r['task__output_a__adapter__version']}",
                "adapter_b": f"{b_name}@{r['task__output_b__adapter__version']}" if b_name else "",
                "output_a": r["task__output_a_id"],
                "output_b": r["task__output_b_id"],
                "preference": r["preference"],
                "scores": r["scores"] or {},
                "hallucination": r["hallucination"] or {},
                "time_on_task_ms": r["time_on_task_ms"],
                "gold": r["task__is_gold"],
                "rationale": r["rationale"],
            }
        )
    return out


def case_detail(*, run: Run, case_id: int) -> dict[str, Any]:
    case = Case.objects.filter(pk=case_id, version_id=run.suite_version_id).first()
    if case is None:
        raise NotFound("No such case in this run.")
    outputs = list(
        Output.objects.filter(run=run, case=case, sample=0)
        .select_related("adapter")
        .order_by("adapter__created_at")
    )
    scores: dict[int, dict[str, Any]] = {}
    for adapter_id, metric, value, passed in (
        MetricScore.objects.filter(run=run, case=case)
        .exclude(metric=JUDGE_CHECKS_METRIC)
        .values_list("adapter_id", "metric", "value", "passed")
    ):
        scores.setdefault(adapter_id, {})[metric] = passed if metric == "checks" else value
    # The newest judge's results per output (judge-evaluated, shown apart from the scores).
    judged: dict[int, dict[str, Any]] = {}
    for output_id, details in (
        MetricScore.objects.filter(run=run, case=case, metric=JUDGE_CHECKS_METRIC, sample=0)
        .order_by("created_at", "pk")
        .values_list("output_id", "details")
    ):
        judged[output_id] = details
    ratings = rating_rows(run=run, case_id=case.pk)
    return {
        "case": case,
        "outputs": [
            {
                "output": o,
                "adapter": o.adapter.label,
                "scores": scores.get(o.adapter_id, {}),
                "judged": judged.get(o.pk),
                "segments": highlight_segments(o.text, output_spans(ratings, o.pk)),
            }
            for o in outputs
        ],
        "ratings": ratings,
    }


def output_spans(ratings: list[dict[str, Any]], output_id: int) -> list[tuple[int, int]]:
    """Every hallucination span raters marked on this output, as (start, end) offsets into its text."""
    spans = []
    for r in ratings:
        for side, key in (("A", "output_a"), ("B", "output_b")):
            entry = r["hallucination"].get(side)
            if r[key] == output_id and isinstance(entry, dict):
                spans += [(int(s["start"]), int(s["end"])) for s in entry.get("spans") or [] if "start" in s]
    return spans


def highlight_segments(text: str, spans: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The text cut into runs, each marked with how many raters' spans cover it (0: unmarked), so the
    case view can highlight what raters flagged without trusting any HTML."""
    bounds = sorted({0, len(text), *(min(max(p, 0), len(text)) for span in spans for p in span)})
    segments: list[dict[str, Any]] = []
    for start, end in itertools.pairwise(bounds):
        count = sum(1 for s, e in spans if s <= start and end <= e)
        if segments and segments[-1]["count"] == count:
            segments[-1]["text"] += text[start:end]
        else:
            segments.append({"text": text[start:end], "count": count})
    return segments


def snapshot_inputs_gone(*, inputs: dict[str, Any]) -> list[str]:
    """Which of a frozen snapshot's input rows are no longer in the database, by kind, count and
    id (a rating by its task and rater). Empty when every one is still there."""
    from django.contrib.auth import get_user_model

    from annotation.models import Rating, Study, Task

    ratings = {(r["task"], r["rater"]) for r in inputs["ratings"]}
    tasks = sorted({task for task, _ in ratings})
    kinds: list[tuple[str, QuerySet[Any], list[Any]]] = [
        ("adapters", Adapter.objects.all(), [a["id"] for a in inputs["adapters"]]),
        ("cases", Case.objects.all(), [c["id"] for c in inputs["cases"]]),
        ("outputs", Output.objects.all(), [row[2] for row in inputs["outputs"]]),
        ("studies", Study.objects.all(), list(inputs["study_ids"])),
        ("rated tasks", Task.objects.all(), tasks),
        ("raters", get_user_model().objects.all(), [row[0] for row in inputs["raters"]]),
    ]
    out = []
    for kind, rows, wanted in kinds:
        ids = sorted(set(wanted))
        there = {
            pk for chunk in _chunks(ids) for pk in rows.filter(pk__in=chunk).values_list("pk", flat=True)
        }
        lost = [pk for pk in ids if pk not in there]
        if lost:
            out.append(f"{len(lost)} of {len(ids)} {kind} (ids {some_of(lost)})")
    there_pairs = {
        pair
        for chunk in _chunks(tasks)
        for pair in Rating.objects.filter(task_id__in=chunk).values_list("task_id", "rater_id")
    }
    lost_pairs = sorted(ratings - there_pairs)
    if lost_pairs:
        shown = [f"task {t} by rater {r}" for t, r in lost_pairs]
        out.append(f"{len(lost_pairs)} of {len(ratings)} ratings ({some_of(shown)})")
    return out


def _chunks(ids: list[int], size: int = 5000) -> list[list[int]]:
    """Id lists short enough for one IN clause (SQLite caps the parameters of a statement)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def some_of(items: Sequence[Any], limit: int = 10) -> str:
    """The first ``limit`` items, and how many more there are."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
