"""Reads of continuous evaluation: an adapter's timeline and the delivery log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, QuerySet
from django.urls import reverse

from evalhub.accounts.models import Project
from evalhub.audit.models import AuditEvent
from evalhub.catalog.models import Adapter
from evalhub.continuous.models import Delivery, Evaluation, Recipe
from evalhub.runs.models import RunStatus

# Audit actions on the adapter and its runs that the timeline shows, with their wording.
_AUDIT_STEPS = {
    "adapter.register": "Registered",
    "adapter.approve": "Approved",
    "adapter.set_status": "Status changed",
    "run.heal": "Watchdog re-sent stalled work",
    "run.fail": "Run failed",
    "evaluation.fail": "Recipe could not run",
    "evaluation.regression": "Regression",
}


@dataclass(frozen=True)
class Step:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    url: str = ""


def adapter_timeline(*, adapter: Adapter) -> list[Step]:
    """Registered → run started/finished → scored → study opened → verdict → approved, oldest first, built
    from the records themselves and the audit trail."""
    slug = adapter.project.slug
    steps: list[Step] = []
    evaluations = list(
        Evaluation.objects.filter(adapter=adapter).select_related("run", "study", "verdict", "suite_version__suite", "baseline")
    )
    run_ids = [e.run_id for e in evaluations if e.run_id]
    events = AuditEvent.objects.filter(object_type="catalog.adapter", object_id=str(adapter.pk)) | AuditEvent.objects.filter(
        object_type="runs.run", object_id__in=[str(i) for i in run_ids], action__in=["run.heal", "run.fail"]
    ) | AuditEvent.objects.filter(
        object_type="continuous.evaluation", object_id__in=[str(e.pk) for e in evaluations],
        action__in=["evaluation.fail", "evaluation.regression"],
    )
    for event in events:
        if event.action == "adapter.set_status" and (event.after or {}).get("status") == "approved":
            continue  # shown as "Approved" by its adapter.approve event, when it came from a verdict
        title = _AUDIT_STEPS.get(event.action)
        if title is None:
            continue
        detail = event.note or ""
        if event.action == "adapter.set_status":
            detail = f"to {(event.after or {}).get('status')}"
        if event.action == "adapter.register":
            detail = f"by {event.actor_label}"
        if event.action == "adapter.approve":
            detail = f"by {event.actor_label} from verdict {(event.after or {}).get('verdict')}"
        if event.action == "evaluation.regression":
            detail = "; ".join((event.after or {}).get("alerts", []))
        steps.append(Step(at=event.at, kind=event.action.replace(".", "-"), title=title, detail=detail))
    for evaluation in evaluations:
        steps.extend(_evaluation_steps(evaluation, slug))
    return sorted(steps, key=lambda s: s.at)


def _evaluation_steps(evaluation: Evaluation, slug: str) -> list[Step]:
    steps: list[Step] = []
    where = f"{evaluation.suite_version} ({evaluation.get_trigger_display().lower()})"
    run = evaluation.run
    if run is not None:
        url = reverse("runs:detail", args=[slug, run.pk])
        against = f" against {evaluation.baseline.label}" if evaluation.baseline else ""
        if run.started_at:
            steps.append(Step(run.started_at, "run-started", "Run started", f"run {run.pk} on {where}{against}", url))
        if run.finished_at and run.status == RunStatus.COMPLETED:
            steps.append(Step(run.finished_at, "run-finished", "Run finished", f"run {run.pk}: {run.done} outputs", url))
        scored = run.scorings.aggregate(at=Max("finished_at"))["at"]
        if scored and run.status == RunStatus.COMPLETED:
            states = ", ".join(f"{s.kind} {s.status}" for s in run.scorings.all())
            steps.append(Step(scored, "scored", "Scored", states))
    if evaluation.study is not None:
        steps.append(Step(evaluation.study.created_at, "study-opened", "Study opened", evaluation.study.name))
    if evaluation.verdict is not None:
        v = evaluation.verdict
        steps.append(Step(v.frozen_at, "verdict", f"Verdict {v.decision}", v.why,
                          reverse("reports:verdict", args=[slug, v.public_id])))
    return steps


def project_evaluations(*, project: Project) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(project=project).select_related("adapter", "baseline", "suite_version__suite", "verdict", "study", "run")


def recipe_of(*, project: Project) -> Recipe | None:
    return Recipe.objects.filter(project=project).prefetch_related("suites__suite").first()


def deliveries(*, project: Project) -> QuerySet[Delivery]:
    return Delivery.objects.filter(project=project)
