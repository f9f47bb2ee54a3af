"""Evaluation on registration: the project's recipe, checked when saved, started when an adapter version is
registered, and advanced when its run is scored (open a study, or freeze a verdict when the policy needs no
raters). Approval of a GO verdict's candidate lives here too.

Every step is idempotent: an Evaluation is unique on (adapter, suite version, trigger), and advancing locks
the row and checks its state first, so a signal or a hook delivered twice does nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from annotation.models import Study, StudyStatus
from annotation.selectors import study_progress
from annotation.services import study_create_from_run
from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.catalog.models import Adapter, AdapterStatus
from evalhub.catalog.selectors import adapter_by_label, adapter_lineage
from evalhub.catalog.services import adapter_set_status
from evalhub.continuous.models import (
    BaselineRule,
    Evaluation,
    EvaluationState,
    Event,
    Recipe,
    RecipeSuite,
    Trigger,
)
from evalhub.errors import Conflict, Forbidden, ValidationFailed
from evalhub.generation import available_backends
from evalhub.permissions import APPROVE_ROLES, projects_for
from evalhub.reports import gates
from evalhub.reports.models import Decision, GatePolicy, Verdict
from evalhub.reports.services import default_policy_for, verdict_freeze
from evalhub.runs.services import check_generation_config, run_create, run_start
from evalhub.suites.models import Suite, SuiteVersion

log = logging.getLogger(__name__)

# ---- the recipe: check, then save ---------------------------------------------------------------


@dataclass(frozen=True)
class SuiteChoice:
    suite: Suite
    version: int | None  # None: the newest version when the recipe runs


def parse_suite_lines(text: str) -> list[str]:
    """The suites field of the form: one `name` (latest) or `name@N` a line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_suites(*, project: Project, labels: list[str]) -> list[SuiteChoice]:
    if not labels:
        raise ValidationFailed("A recipe needs at least one suite.", fields={"suites": ["Name one or more suites."]})
    choices: list[SuiteChoice] = []
    for label in labels:
        name, _, version_text = label.partition("@")
        suite = Suite.objects.filter(project=project, name=name.strip()).first()
        if suite is None:
            raise ValidationFailed(
                f"No suite named {name.strip()!r} in {project.name}.", fields={"suites": [f"{label}: unknown suite."]}
            )
        version: int | None = None
        if version_text.strip() and version_text.strip() != "latest":
            try:
                version = int(version_text)
            except ValueError as exc:
                raise ValidationFailed(
                    f"{label}: the version is a number or 'latest'.", fields={"suites": [f"{label}: bad version."]}
                ) from exc
            if not SuiteVersion.objects.filter(suite=suite, number=version).exists():
                raise ValidationFailed(
                    f"Suite {suite.name} has no version {version}.", fields={"suites": [f"{label}: unknown version."]}
                )
        elif not SuiteVersion.objects.filter(suite=suite).exists():
            raise ValidationFailed(
                f"Suite {suite.name} has no version yet.", fields={"suites": [f"{label}: no version."]}
            )
        if any(c.suite.pk == suite.pk for c in choices):
            raise ValidationFailed(f"Suite {suite.name} is named twice.", fields={"suites": [f"{label}: twice."]})
        choices.append(SuiteChoice(suite=suite, version=version))
    return choices


def policy_needs_raters(policy: GatePolicy | None, *, project: Project) -> bool:
    parsed = policy.parsed if policy is not None else gates.default_policy()
    return any(gates.is_human_metric(g["metric"]) for g in parsed["gates"])


def check_recipe(
    *,
    project: Project,
    suites: list[str],
    baseline_rule: str,
    baseline: str = "",
    backend: str = "hf",
    generation_config: dict[str, Any] | None = None,
    samples_per_case: int = 1,
    open_study: bool = False,
    study_template: Study | None = None,
    study_sample_size: int | None = None,
    gate_policy: GatePolicy | None = None,
) -> dict[str, Any]:
    """Refuse a recipe that could not run, naming the field: a missing suite or version, an unknown
    baseline, a bad generation setting, or a policy whose gates need ratings without a study."""
    choices = check_suites(project=project, labels=suites)
    if baseline_rule not in BaselineRule.values:
        raise ValidationFailed(f"Unknown baseline rule {baseline_rule!r}.", fields={"baseline_rule": ["Unknown."]})
    baseline_adapter: Adapter | None = None
    if baseline_rule == BaselineRule.NAMED:
        if not baseline.strip():
            raise ValidationFailed("Name the baseline adapter (name@version).", fields={"baseline": ["Required."]})
        baseline_adapter = adapter_by_label(project=project, label=baseline)
        if baseline_adapter is None:
            raise ValidationFailed(
                f"No adapter {baseline.strip()!r} in {project.name}.", fields={"baseline": ["Unknown adapter."]}
            )
    if backend not in available_backends():
        raise ValidationFailed(f"Unknown backend {backend!r}.", fields={"backend": ["Unknown backend."]})
    if samples_per_case < 1:
        raise ValidationFailed("samples_per_case must be at least 1.", fields={"samples_per_case": [">= 1"]})
    config = check_generation_config(generation_config, samples=samples_per_case)
    if study_template is not None and study_template.project_id != project.pk:
        raise ValidationFailed("The study template belongs to another project.", fields={"study_template": ["Not here."]})
    if gate_policy is not None and gate_policy.project_id != project.pk:
        raise ValidationFailed("The gate policy belongs to another project.", fields={"gate_policy": ["Not here."]})
    if not open_study and policy_needs_raters(gate_policy, project=project):
        raise ValidationFailed(
            "The gate policy has gates on human ratings: open a study, or choose a policy of automatic gates only.",
            fields={"open_study": ["The policy needs ratings."]},
        )
    return {
        "suites": choices,
        "baseline_adapter": baseline_adapter,
        "generation_config": {k: v for k, v in config.to_dict().items() if k != "samples"},
    }


def recipe_save(*, project: Project, actor: Any = None, enabled: bool = True, **values: Any) -> Recipe:
    """Check the recipe (`check_recipe`'s arguments), then create or replace the project's. Audited."""
    checked = check_recipe(project=project, **values)
    with transaction.atomic():
        recipe, created = Recipe.objects.select_for_update().get_or_create(project=project)
        before = None if created else recipe_describe(recipe)
        recipe.enabled = enabled
        recipe.backend = values.get("backend", "hf")
        recipe.generation_config = checked["generation_config"]
        recipe.samples_per_case = values.get("samples_per_case", 1)
        recipe.baseline_rule = values["baseline_rule"]
        recipe.baseline_adapter = checked["baseline_adapter"]
        recipe.open_study = values.get("open_study", False)
        recipe.study_template = values.get("study_template")
        recipe.study_sample_size = values.get("study_sample_size")
        recipe.gate_policy = values.get("gate_policy")
        recipe.updated_by = actor if getattr(actor, "is_authenticated", False) else None
        recipe.save()
        recipe.suites.all().delete()
        RecipeSuite.objects.bulk_create(
            RecipeSuite(recipe=recipe, suite=c.suite, version=c.version) for c in checked["suites"]
        )
        audit_record(actor=actor, action="recipe.save", obj=recipe, before=before, after=recipe_describe(recipe))
    return recipe


def recipe_describe(recipe: Recipe) -> dict[str, Any]:
    return {
        "enabled": recipe.enabled,
        "suites": [s.label for s in recipe.suites.select_related("suite")],
        "backend": recipe.backend,
        "generation_config": recipe.generation_config,
        "samples_per_case": recipe.samples_per_case,
        "baseline_rule": recipe.baseline_rule,
        "baseline": recipe.baseline_adapter.label if recipe.baseline_adapter else None,
        "open_study": recipe.open_study,
        "study_template": recipe.study_template.name if recipe.study_template else None,
        "study_sample_size": recipe.study_sample_size,
        "gate_policy": recipe.gate_policy.name if recipe.gate_policy else None,
    }


# ---- start on registration ----------------------------------------------------------------------


def adapter_last_approved_in_lineage(*, adapter: Adapter) -> Adapter | None:
    """The newest approved adapter among this one's ancestors and earlier versions of its name."""
    ancestors = [a.pk for a in adapter_lineage(adapter=adapter) if a.pk != adapter.pk]
    earlier = Q(name=adapter.name, created_at__lt=adapter.created_at)
    return (
        Adapter.objects.filter(project_id=adapter.project_id, status=AdapterStatus.APPROVED)
        .filter(Q(pk__in=ancestors) | earlier)
        .exclude(pk=adapter.pk)
        .order_by("-created_at")
        .first()
    )


def recipe_baseline(*, recipe: Recipe, adapter: Adapter) -> Adapter:
    """The baseline the recipe's rule gives this adapter; ValidationFailed saying why when there is none."""
    if recipe.baseline_rule == BaselineRule.NAMED:
        baseline = recipe.baseline_adapter
    elif recipe.baseline_rule == BaselineRule.PARENT:
        baseline = adapter.parent
    else:
        baseline = adapter_last_approved_in_lineage(adapter=adapter)
    if baseline is None:
        raise ValidationFailed(
            f"{adapter.label} has no baseline under the rule '{recipe.get_baseline_rule_display()}'."
        )
    if baseline.pk == adapter.pk:
        raise ValidationFailed(f"{adapter.label} is the recipe's named baseline itself.")
    return baseline


def _suite_version(choice: RecipeSuite) -> SuiteVersion:
    versions = SuiteVersion.objects.filter(suite=choice.suite)
    if choice.version is not None:
        versions = versions.filter(number=choice.version)
    version = versions.order_by("-number").first()
    if version is None:
        raise ValidationFailed(f"Suite {choice.suite.name} has no version {choice.version or ''}.".strip())
    return version


def recipe_start(*, adapter_id: int) -> list[Evaluation]:
    """Start the project's recipe for a newly registered adapter: one run per suite, baseline included.

    Does nothing when the project has no enabled recipe, or when this adapter's evaluations exist already
    (a redelivered signal). A recipe that cannot run for this adapter (no parent, say) is recorded as a
    failed evaluation, visible on the timeline, and notified.
    """
    adapter = Adapter.objects.select_related("project", "parent", "base_model").get(pk=adapter_id)
    recipe = Recipe.objects.filter(project=adapter.project, enabled=True).first()
    if recipe is None:
        return []
    started: list[Evaluation] = []
    for choice in recipe.suites.select_related("suite"):
        evaluation = _evaluation_start(recipe=recipe, adapter=adapter, choice=choice)
        if evaluation is not None:
            started.append(evaluation)
    return started


def _evaluation_start(*, recipe: Recipe, adapter: Adapter, choice: RecipeSuite) -> Evaluation | None:
    from evalhub.continuous.notifications import notify

    version = _suite_version(choice)
    try:
        with transaction.atomic():
            evaluation = Evaluation.objects.create(
                project=adapter.project, adapter=adapter, suite_version=version, trigger=Trigger.REGISTRATION,
                open_study=recipe.open_study,
            )
    except IntegrityError:
        return None  # started already
    try:
        with transaction.atomic():
            baseline = recipe_baseline(recipe=recipe, adapter=adapter)
            run = run_create(
                project=adapter.project,
                suite_version=version,
                base_model=adapter.base_model,
                adapters=[adapter],
                baseline=baseline,
                backend=recipe.backend,
                generation_config=recipe.generation_config,
                samples_per_case=recipe.samples_per_case,
                name=f"recipe · {adapter.label} vs {baseline.label} · {version}",
            )
            Evaluation.objects.filter(pk=evaluation.pk).update(baseline=baseline, run=run)
            audit_record(
                actor=None, action="evaluation.start", obj=evaluation,
                after={"run": run.pk, "baseline": baseline.label, "suite_version": str(version)},
            )
        run_start(run=run)
    except ValidationFailed as exc:
        _evaluation_fail(evaluation.pk, str(exc))
        notify(project=adapter.project, event=Event.RUN_FAILED, subject=f"Recipe could not start for {adapter.label}",
               data={"adapter": adapter.label, "reason": str(exc)})
    evaluation.refresh_from_db()
    return evaluation


def _evaluation_fail(evaluation_id: int, error: str) -> None:
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update(of=("self",)).get(pk=evaluation_id)
        evaluation.state = EvaluationState.FAILED
        evaluation.error = error[:5000]
        evaluation.save(update_fields=["state", "error", "updated_at"])
        audit_record(actor=None, action="evaluation.fail", obj=evaluation, note=evaluation.error)


# ---- advance when scored ------------------------------------------------------------------------


def evaluation_scored(*, run_id: int) -> None:
    """The scoring-finished hook: open the study or freeze the verdict of the run's evaluation (if any);
    a scheduled evaluation is compared with the adapter's last run instead (regression alerts)."""
    from evalhub.continuous import schedules

    evaluation = Evaluation.objects.filter(run_id=run_id, state=EvaluationState.RUNNING).first()
    if evaluation is None:
        return
    if evaluation.trigger == Trigger.SCHEDULE:
        schedules.evaluation_compare(evaluation_id=evaluation.pk)
    elif evaluation.open_study:
        evaluation_open_study(evaluation_id=evaluation.pk)
    else:
        evaluation_freeze(evaluation_id=evaluation.pk)


def _recipe_of(evaluation: Evaluation) -> Recipe | None:
    return Recipe.objects.filter(project_id=evaluation.project_id).first()


def evaluation_open_study(*, evaluation_id: int) -> Study | None:
    """Open the rating study of a scored evaluation through annotation's one study-creation service."""
    from evalhub.continuous.notifications import notify

    with transaction.atomic():
        evaluation = (
            Evaluation.objects.select_for_update(of=("self",))
            .select_related("run", "adapter", "baseline", "project")
            .get(pk=evaluation_id)
        )
        if evaluation.state != EvaluationState.RUNNING or evaluation.run is None:
            return None
        recipe = _recipe_of(evaluation)
        template = recipe.study_template if recipe else None
        try:
            study = study_create_from_run(
                run=evaluation.run,
                # Raters read the name: it must not say which adapters are compared (blinding).
                name=f"Recipe study {evaluation.pk} · {evaluation.run.suite_version}",
                baseline=evaluation.baseline,
                candidates=[evaluation.adapter],
                sample_size=recipe.study_sample_size if recipe else None,
                rubric=template.rubric if template else None,
                instructions=template.instructions if template else "",
                terms=template.terms if template else "",
                overlap=template.overlap if template else 2,
                pool=template.pool if template else None,
            )
        except ValidationFailed as exc:
            evaluation.state, evaluation.error = EvaluationState.FAILED, str(exc)
            evaluation.save(update_fields=["state", "error", "updated_at"])
            study = None
        else:
            evaluation.study, evaluation.state = study, EvaluationState.STUDY_OPEN
            evaluation.save(update_fields=["study", "state", "updated_at"])
    if study is None:
        notify(project=evaluation.project, event=Event.RUN_FAILED,
               subject=f"Recipe could not open a study for {evaluation.adapter.label}",
               data={"adapter": evaluation.adapter.label, "run": evaluation.run_id, "reason": evaluation.error})
        return None
    notify(
        project=evaluation.project, event=Event.STUDY_NEEDS_RATERS,
        subject=f"Study {study.name} needs raters",
        data={"study": study.public_id, "name": study.name, "adapter": evaluation.adapter.label,
              "run": evaluation.run_id},
    )
    return study


def evaluation_freeze(*, evaluation_id: int) -> Verdict | None:
    """Freeze the verdict of a scored evaluation (or of its finished study) under the recipe's policy."""
    from evalhub.continuous.notifications import notify

    with transaction.atomic():
        evaluation = (
            Evaluation.objects.select_for_update(of=("self",))
            .select_related("run", "adapter", "baseline", "project", "study")
            .get(pk=evaluation_id)
        )
        if evaluation.state not in (EvaluationState.RUNNING, EvaluationState.STUDY_OPEN) or evaluation.run is None:
            return None
        recipe = _recipe_of(evaluation)
        policy = (recipe.gate_policy if recipe else None) or default_policy_for(project=evaluation.project)
        verdict = verdict_freeze(
            run=evaluation.run, candidate=evaluation.adapter, baseline=evaluation.baseline, policy=policy,
            study=evaluation.study,
        )
        evaluation.verdict, evaluation.state = verdict, EvaluationState.VERDICT
        evaluation.save(update_fields=["verdict", "state", "updated_at"])
    notify(
        project=evaluation.project, event=Event.VERDICT_READY,
        subject=f"Verdict on {evaluation.adapter.label}: {verdict.decision}",
        data={"verdict": verdict.public_id, "decision": verdict.decision, "why": verdict.why,
              "adapter": evaluation.adapter.label, "baseline": evaluation.baseline.label if evaluation.baseline else None,
              "run": evaluation.run_id},
    )
    from evalhub.continuous.schedules import verdict_compare

    verdict_compare(evaluation_id=evaluation.pk)
    return verdict


def studies_finish() -> int:
    """Freeze the verdicts of recipe studies whose every task has its ratings, or that were closed (beat).
    A paused study waits."""
    done = 0
    for evaluation in Evaluation.objects.filter(state=EvaluationState.STUDY_OPEN).select_related("study"):
        study = evaluation.study
        if study is None:
            continue
        progress = study_progress(study=study)
        if study.status == StudyStatus.CLOSED or (progress.tasks and progress.complete >= progress.tasks):
            try:
                if evaluation_freeze(evaluation_id=evaluation.pk) is not None:
                    done += 1
            except Exception:
                log.exception("could not freeze the verdict of evaluation %s", evaluation.pk)
    return done


# ---- approval -----------------------------------------------------------------------------------


def check_can_approve(*, user: Any, verdict: Verdict, auth: Any = None) -> None:
    if not projects_for(user=user, auth=auth, roles=APPROVE_ROLES).filter(pk=verdict.project_id).exists():
        raise Forbidden("Only an ML lead or an admin of the project approves an adapter.")
    if verdict.decision != Decision.GO:
        raise Conflict(
            f"The verdict is {verdict.decision}: only a GO verdict approves its candidate.",
            fields={"verdict": ["Not GO."]},
        )


def adapter_approve(*, verdict: Verdict, actor: Any, auth: Any = None) -> Adapter:
    """Set the verdict's candidate approved: a lead's decision from a GO verdict, audited (NO-GO refused)."""
    check_can_approve(user=actor, verdict=verdict, auth=auth)
    adapter = verdict.candidate
    if adapter.status == AdapterStatus.APPROVED:
        raise Conflict(f"{adapter.label} is approved already.")
    with transaction.atomic():
        adapter_set_status(
            adapter=adapter, status=AdapterStatus.APPROVED, actor=actor, note=f"from GO verdict {verdict.public_id}"
        )
        audit_record(
            actor=actor, action="adapter.approve", obj=adapter,
            after={"verdict": verdict.public_id, "decision": verdict.decision}, note=f"verdict {verdict.public_id}",
        )
    return adapter
