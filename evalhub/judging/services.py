"""Judge a study's pair in both orders and store each order's judgement (the one home for writing them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db import transaction

from annotation.models import Study, StudyRouting, Task
from annotation.rubric import rubric_text
from annotation.services import study_route
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.celery import TRANSIENT_ERRORS
from evalhub.errors import ValidationFailed
from evalhub.judging.models import Judgement, JudgePreference
from metrics.routing import judge_uncertainty

if TYPE_CHECKING:  # the judge's module loads torch; the services must not at import time
    from evalhub.accounts.models import Project
    from evalhub.judging.logprob import LogprobJudge, OrderJudgement, OutputJudgement


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


def judge_for_adapter(*, project: Project, label: str, **options: Any) -> LogprobJudge:
    """The log-probability judge of the project's catalogued adapter ``label`` (``judge@1``), on the
    adapter's base model, named by its label. ``options`` go to ``LogprobJudge`` (device, dtype, ...).
    An adapter the catalogue does not know is a ``ValidationFailed`` on the ``judge`` field."""
    from evalhub.catalog.selectors import adapter_by_label
    from evalhub.judging.logprob import LogprobJudge

    adapter = adapter_by_label(project=project, label=label)
    if adapter is None:
        raise ValidationFailed(
            f"No adapter {label!r} in this project's catalogue.", fields={"judge": ["unknown adapter"]}
        )
    return LogprobJudge(adapter.base_model.folder, adapter_dir=adapter.folder, name=adapter.label, **options)


def judge_for_spec(spec: dict[str, Any]) -> PairJudge:
    """The judge a study names (``Study.judge_spec``), loaded: a catalogue model or adapter read by its
    log-probabilities (``kind`` "local"), or one of the project's HTTP endpoints (``kind`` "endpoint")."""
    if spec.get("kind") == "endpoint":
        from evalhub.judging.endpoints import http_judge_for
        from evalhub.judging.models import JudgeEndpoint

        return http_judge_for(JudgeEndpoint.objects.get(pk=spec["endpoint"]))
    from evalhub.judging.logprob import LogprobJudge  # loads torch: only where a judge is built

    if spec.get("kind") != "local":
        raise ValidationFailed(
            f"Unknown judge kind {spec.get('kind')!r}.", fields={"judge": ["Unknown kind."]}
        )
    base = BaseModel.objects.get(pk=spec["base_model"])
    adapter = Adapter.objects.get(pk=spec["adapter"]) if spec.get("adapter") else None
    return LogprobJudge(base.folder, adapter_dir=adapter.folder if adapter is not None else None)


def judge_prediction(judgements: Sequence[Judgement]) -> tuple[float | None, float]:
    """A pair's judge prediction (probability that output A is better, the mean of its two orders) and
    its uncertainty (``metrics.routing.judge_uncertainty``). A pair without two parsed orders has no
    prediction and the largest uncertainty, 0.5: the judge told us nothing reliable about it."""
    probs = {j.order: j.prob_a for j in judgements if j.prob_a is not None}
    if set(probs) != {"ab", "ba"}:
        return None, 0.5
    f, u = judge_uncertainty([probs["ab"]], [probs["ba"]])
    return float(f[0]), float(u[0])


def study_judge(*, study_id: int, judge: PairJudge | None = None) -> dict[str, Any]:
    """Judge every pairwise task of a study in both orders, then, for uncertainty-first routing, order
    the experts' queue by the judge's uncertainty (``annotation.services.study_route``). Gold tasks are
    left alone. What happened is stored on the study (``Study.judge_state``): pairs judged, each failed
    pair with its reason, and whether the routing was applied (or why not).

    A judge that fails on one pair (the pair does not fit its context, the model errs) leaves that
    pair without a prediction: it is recorded and counts as the most uncertain; the study carries on.
    Pairs already judged by this judge and version are not judged again, so a redelivered task is cheap
    and writes nothing twice. Transient database errors propagate (the task's retry policy).
    """
    study = Study.objects.get(pk=study_id)
    if not study.judge_spec:
        return {"status": "no judge"}
    Study.objects.filter(pk=study.pk).update(judge_state={**study.judge_state, "status": "running"})
    judge = judge or judge_for_spec(study.judge_spec)
    tasks = list(
        Task.objects.filter(study=study, is_gold=False, output_b__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    failures: list[dict[str, Any]] = []
    uncertainty: dict[int, float] = {}
    unparseable = 0
    started = time.monotonic()
    for task_id in tasks:
        stored = list(
            Judgement.objects.filter(task_id=task_id, judge_name=judge.name, judge_version=judge.version)
        )
        if len(stored) < 2:
            try:
                stored = list(pair_judge(task_id=task_id, judge=judge).judgements)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # any judge failure: recorded per pair, the study goes on
                public_id = Task.objects.filter(pk=task_id).values_list("public_id", flat=True).first()
                failures.append({"task": public_id, "reason": f"{type(exc).__name__}: {exc}"[:500]})
                uncertainty[task_id] = 0.5
                continue
        prediction, uncertainty[task_id] = judge_prediction(stored)
        unparseable += prediction is None
    state: dict[str, Any] = {
        "status": "done",
        "judge": f"{judge.name}@{judge.version}",
        "judge_name": judge.name,
        "judge_version": judge.version,
        "pairs": len(tasks),
        "judged": len(tasks) - len(failures),
        "unparseable": unparseable,
        "failures": failures,
        "seconds": round(time.monotonic() - started, 2),
    }
    if study.routing == StudyRouting.UNCERTAINTY_FIRST and tasks:
        state["routing"] = study_route(study=study, uncertainty=uncertainty)
    Study.objects.filter(pk=study.pk).update(judge_state=state)
    return state


def study_judge_gave_up(*, study_id: int, error: str) -> None:
    """The judging task gave up (after its retries): the study carries on in random order, and says why."""
    Study.objects.filter(pk=study_id).update(
        judge_state={
            "status": "failed",
            "error": error[:1000],
            "routing": {"applied": False, "reason": "the judge failed"},
        }
    )
