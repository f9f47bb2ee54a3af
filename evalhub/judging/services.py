"""Judge a study's pair in both orders and store each order's judgement (the one home for writing them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db import transaction

from annotation.models import Task
from annotation.rubric import rubric_default, rubric_for_task
from evalhub.errors import ValidationFailed
from evalhub.judging.models import Judgement, JudgePreference

if TYPE_CHECKING:  # the judge's module loads torch; the services must not at import time
    from evalhub.judging.logprob import OrderJudgement, OutputJudgement


class PairJudge(Protocol):
    """What the services need of a judge (``LogprobJudge``, ``HttpJudge``). A judge never raises for one
    order's failure: it returns that order as unparseable with ``failure`` set, so a study carries on."""

    name: str
    version: str

    def judge_pair(
        self, *, rubric: str, case: str, output_a: str, output_b: str
    ) -> tuple[OrderJudgement, ...]: ...


class OutputJudge(Protocol):
    """What a single-output judge offers (the log-probability judge, the HTTP one): one output judged
    against a rubric, passes or fails, ``passed`` None when its answer was unparseable."""

    name: str
    version: str

    def judge_output(self, *, rubric: str, case: str, output: str) -> OutputJudgement: ...


@dataclass(frozen=True)
class PairJudged:
    task_id: int
    judgements: tuple[Judgement, ...]
    orders_agree: bool | None  # None when an order was unparseable


def rubric_text(rubric: dict[str, Any] | None) -> str:
    """The study's pairwise rubric as the judge reads it: one line per criterion, with its help text."""
    criteria = rubric_for_task(rubric or rubric_default(), sides=2).get("criteria", [])
    return "\n".join(f"- {c.get('label') or c['key']}: {c.get('help', '')}".rstrip(": ") for c in criteria)


def judgements_record(
    *, task: Task, judge_name: str, judge_version: str, results: Sequence[OrderJudgement]
) -> tuple[Judgement, ...]:
    """Store each order's judgement once: a judgement already stored for the same task, judge, version
    and order is kept as it was (so a retried task writes nothing twice), except one that failed (the
    endpoint timed out or refused): a later try's answer replaces it."""
    rows = []
    with transaction.atomic():
        for r in results:
            values = {
                "prompt": r.prompt,
                "raw_output": r.raw_output,
                "preference": r.preference,
                "prob_a": r.prob_a,
                "scores": r.scores,
                "latency_ms": r.latency_ms,
                "failure": r.failure,
            }
            row, created = Judgement.objects.select_for_update().get_or_create(
                task=task, judge_name=judge_name, judge_version=judge_version, order=r.order, defaults=values
            )
            if not created and row.failure:
                for key, value in values.items():
                    setattr(row, key, value)
                row.save(update_fields=[*values])
            rows.append(row)
    return tuple(rows)


def orders_agree(judgements: Sequence[Judgement]) -> bool | None:
    prefs = [j.preference for j in judgements]
    if not prefs or JudgePreference.UNPARSEABLE in prefs:
        return None
    return len(set(prefs)) == 1


def pair_judge(*, task_id: int, judge: PairJudge) -> PairJudged:
    """Judge one pairwise task in both orders with the study's rubric, and store both judgements.

    The judge sees the blinded pair as the experts do (task sides A and B, no adapter names). Raises
    ``ValidationFailed`` for a single-output task; the judge's own ``JudgeContextError`` (a pair its
    context cannot hold) propagates before anything is stored.
    """
    task = Task.objects.select_related("study", "case", "output_a", "output_b").get(pk=task_id)
    if task.output_b is None:
        raise ValidationFailed(
            "Only pairwise tasks can be judged pairwise.", fields={"task": ["single output"]}
        )
    results = judge.judge_pair(
        rubric=rubric_text(task.study.rubric),
        case=task.case.input,
        output_a=task.output_a.text,
        output_b=task.output_b.text,
    )
    rows = judgements_record(task=task, judge_name=judge.name, judge_version=judge.version, results=results)
    return PairJudged(task_id=task.pk, judgements=rows, orders_agree=orders_agree(rows))
