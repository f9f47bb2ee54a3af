"""Judge a study's pair in both orders and store each order's judgement (the one home for writing them)."""

from __future__ import annotations

import contextlib
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
    from evalhub.judging.logprob import LogprobJudge, OrderJudgement, OutputJudgement, PairResult, PairToJudge

#: Pairs a study hands its judge at once: enough for an HTTP judge's ``concurrency`` requests in flight
#: and a local judge's full forward batches, few enough that memory stays bounded and a crash loses
#: at most this many pairs' work (each batch is stored before the next is judged).
STUDY_BATCH_PAIRS = 32


class PairJudge(Protocol):
    """What the services need of a judge (``LogprobJudge``, ``HttpJudge``): both orders of a batch of
    pairs under one rubric, returned per pair in the order given; a pair the judge refuses (it cannot
    fit the context) comes back as its ``JudgeContextError`` in its place. A judge never fails a pair
    for one order's failure: it returns that order as unparseable with ``failure`` set."""

    name: str
    version: str

    def judge_pairs(self, pairs: Sequence[PairToJudge], *, rubric: str) -> list[PairResult]: ...

    def close(self) -> None: ...


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


def _pair_to_judge(task: Task) -> PairToJudge:
    """The blinded pair as the experts see it: the task's sides A and B, no adapter names."""
    from evalhub.judging.logprob import PairToJudge  # (the judge's module: loaded only where one judges)

    assert task.output_b is not None  # (callers pick pairwise tasks)
    return PairToJudge(case=task.case.input, output_a=task.output_a.text, output_b=task.output_b.text)


def _record(task: Task, judge: PairJudge, results: Sequence[OrderJudgement]) -> PairJudged:
    rows = judgements_record(task=task, judge_name=judge.name, judge_version=judge.version, results=results)
    return PairJudged(task_id=task.pk, judgements=rows, orders_agree=orders_agree(rows))


def pair_judge(*, task_id: int, judge: PairJudge) -> PairJudged:
    """Judge one pairwise task in both orders with the study's rubric, and store both judgements.

    The judge sees the blinded pair as the experts do. Raises ``ValidationFailed`` for a single-output
    task; the judge's ``JudgeContextError`` (a pair its context cannot hold) is raised before anything
    is stored.
    """
    from evalhub.judging.logprob import pair_orders

    task = Task.objects.select_related("study", "case", "output_a", "output_b").get(pk=task_id)
    if task.output_b is None:
        raise ValidationFailed(
            "Only pairwise tasks can be judged pairwise.", fields={"task": ["single output"]}
        )
    (result,) = judge.judge_pairs([_pair_to_judge(task)], rubric=rubric_text(task.study.rubric))
    return _record(task, judge, pair_orders(result))


def _judge_batch(judge: PairJudge, pairs: Sequence[PairToJudge], rubric: str) -> list[PairResult | Exception]:
    """The judge's answer for each pair, or the error that cost a pair its answer. A judge that fails a
    whole batch (the model errs) is asked again one pair at a time, so only the failing pair is lost,
    as when pairs were judged singly. Transient database errors propagate (the task's retry policy)."""
    try:
        return list(judge.judge_pairs(pairs, rubric=rubric))
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # any judge failure: recorded per pair, the study goes on
        if len(pairs) == 1:
            return [exc]
        return [result for pair in pairs for result in _judge_batch(judge, [pair], rubric)]


@dataclass(frozen=True)
class _BatchJudged:
    """One batch of a study's pairs, judged and stored: what ``study_judge`` adds up (never the texts)."""

    uncertainty: dict[int, float]  # task id -> the judge's uncertainty about the pair
    unparseable: int  # pairs judged without a prediction (an order unparseable)
    failures: list[dict[str, Any]]  # pairs the judge failed on: the task's public id and the reason


def _study_batch_judge(*, task_ids: Sequence[int], judge: PairJudge, rubric: str) -> _BatchJudged:
    """Judge the batch's pairs that this judge and version have not judged yet, in one call, and store
    their judgements in one transaction; then read every pair's prediction from what is stored. A pair
    the judge failed gets no prediction and the largest uncertainty, 0.5, and its reason is kept."""
    stored: dict[int, list[Judgement]] = {task_id: [] for task_id in task_ids}
    for row in Judgement.objects.filter(
        task_id__in=task_ids, judge_name=judge.name, judge_version=judge.version
    ):
        stored[row.task_id].append(row)
    todo = list(
        Task.objects.filter(pk__in=[t for t in task_ids if len(stored[t]) < 2])
        .select_related("case", "output_a", "output_b")
        .order_by("pk")
    )
    results = _judge_batch(judge, [_pair_to_judge(task) for task in todo], rubric) if todo else []
    failures: dict[int, dict[str, Any]] = {}
    with transaction.atomic():
        for task, result in zip(todo, results, strict=True):
            if isinstance(result, Exception):
                reason = f"{type(result).__name__}: {result}"[:500]
                failures[task.pk] = {"task": task.public_id, "reason": reason}
            else:
                stored[task.pk] = list(_record(task, judge, result).judgements)
    uncertainty: dict[int, float] = {}
    unparseable = 0
    for task_id in task_ids:
        if task_id in failures:
            uncertainty[task_id] = 0.5
            continue
        prediction, uncertainty[task_id] = judge_prediction(stored[task_id])
        unparseable += prediction is None
    return _BatchJudged(uncertainty, unparseable, list(failures.values()))


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


def study_judge(
    *, study_id: int, judge: PairJudge | None = None, batch_pairs: int = STUDY_BATCH_PAIRS
) -> dict[str, Any]:
    """Judge every pairwise task of a study in both orders, then, for uncertainty-first routing, order
    the experts' queue by the judge's uncertainty (``annotation.services.study_route``). Gold tasks are
    left alone. What happened is stored on the study (``Study.judge_state``): pairs judged, each failed
    pair with its reason, and whether the routing was applied (or why not).

    The pairs go to the judge ``batch_pairs`` at a time (one ``judge_pairs`` call: an HTTP judge keeps
    its requests in flight, a local one fills its forward batches), and each batch's judgements are
    stored before the next is judged. A judge that fails on one pair (the pair does not fit its
    context, the model errs) leaves that pair without a prediction: it is recorded and counts as the
    most uncertain; the study carries on. Pairs already judged by this judge and version are not judged
    again, so a redelivered task is cheap and writes nothing twice. Transient database errors propagate
    (the task's retry policy).
    """
    study = Study.objects.get(pk=study_id)
    if not study.judge_spec:
        return {"status": "no judge"}
    Study.objects.filter(pk=study.pk).update(judge_state={**study.judge_state, "status": "running"})
    if judge is None:
        # A judge built here is closed here (an HTTP judge's request threads and connections).
        with contextlib.closing(judge_for_spec(study.judge_spec)) as built:
            return _study_judge_with(study, built, batch_pairs)
    return _study_judge_with(study, judge, batch_pairs)


def _study_judge_with(study: Study, judge: PairJudge, batch_pairs: int) -> dict[str, Any]:
    rubric = rubric_text(study.rubric)
    tasks = list(
        Task.objects.filter(study=study, is_gold=False, output_b__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    failures: list[dict[str, Any]] = []
    uncertainty: dict[int, float] = {}
    unparseable = 0
    started = time.monotonic()
    size = max(1, batch_pairs)
    for start in range(0, len(tasks), size):
        batch = _study_batch_judge(task_ids=tasks[start : start + size], judge=judge, rubric=rubric)
        failures += batch.failures
        uncertainty |= batch.uncertainty
        unparseable += batch.unparseable
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
