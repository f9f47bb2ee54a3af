"""Writes of the rating workflow: building a study from a run, consent, submitting and skipping.

Assignment (who gets which task) lives in annotation.queue and side order in annotation.blinding;
these services call them. Each write runs in one transaction and raises evalhub.errors on refusal.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from annotation.blinding import display_text, identity_mentions, sides_assign
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Consent,
    RaterPool,
    Rating,
    Study,
    StudyKind,
    StudyRouting,
    StudyStatus,
    Task,
)
from annotation.queue import assignment_for_update, task_has_room
from annotation.rubric import rating_check, rubric_for_task, rubric_normalise
from annotation.signals import study_created
from annotation.sql import column, table
from evalhub.audit.services import audit_record
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.errors import Conflict, NotFound, ValidationFailed
from evalhub.runs.models import AdapterRole, Output, Run, RunAdapter
from evalhub.suites.models import Case

PAIRINGS = ("baseline", "all_pairs")
DEFAULT_SINGLE_OUTPUT_CATEGORIES = ("adversarial",)
GOLD_PREFERENCES = ("baseline", "candidate", "tie", "both_bad")
MAX_LEASE_SECONDS = 24 * 3600


def terms_digest(terms: str) -> str:
    return hashlib.sha256(terms.encode()).hexdigest()


def _order_key(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def cases_sample(
    cases: Sequence[Case], *, size: int | None, stratify_by_tag: bool, rng: random.Random
) -> list[Case]:
    """A seeded sample of `size` cases; stratified by each case's first tag, allocated in proportion
    to the strata with largest remainders (every stratum that can have one gets at least one case)."""
    if size is None or size >= len(cases):
        return list(cases)
    if size <= 0:
        raise ValidationFailed("sample_size must be positive.", fields={"sample_size": ["Must be > 0."]})
    if not stratify_by_tag:
        return sorted(rng.sample(list(cases), size), key=lambda c: c.position)
    strata: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        strata[str(case.tags[0]) if case.tags else ""].append(case)
    names = sorted(strata)
    exact = {name: size * len(strata[name]) / len(cases) for name in names}
    quota = {name: min(len(strata[name]), int(exact[name])) for name in names}
    if size >= len(names):
        for name in names:
            quota[name] = max(quota[name], 1)
    by_remainder = sorted(names, key=lambda n: (exact[n] - int(exact[n]), rng.random()), reverse=True)
    while sum(quota.values()) > size:
        name = max(names, key=lambda n: (quota[n] - exact[n], rng.random()))
        quota[name] -= 1
    for name in itertools.cycle(by_remainder):
        if sum(quota.values()) >= size:
            break
        if quota[name] < len(strata[name]):
            quota[name] += 1
    chosen = [case for name in names for case in rng.sample(strata[name], quota[name])]
    return sorted(chosen, key=lambda c: c.position)


def _gold_answer(spec: Mapping[str, Any], *, baseline_side: str) -> dict[str, Any]:
    candidate_side = "B" if baseline_side == "A" else "A"
    to_side = {"baseline": baseline_side, "candidate": candidate_side}
    answer: dict[str, Any] = {}
    preference = spec.get("preference")
    if preference is not None:
        if preference not in GOLD_PREFERENCES:
            raise ValidationFailed(f"A gold preference must be one of {', '.join(GOLD_PREFERENCES)}.")
        answer["preference"] = to_side.get(preference, preference)
    flags = spec.get("hallucination")
    if flags is not None:
        if not isinstance(flags, Mapping) or set(flags) - set(to_side):
            raise ValidationFailed('A gold hallucination answer is {"baseline": bool, "candidate": bool}.')
        answer["hallucination"] = {to_side[who]: bool(flag) for who, flag in flags.items()}
    if not answer:
        raise ValidationFailed("A gold task needs a known preference or hallucination answer.")
    return answer


def study_create_from_run(
    *,
    run: Run,
    name: str,
    baseline: Adapter | None = None,
    candidates: Sequence[Adapter] | None = None,
    pairing: str = "baseline",
    sample_size: int | None = None,
    stratify_by_tag: bool = False,
    single_output_categories: Iterable[str] = DEFAULT_SINGLE_OUTPUT_CATEGORIES,
    categories: Iterable[str] | None = None,
    overlap: int = 2,
    lease_seconds: int = 900,
    gold_rate: float = 0.0,
    gold_tasks: Sequence[Mapping[str, Any]] = (),
    rubric: dict[str, Any] | None = None,
    pool: RaterPool | None = None,
    instructions: str = "",
    terms: str = "",
    seed: int = 0,
    allow_case_repeats: bool = False,
    allow_missing: bool = True,
    judge_base_model: BaseModel | None = None,
    judge_adapter: Adapter | None = None,
    judge_endpoint: Any = None,
    routing: str = StudyRouting.RANDOM,
    audit_share: float = 0.2,
    actor: Any = None,
) -> Study:
    """Create a study and its tasks from a run's outputs (sample 0 of each adapter and case).

    Pairs: each candidate against the baseline (`pairing="baseline"`) or every pair among baseline
    and candidates (`"all_pairs"`). Cases whose category is in `single_output_categories` become
    single-output tasks, one per adapter, rated on the absolute rubric instead; `categories`, when
    given, keeps only the cases of those categories in the rated sample. `gold_tasks` are
    `{"case": Case or case key, "preference": "baseline"|"candidate"|"tie"|"both_bad",
    "hallucination": {"baseline": bool, "candidate": bool}}` (either answer may be left out); they
    compare the baseline with the first candidate, are shown to every rater once, at `gold_rate`, and
    their cases are left out of the rated sample. Sides and queue order come from `seed`.
    A rater gets at most one task per case unless `allow_case_repeats` (see annotation.queue).
    Outputs missing from the run (failed or not yet generated) leave their tasks out; with
    `allow_missing=False` the study is refused instead, saying how many, so the owner can wait.

    A judge (`judge_adapter`, or a bare `judge_base_model`, from the project's catalogue, or one of the
    project's HTTP `judge_endpoint`s, evalhub.judging.models.JudgeEndpoint) rates every
    pair in both orders once the study exists (evalhub.judging, through the `study_created` signal);
    with `routing="uncertainty_first"` its uncertainty then orders the experts' queue (`study_route`),
    with `audit_share` of the order drawn uniformly. Raters never see the judge's answers.
    """
    check = _study_check(
        run=run,
        baseline=baseline,
        candidates=candidates,
        pairing=pairing,
        overlap=overlap,
        lease_seconds=lease_seconds,
        gold_rate=gold_rate,
        pool=pool,
        name=name,
    )
    baseline, candidates = check["baseline"], check["candidates"]
    judge_spec = judge_spec_check(
        project=run.project,
        base_model=judge_base_model,
        adapter=judge_adapter,
        endpoint=judge_endpoint,
        routing=routing,
        audit_share=audit_share,
    )
    _rater_text_check(
        adapters=[baseline, *candidates], texts={"name": name, "instructions": instructions, "terms": terms}
    )
    clean_rubric = rubric_normalise(rubric)
    rng = random.Random(seed)
    adapters = [baseline, *candidates]
    all_cases = list(Case.objects.filter(version=run.suite_version_id).order_by("position"))
    outputs: dict[tuple[int, int], Output] = {
        (o.adapter_id, o.case_id): o
        for o in Output.objects.filter(run=run, sample=0, adapter__in=adapters).only(
            "pk", "adapter_id", "case_id"
        )
    }
    gold_specs = _gold_specs(gold_tasks, cases=all_cases, run=run, gold_rate=gold_rate)
    gold_case_ids = {case.pk for case, _ in gold_specs}
    rated = [c for c in all_cases if c.pk not in gold_case_ids]
    if categories is not None:
        wanted = set(categories)
        rated = [c for c in rated if c.category in wanted]
        if not rated:
            message = (
                f"No case of the run's suite has a category among {', '.join(sorted(wanted)) or 'none'}."
            )
            raise ValidationFailed(message, fields={"categories": [message]})
    sample = cases_sample(rated, size=sample_size, stratify_by_tag=stratify_by_tag, rng=rng)
    if pairing == "baseline":
        adapter_pairs = [(baseline, candidate) for candidate in candidates]
    else:
        adapter_pairs = list(itertools.combinations(adapters, 2))
    plan = _task_plan(
        sample,
        outputs=outputs,
        adapters=adapters,
        adapter_pairs=adapter_pairs,
        single_categories=set(single_output_categories),
    )
    gold_pairs = _gold_pairs(gold_specs, outputs=outputs, baseline=baseline, candidate=candidates[0])
    _plan_check(plan, allow_missing=allow_missing)

    with transaction.atomic():
        study = Study.objects.create(
            project=run.project,
            run=run,
            name=name,
            kind=StudyKind.PAIRWISE if plan.pairs else StudyKind.SINGLE,
            baseline=baseline,
            overlap=overlap,
            lease_seconds=lease_seconds,
            gold_rate=gold_rate,
            rubric=clean_rubric,
            instructions=instructions,
            terms=terms,
            pool=pool,
            seed=seed,
            allow_case_repeats=allow_case_repeats,
            judge_spec=judge_spec,
            routing=routing,
            audit_share=audit_share,
            judge_state={"status": "pending"} if judge_spec else {},
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        tasks = _study_tasks(study, plan=plan, gold_pairs=gold_pairs, overlap=overlap, rng=rng)
        Task.objects.bulk_create(tasks, batch_size=500)
        audit_record(
            actor=actor,
            action="study.create",
            obj=study,
            project=run.project,
            after={
                "run": run.pk,
                "baseline": baseline.label,
                "candidates": [c.label for c in candidates],
                "pairing": pairing,
                "pair_tasks": len(plan.pairs),
                "single_tasks": len(plan.singles),
                "gold_tasks": len(gold_pairs),
                "missing_outputs": plan.missing,
                "overlap": overlap,
                "seed": seed,
                "allow_case_repeats": allow_case_repeats,
                "judge": judge_spec,
                "routing": routing,
                "audit_share": audit_share,
            },
        )
        if judge_spec and plan.pairs:
            study_pk = study.pk
            transaction.on_commit(lambda: study_created.send_robust(sender=Study, study_id=study_pk))
    return study


def judge_spec_check(
    *,
    project: Any,
    base_model: BaseModel | None,
    adapter: Adapter | None,
    routing: str,
    audit_share: float,
    endpoint: Any = None,
) -> dict[str, Any]:
    """The study's judge as stored (``Study.judge_spec``), checked: a catalogue model or adapter of the
    project, read by its log-probabilities (``kind`` "local"), or one of the project's HTTP judge endpoints
    (``kind`` "endpoint"), not both. Uncertainty-first routing needs a judge and an audit share above 0
    (without an audit some pairs could never be drawn, and no estimate would be unbiased)."""
    if routing not in StudyRouting.values:
        message = f"routing must be one of {', '.join(StudyRouting.values)}."
        raise ValidationFailed(message, fields={"routing": [message]})
    if isinstance(audit_share, bool) or not isinstance(audit_share, int | float) or not 0 <= audit_share <= 1:
        raise ValidationFailed(
            "audit_share must be a number from 0 to 1.", fields={"audit_share": ["From 0 to 1."]}
        )
    if adapter is not None and adapter.project_id != project.pk:
        raise ValidationFailed(
            "The judge adapter belongs to another project.", fields={"judge_adapter": ["Wrong project."]}
        )
    if base_model is not None and base_model.project_id != project.pk:
        raise ValidationFailed(
            "The judge model belongs to another project.", fields={"judge_base_model": ["Wrong project."]}
        )
    if adapter is not None and base_model is not None and adapter.base_model_id != base_model.pk:
        message = (
            f"The judge adapter {adapter.label} is trained on another base model than {base_model.name}."
        )
        raise ValidationFailed(message, fields={"judge_adapter": [message]})
    if endpoint is not None and endpoint.project_id != project.pk:
        raise ValidationFailed(
            "The judge endpoint belongs to another project.", fields={"judge_endpoint": ["Wrong project."]}
        )
    if endpoint is not None and (adapter is not None or base_model is not None):
        message = "Choose one judge: a catalogue model or adapter, or an HTTP endpoint."
        raise ValidationFailed(message, fields={"judge_endpoint": [message]})
    spec: dict[str, Any] = {}
    if endpoint is not None:
        spec = {"kind": "endpoint", "endpoint": endpoint.pk, "name": endpoint.name}
    elif adapter is not None or base_model is not None:
        spec = {
            "kind": "local",
            "base_model": adapter.base_model_id if adapter is not None else base_model.pk,  # type: ignore[union-attr]
            "adapter": adapter.pk if adapter is not None else None,
        }
    if routing == StudyRouting.UNCERTAINTY_FIRST:
        if not spec:
            message = "Uncertainty-first routing needs a judge: choose a judge model, adapter or endpoint."
            raise ValidationFailed(message, fields={"routing": [message]})
        if audit_share <= 0:
            message = "Uncertainty-first routing needs an audit share above 0, so every pair can be drawn."
            raise ValidationFailed(message, fields={"audit_share": [message]})
    return spec


@dataclass(frozen=True, slots=True)
class _TaskPlan:
    """What a study's rated sample becomes: pairs to compare, single outputs, and outputs missing."""

    pairs: list[tuple[Case, Output, Output]]
    singles: list[tuple[Case, Output]]
    missing: int


def _gold_specs(
    gold_tasks: Sequence[Mapping[str, Any]], *, cases: Sequence[Case], run: Run, gold_rate: float
) -> list[tuple[Case, Mapping[str, Any]]]:
    """The gold tasks' cases (a Case or a case key), checked to be in the run's suite version."""
    by_key = {case.key: case for case in cases}
    specs: list[tuple[Case, Mapping[str, Any]]] = []
    for i, spec in enumerate(gold_tasks):
        case = spec.get("case")
        case = by_key.get(case) if isinstance(case, str) else case
        if not isinstance(case, Case) or case.version_id != run.suite_version_id:
            raise ValidationFailed(f"gold_tasks[{i}]: the case is not in this run's suite version.")
        specs.append((case, spec))
    if gold_rate > 0 and not specs:
        raise ValidationFailed("A gold rate needs gold tasks.", fields={"gold_tasks": ["Give at least one."]})
    return specs


def _task_plan(
    sample: Sequence[Case],
    *,
    outputs: Mapping[tuple[int, int], Output],
    adapters: Sequence[Adapter],
    adapter_pairs: Sequence[tuple[Adapter, Adapter]],
    single_categories: set[str],
) -> _TaskPlan:
    """Single-output tasks for the cases of `single_categories` (one per adapter), pairs for the rest."""
    pairs: list[tuple[Case, Output, Output]] = []
    singles: list[tuple[Case, Output]] = []
    missing = 0
    for case in sample:
        if case.category and case.category in single_categories:
            for adapter in adapters:
                output = outputs.get((adapter.pk, case.pk))
                if output is None:
                    missing += 1
                else:
                    singles.append((case, output))
            continue
        for first, second in adapter_pairs:
            a, b = outputs.get((first.pk, case.pk)), outputs.get((second.pk, case.pk))
            if a is None or b is None:
                missing += 1
            else:
                pairs.append((case, a, b))
    return _TaskPlan(pairs=pairs, singles=singles, missing=missing)


def _gold_pairs(
    gold_specs: Sequence[tuple[Case, Mapping[str, Any]]],
    *,
    outputs: Mapping[tuple[int, int], Output],
    baseline: Adapter,
    candidate: Adapter,
) -> list[tuple[Case, Output, Output, Mapping[str, Any]]]:
    gold_pairs: list[tuple[Case, Output, Output, Mapping[str, Any]]] = []
    for case, spec in gold_specs:
        a, b = outputs.get((baseline.pk, case.pk)), outputs.get((candidate.pk, case.pk))
        if a is None or b is None:
            raise ValidationFailed(f"Gold case {case.key!r} has no output from both adapters in this run.")
        gold_pairs.append((case, a, b, spec))
    return gold_pairs


def _plan_check(plan: _TaskPlan, *, allow_missing: bool) -> None:
    if not plan.pairs and not plan.singles:
        raise ValidationFailed("The run has no outputs to compare for these adapters and cases.")
    if plan.missing and not allow_missing:
        message = (
            f"{plan.missing} task{'s' if plan.missing != 1 else ''} would lack an output (failed or not"
            " generated yet): create the study without them, or wait for the run."
        )
        raise ValidationFailed(message, fields={"allow_missing": [message]})


def _study_tasks(
    study: Study,
    *,
    plan: _TaskPlan,
    gold_pairs: Sequence[tuple[Case, Output, Output, Mapping[str, Any]]],
    overlap: int,
    rng: random.Random,
) -> list[Task]:
    """The study's Task rows: sides and queue order drawn from `rng` (pairs, then gold; then keys)."""
    sided = sides_assign([(a, b) for _, a, b in plan.pairs], rng=rng)
    gold_sided = sides_assign([(a, b) for _, a, b, _ in gold_pairs], rng=rng)
    tasks = [
        Task(
            study=study,
            case=case,
            output_a=side_a,
            output_b=side_b,
            required_ratings=overlap,
            order_key=_order_key(rng),
        )
        for (case, _, _), (side_a, side_b) in zip(plan.pairs, sided, strict=True)
    ]
    tasks += [
        Task(study=study, case=case, output_a=output, required_ratings=overlap, order_key=_order_key(rng))
        for case, output in plan.singles
    ]
    for (case, base_out, _, spec), (side_a, side_b) in zip(gold_pairs, gold_sided, strict=True):
        tasks.append(
            Task(
                study=study,
                case=case,
                output_a=side_a,
                output_b=side_b,
                is_gold=True,
                gold_answer=_gold_answer(spec, baseline_side="A" if side_a.pk == base_out.pk else "B"),
                required_ratings=0,
                order_key=_order_key(rng),
            )
        )
    return tasks


def _rater_text_check(*, adapters: Sequence[Adapter], texts: Mapping[str, str]) -> None:
    """Refuse study texts that raters read (name, instructions, terms) if they name a compared adapter."""
    fields = {}
    for field, text in texts.items():
        mentions = identity_mentions(text, adapters=adapters)
        if mentions:
            fields[field] = [
                f"Names an adapter ({', '.join(mentions)}): raters read this, so it would unblind them."
            ]
    if fields:
        raise ValidationFailed(
            "The study's name, instructions or terms name a compared adapter; raters read them.",
            fields=fields,
        )


def _study_check(
    *,
    run: Run,
    baseline: Adapter | None,
    candidates: Sequence[Adapter] | None,
    pairing: str,
    overlap: int,
    lease_seconds: int,
    gold_rate: float,
    pool: RaterPool | None,
    name: str,
) -> dict[str, Any]:
    if not name.strip():
        raise ValidationFailed("A study needs a name.", fields={"name": ["Required."]})
    if pairing not in PAIRINGS:
        raise ValidationFailed(
            f"pairing must be one of {', '.join(PAIRINGS)}.", fields={"pairing": ["Invalid."]}
        )
    if overlap < 1 or overlap > 50:
        raise ValidationFailed("overlap must be between 1 and 50.", fields={"overlap": ["Out of range."]})
    if not 1 <= lease_seconds <= MAX_LEASE_SECONDS:
        raise ValidationFailed(
            "lease_seconds must be between 1 and 86400.", fields={"lease_seconds": ["Out of range."]}
        )
    if not 0 <= gold_rate <= 1:
        raise ValidationFailed("gold_rate must be between 0 and 1.", fields={"gold_rate": ["Out of range."]})
    if pool is not None and pool.project_id != run.project_id:
        raise ValidationFailed(
            "The rater pool belongs to another project.", fields={"pool": ["Wrong project."]}
        )
    if pool is not None and (size := pool.members.count()) < overlap:
        message = f"The pool {pool.name!r} has {size} rater{'s' if size != 1 else ''}; overlap {overlap} needs at least {overlap}."
        raise ValidationFailed(message, fields={"pool": [message]})
    roles = dict(RunAdapter.objects.filter(run=run).values_list("adapter_id", "role"))
    in_run = {a.pk: a for a in Adapter.objects.filter(pk__in=roles)}
    if baseline is None:
        baseline_ids = [pk for pk, role in roles.items() if role == AdapterRole.BASELINE]
        if len(baseline_ids) != 1:
            raise ValidationFailed("Name the baseline adapter: the run does not have exactly one.")
        baseline = in_run[baseline_ids[0]]
    if baseline.pk not in in_run:
        raise ValidationFailed(
            f"{baseline.label} is not an adapter of this run.", fields={"baseline": ["Not in run."]}
        )
    if candidates is None:
        candidates = [in_run[pk] for pk, role in sorted(roles.items()) if role == AdapterRole.CANDIDATE]
        candidates = [c for c in candidates if c.pk != baseline.pk]
    elif baseline.pk in {c.pk for c in candidates}:
        # Said, not silently dropped: the owner meant another adapter.
        message = f"{baseline.label} is the baseline: it cannot also be a candidate."
        raise ValidationFailed(message, fields={"candidates": [message]})
    for candidate in candidates:
        if candidate.pk not in in_run:
            raise ValidationFailed(
                f"{candidate.label} is not an adapter of this run.", fields={"candidates": ["Not in run."]}
            )
    if not candidates:
        raise ValidationFailed("A study needs at least one candidate adapter besides the baseline.")
    return {"baseline": baseline, "candidates": list(candidates)}


def study_set_status(*, study: Study, status: str, actor: Any = None) -> Study:
    if status not in StudyStatus.values:
        raise ValidationFailed(f"Unknown status {status!r}.", fields={"status": ["Invalid."]})
    with transaction.atomic():
        before = study.status
        study.status = status
        study.save(update_fields=["status"])
        audit_record(
            actor=actor, action="study.status", obj=study, before={"status": before}, after={"status": status}
        )
    return study


def consent_accept(*, study: Study, rater: Any) -> Consent:
    """Record that the rater accepted this wording of the study's terms (idempotent)."""
    digest = terms_digest(study.terms)
    with transaction.atomic():
        consent, created = Consent.objects.get_or_create(
            study=study, rater=rater, defaults={"terms_sha256": digest}
        )
        if not created and consent.terms_sha256 != digest:
            consent.terms_sha256, consent.accepted_at = digest, timezone.now()
            consent.save(update_fields=["terms_sha256", "accepted_at"])
            created = True
        if created:
            audit_record(actor=rater, action="study.consent", obj=study, after={"terms_sha256": digest})
    return consent


def _has_spans(data: Mapping[str, Any]) -> bool:
    """Whether the rating carries hallucination spans, which are checked against the side texts."""
    halluc = data.get("hallucination")
    return isinstance(halluc, Mapping) and any(
        isinstance(v, Mapping) and v.get("spans") for v in halluc.values()
    )


def _side_texts(assignment: Assignment) -> dict[str, str]:
    """Side texts as the browser counted span offsets in them (loaded with the assignment, if at all)."""
    texts: dict[str, str] = getattr(assignment, "side_texts", {})
    return {side: display_text(text) for side, text in texts.items()}


def _time_on_task(*, client_ms: Any, leased_at: datetime, now: datetime) -> tuple[int, int | None]:
    """The server's elapsed time caps what the browser reports (a tab left open, a wrong clock)."""
    server_ms = max(0, int((now - leased_at).total_seconds() * 1000))
    try:
        client = int(client_ms) if client_ms not in (None, "") else None
    except (TypeError, ValueError):
        client = None
    if client is None or client <= 0:
        return server_ms, None
    return min(client, server_ms), client


def _same_rating(rating: Rating, clean: Mapping[str, Any]) -> bool:
    return (
        rating.scores == clean["scores"]
        and rating.preference == clean["preference"]
        and rating.hallucination == clean["hallucination"]
        and rating.rationale == clean["rationale"]
    )


def rating_submit(
    *,
    public_id: str,
    rater: Any,
    data: Mapping[str, Any],
    study: Study | None = None,
    auth: Any = None,
    now: datetime | None = None,
) -> tuple[Rating, bool]:
    """Store the rater's rating of a task they hold; return (rating, created).

    The rater's access to the task's study is read again here, in the same transaction (a removed
    rater, or a token scoped to another project, gets NotFound). A retry of the same submission
    returns the stored rating with created=False, so a network retry never counts twice; a different
    second submission is refused. A late submission (lease expired) is kept if the task still has
    room, so an expert's work is not thrown away, and refused if another rater has taken the place
    meanwhile. rating_count can never pass required_ratings: the increment is conditional in the
    database, and a check constraint backs it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        assignment = assignment_for_update(
            rater=rater, public_id=public_id, study=study, auth=auth, with_texts=_has_spans(data)
        )
        if assignment is None:
            raise NotFound("No such task among those given to you. Fetch the next task to continue.")
        task, study = assignment.task, assignment.study
        sides = ("A", "B") if task.output_b_id else ("A",)
        texts = _side_texts(assignment)
        rubric = rubric_for_task(study.rubric, sides=len(sides))
        clean = rating_check(rubric=rubric, sides=sides, texts=texts, data=dict(data))
        if assignment.status == AssignmentStatus.SUBMITTED:
            stored = Rating.objects.get(assignment=assignment)
            if _same_rating(stored, clean):
                return stored, False
            raise Conflict("You have already rated this task; a submitted rating cannot be changed.")
        if assignment.status == AssignmentStatus.SKIPPED:
            raise Conflict("You skipped this task, so it cannot be rated any more.")
        if study.status != StudyStatus.OPEN:
            raise Conflict("This study is closed or paused; your rating was not stored.")
        if assignment.status == AssignmentStatus.EXPIRED or assignment.expires_at <= now:
            _late_check(task=task, rater=rater, now=now)
        elapsed, client = _time_on_task(
            client_ms=data.get("time_on_task_ms"), leased_at=assignment.leased_at, now=now
        )
        rating = _rating_store(
            assignment=assignment,
            task=task,
            rater=rater,
            clean=clean,
            elapsed=elapsed,
            client=client,
            now=now,
        )
        if rating is None:
            transaction.set_rollback(True)
            raise Conflict("This task already has all the ratings it needs; your rating was not stored.")
        audit_record(
            actor=rater,
            action="rating.submit",
            object_type="annotation.task",
            object_id=task.public_id,
            project_id=study.project_id,
            after={"study": study.pk, "preference": clean["preference"], "time_on_task_ms": elapsed},
        )
    return rating, True


def _rating_store(
    *,
    assignment: Assignment,
    task: Task,
    rater: Any,
    clean: Mapping[str, Any],
    elapsed: int,
    client: int | None,
    now: datetime,
) -> Rating | None:
    """Close the assignment, insert the rating and count it on its task, only while the task is short
    of ratings (the increment is conditional, and a check constraint backs it); None when the task is
    already full, and the caller must then roll its transaction back (nothing may stay written).
    Assumes the caller's transaction and the assignment's row lock. The count comes last, so the
    task's row, which fetching raters lock too, is held for one statement until the commit.
    Three statements of SQL from the models' names (annotation.sql): every submit runs them, and the
    ORM's compilation of them cost more than their execution."""
    t, a, r = Task, Assignment, Rating
    count = column(t, "rating_count")
    rating = Rating(
        assignment=assignment,
        task=task,
        rater=rater,
        scores=clean["scores"],
        preference=clean["preference"],
        hallucination=clean["hallucination"],
        rationale=clean["rationale"],
        time_on_task_ms=elapsed,
        client_time_ms=client,
        created_at=now,
    )
    fields = [f for f in r._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table(a)} SET {column(a, 'status')} = %s, {column(a, 'finished_at')} = %s"  # noqa: S608
            f" WHERE {column(a, 'id')} = %s",
            [AssignmentStatus.SUBMITTED, connection.ops.adapt_datetimefield_value(now), assignment.pk],
        )
        cursor.execute(
            f"INSERT INTO {table(r)} ({', '.join(column(r, f.name) for f in fields)})"  # noqa: S608
            f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {column(r, 'id')}",
            [f.get_db_prep_save(getattr(rating, f.attname), connection) for f in fields],
        )
        rating.pk = cursor.fetchone()[0]
        cursor.execute(
            f"UPDATE {table(t)} SET {count} = {count} + 1 WHERE {column(t, 'id')} = %s"  # noqa: S608
            f" AND ({column(t, 'required_ratings')} = 0 OR {count} < {column(t, 'required_ratings')})",
            [task.pk],
        )
        if cursor.rowcount != 1:
            return None
    assignment.status, assignment.finished_at = AssignmentStatus.SUBMITTED, now
    rating._state.adding, rating._state.db = False, connection.alias
    return rating


def _late_check(*, task: Task, rater: Any, now: datetime) -> None:
    """Assumes the caller's transaction; takes the task's row lock, as task_assign_next does."""
    locked = (
        Task.objects.select_for_update().filter(pk=task.pk).only("pk", "required_ratings", "is_gold").first()
    )
    if locked is None or not task_has_room(task=locked, now=now, excluding=rater.pk):
        raise Conflict(
            "Your time on this task ran out and another rater has taken it, so this rating was not stored."
        )


def task_skip(
    *, public_id: str, rater: Any, reason: str, study: Study | None = None, auth: Any = None
) -> Assignment:
    """Give a task back with a reason; the rater never gets it again (idempotent). The rater's access
    is read again here, as rating_submit does."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why you skip this task.", fields={"reason": ["Required."]})
    with transaction.atomic():
        assignment = assignment_for_update(rater=rater, public_id=public_id, study=study, auth=auth)
        if assignment is None:
            raise NotFound("No such task among those given to you.")
        if assignment.status == AssignmentStatus.SKIPPED:
            return assignment
        if assignment.status == AssignmentStatus.SUBMITTED:
            raise Conflict("You have already rated this task; it cannot be skipped.")
        assignment.status, assignment.finished_at = AssignmentStatus.SKIPPED, timezone.now()
        assignment.skip_reason = reason[:300]
        assignment.save(update_fields=["status", "finished_at", "skip_reason"])
        audit_record(
            actor=rater,
            action="task.skip",
            object_type="annotation.task",
            object_id=assignment.task.public_id,
            project_id=assignment.study.project_id,
            after={"study": assignment.study_id, "reason": assignment.skip_reason},
        )
    return assignment


def pool_create(*, project: Any, name: str, members: Iterable[Any] = (), actor: Any = None) -> RaterPool:
    with transaction.atomic():
        pool, _ = RaterPool.objects.get_or_create(project=project, name=name)
        pool.members.add(*members)
        audit_record(actor=actor, action="rater_pool.set", obj=pool, project=project, after={"name": name})
    return pool


ROUTED_KEY = "key"


def study_route(*, study: Study, uncertainty: Mapping[int, float], seed: int | None = None) -> dict[str, Any]:
    """Put a study's pairs in uncertainty-first order (metrics.routing.routing_plan): experts meet the
    pairs the judge is least sure of first, mixed with a uniform audit share (``study.audit_share``).

    ``uncertainty`` maps every non-gold pairwise task id to the judge's uncertainty on it (a pair the
    judge failed on counts as the most uncertain, 0.5). Each pair keeps one of the study's existing
    random order keys: the pairs' keys, sorted, are handed out in the plan's order, so single-output
    and gold tasks keep their places between them. Each pair stores its weight, its plan key and its
    audit draw (``Task.routing``): the report derives every pair's inclusion probability from them.

    All or nothing: once any task of the study has been handed to a rater, the order is left as it
    is (the pairs already seen were drawn uniformly, not by the plan), and the reason is returned.
    Gold tasks are never touched.
    """
    from metrics.routing import routing_plan

    with transaction.atomic():
        tasks = list(
            Task.objects.select_for_update()
            .filter(study=study, is_gold=False, output_b__isnull=False)
            .order_by("pk")
        )
        if Assignment.objects.filter(study=study).exists():
            return {
                "applied": False,
                "reason": "raters had started before the judge finished; the order stays random",
            }
        if not tasks:
            return {"applied": False, "reason": "the study has no pairwise task"}
        missing = [t.pk for t in tasks if t.pk not in uncertainty]
        if missing:
            raise ValidationFailed(f"No uncertainty given for {len(missing)} pairwise task(s) of the study.")
        plan = routing_plan(
            [float(uncertainty[t.pk]) for t in tasks],
            audit_share=study.audit_share,
            seed=study.seed if seed is None else seed,
        )
        slots = sorted(t.order_key for t in tasks)
        for rank, index in enumerate(plan.order.tolist()):
            task = tasks[index]
            task.order_key = slots[rank]
            task.routing = {
                "weight": float(plan.weights[index]),
                ROUTED_KEY: float(plan.keys[index]),
                "audit_draw": float(plan.audit_draws[index]),
                "audit_weight": float(plan.audit_weight),
            }
        Task.objects.bulk_update(tasks, ["order_key", "routing"], batch_size=500)
    return {"applied": True, "pairs": len(tasks), "audit_share": study.audit_share}
