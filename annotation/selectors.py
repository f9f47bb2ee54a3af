"""Reads of the rating workflow: who may rate what, progress, and the study owner's quality figures."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    Consent,
    RaterPool,
    Rating,
    Study,
    StudyStatus,
    Task,
)
from annotation.rubric import gold_expected
from annotation.sql import column, columns, table
from evalhub.accounts.models import ApiToken, Membership, Role
from evalhub.errors import Forbidden, NotFound
from evalhub.permissions import READ_ROLES, WRITE_ROLES, projects_for


def access_condition(*, study: str, rater: Any, auth: Any = None) -> tuple[str, list[Any]]:
    """The rater access rule as an SQL condition on the study row `study` (a table or alias), with its
    parameters: the user is a rater of the study's project now, and of its pool if it has one, and an
    API token is scoped to that project. Its one home: every rater request reads it (listing, fetching,
    consenting, submitting and skipping alike), so a removed rater or an out-of-scope token is refused
    at once. Site admins are not raters by virtue of their powers: rating needs a rater membership."""
    pooled = RaterPool.members.through
    sql = (
        f"EXISTS (SELECT 1 FROM {table(Membership)} m"  # noqa: S608  (names from the models, values as %s)
        f" WHERE m.{column(Membership, 'project')} = {study}.{column(Study, 'project')}"
        f" AND m.{column(Membership, 'user')} = %s AND m.{column(Membership, 'role')} = %s)"
        f" AND ({study}.{column(Study, 'pool')} IS NULL OR EXISTS (SELECT 1 FROM {table(pooled)} p"
        f" WHERE p.{column(pooled, 'raterpool')} = {study}.{column(Study, 'pool')}"
        f" AND p.{column(pooled, 'user')} = %s))"
    )
    params: list[Any] = [rater.pk, Role.RATER, rater.pk]
    if isinstance(auth, ApiToken):
        sql += f" AND {study}.{column(Study, 'project')} = %s"
        params.append(auth.project_id)
    return sql, params


def rater_studies(*, rater: Any, auth: Any = None) -> QuerySet[Study]:
    """Open studies the user may rate (access_condition)."""
    if not rater.is_authenticated:
        return Study.objects.none()
    condition, params = access_condition(study=table(Study), rater=rater, auth=auth)
    return (
        Study.objects.filter(status=StudyStatus.OPEN)
        .extra(where=[condition], params=params)  # noqa: S610  (names from the models, values as parameters)
        .order_by("-created_at")
    )


def study_for_rater(*, public_id: str, rater: Any, auth: Any = None) -> Study:
    """The open study with this public id, if the user may rate it (access_condition), with the hash of
    the terms they accepted (`accepted_terms_sha256`), in one statement. NotFound otherwise, so a
    study's existence is not revealed to someone outside it."""
    study = None
    if rater.is_authenticated and public_id:
        condition, access = access_condition(study="s", rater=rater, auth=auth)
        sql = (
            f"SELECT {columns(Study, 's')}, (SELECT c.{column(Consent, 'terms_sha256')}"  # noqa: S608
            f" FROM {table(Consent)} c WHERE c.{column(Consent, 'study')} = s.{column(Study, 'id')}"
            f" AND c.{column(Consent, 'rater')} = %s) AS accepted_terms_sha256"
            f" FROM {table(Study)} s WHERE s.{column(Study, 'public_id')} = %s"
            f" AND s.{column(Study, 'status')} = %s AND {condition}"
        )
        params = [rater.pk, public_id, StudyStatus.OPEN, *access]
        study = next(iter(Study.objects.raw(sql, params)), None)
    if study is None:
        raise NotFound("No open study with this id is available to you.")
    return study


def rater_has_consented(*, study: Study, rater: Any) -> bool:
    """Whether the rater accepted the study's current terms (changed terms must be accepted again)."""
    from annotation.services import terms_digest

    if hasattr(study, "accepted_terms_sha256"):
        accepted = study.accepted_terms_sha256
    else:
        accepted = (
            Consent.objects.filter(study=study, rater=rater).values_list("terms_sha256", flat=True).first()
        )
    return accepted is not None and accepted == terms_digest(study.terms)


def rater_check_ready(*, study: Study, rater: Any) -> None:
    if not rater_has_consented(study=study, rater=rater):
        raise Forbidden("Read the study's instructions and accept its terms before your first task.")


@dataclass(frozen=True)
class Progress:
    done: int
    skipped: int
    remaining: int

    def as_dict(self) -> dict[str, int]:
        return {"done": self.done, "skipped": self.skipped, "remaining": self.remaining}


def rater_progress(*, study: Study, rater: Any) -> Progress:
    """The rater's submitted and skipped counts, and how many tasks they could still be given
    (queue.tasks_left: the queue's own conditions; gold tasks are not counted)."""
    from annotation.queue import tasks_left  # the queue reads access_condition from this module

    counts = Assignment.objects.filter(study=study, rater=rater).aggregate(
        done=Count("pk", filter=Q(status=AssignmentStatus.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=AssignmentStatus.SKIPPED)),
    )
    remaining = tasks_left(study=study, rater=rater)
    return Progress(done=counts["done"], skipped=counts["skipped"], remaining=remaining)


# --- the study owner's view -------------------------------------------------------------------


def studies_for_owner(*, user: Any, auth: Any = None) -> QuerySet[Study]:
    """Studies of the projects where the user has a staff role (narrowed to an API token's project)."""
    return (
        Study.objects.filter(project__in=projects_for(user=user, auth=auth, roles=READ_ROLES))
        .select_related("project", "run", "pool")
        .order_by("-created_at")
    )


def study_for_owner(*, user: Any, public_id: str, auth: Any = None) -> Study:
    study = studies_for_owner(user=user, auth=auth).filter(public_id=public_id).first()
    if study is None:
        raise NotFound("No study with this id in your projects.")
    return study


def run_for_study_owner(*, user: Any, run_id: int) -> Any:
    """A run the user may build a study on (a write role in its project); NotFound otherwise."""
    from evalhub.runs.models import Run

    run = (
        Run.objects.filter(pk=run_id, project__in=projects_for(user=user, roles=WRITE_ROLES))
        .select_related("project")
        .first()
    )
    if run is None:
        raise NotFound("No run with this id in a project you can write to.")
    return run


@dataclass(frozen=True)
class StudyProgress:
    tasks: int
    complete: int
    ratings: int
    needed: int
    gold_tasks: int
    gold_ratings: int


def study_progress(*, study: Study) -> StudyProgress:
    rows = Task.objects.filter(study=study).aggregate(
        tasks=Count("pk", filter=Q(is_gold=False)),
        complete=Count("pk", filter=Q(is_gold=False, rating_count__gte=F("required_ratings"))),
        gold_tasks=Count("pk", filter=Q(is_gold=True)),
    )
    ratings = Rating.objects.filter(task__study=study).aggregate(
        ratings=Count("pk", filter=Q(task__is_gold=False)), gold=Count("pk", filter=Q(task__is_gold=True))
    )
    return StudyProgress(
        tasks=rows["tasks"],
        complete=rows["complete"],
        ratings=ratings["ratings"],
        needed=rows["tasks"] * study.overlap,
        gold_tasks=rows["gold_tasks"],
        gold_ratings=ratings["gold"],
    )


def study_raters_needed(*, study: Study) -> int:
    """The fewest raters who can finish the study: each gives at most one rating per case (the
    queue's history rule) unless case repeats are allowed, so a case with n tasks needs n times overlap."""
    if study.allow_case_repeats:
        return study.overlap
    per_case = (
        Task.objects.filter(study=study, is_gold=False)
        .values("case")
        .annotate(n=Count("pk"))
        .order_by("-n")
        .values_list("n", flat=True)
        .first()
    )
    return (per_case or 1) * study.overlap


@dataclass(frozen=True)
class RaterStats:
    username: str
    submitted: int
    skipped: int
    active: int
    median_seconds: float | None
    gold_rated: int
    gold_correct: int
    gold_accuracy: float | None
    agreement: float | None
    agreement_n: int


def _gold_value(rating: Mapping[str, Any], answer: dict[str, Any]) -> tuple[Any, ...]:
    parts: list[Any] = []
    if "preference" in answer:
        parts.append(rating["preference"])
    for side in sorted(answer.get("hallucination", {})):
        parts.append(bool(rating["hallucination"].get(side, {}).get("flagged")))
    return tuple(parts)


def study_rater_stats(*, study: Study) -> list[RaterStats]:
    """Per rater: counts, median time on task, gold accuracy (preference and hallucination flags as
    the gold answer gives them) and agreement: how often their preference matches each other rater's
    on the same pair, averaged over those comparisons."""
    import numpy as np

    from metrics.agreement import gold_accuracy  # numpy and statsmodels: loaded for owners only
    from metrics.rater_quality import rater_quality

    assignments = Assignment.objects.filter(study=study).values(
        "rater_id", "rater__username", "status", "expires_at"
    )
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    names: dict[int, str] = {}
    now = timezone.now()
    for row in assignments:
        status = row["status"]
        if status == AssignmentStatus.ACTIVE and row["expires_at"] <= now:
            status = AssignmentStatus.EXPIRED  # lapsed, not yet marked (queue.py marks lazily)
        counts[row["rater_id"]][status] += 1
        names[row["rater_id"]] = row["rater__username"]
    ratings = list(
        Rating.objects.filter(task__study=study).values(
            "task_id",
            "rater_id",
            "preference",
            "hallucination",
            "time_on_task_ms",
            "task__is_gold",
            "task__gold_answer",
            "task__output_b_id",
        )
    )
    gold_records: list[tuple[Hashable, Hashable, Any]] = []
    gold_truth: dict[Hashable, Any] = {}
    by_task: dict[int, dict[int, str]] = defaultdict(dict)
    # The median time per rater is the report's (metrics/rater_quality.py), so both pages agree.
    median_seconds = {
        q.rater_id: q.median_seconds
        for q in rater_quality(
            rater=np.array([r["rater_id"] for r in ratings], dtype=np.int64),
            seconds=np.array([r["time_on_task_ms"] for r in ratings], dtype=float) / 1000,
            straight=np.zeros(len(ratings), dtype=bool),
            answers=(),
            gold={},
        )
    }
    for r in ratings:
        if r["task__is_gold"] and r["task__gold_answer"]:
            answer = r["task__gold_answer"]
            gold_truth[r["task_id"]] = gold_expected(answer)
            gold_records.append((r["task_id"], r["rater_id"], _gold_value(r, answer)))
        elif r["task__output_b_id"] and r["preference"]:
            by_task[r["task_id"]][r["rater_id"]] = r["preference"]
    gold = {g.rater_id: g for g in gold_accuracy(gold_records, gold_truth)}
    agree: dict[int, list[int]] = defaultdict(list)
    for prefs in by_task.values():
        for rater, pref in prefs.items():
            agree[rater].extend(int(pref == other) for who, other in prefs.items() if who != rater)
    stats = []
    for rater_id in sorted(names, key=lambda pk: names[pk]):
        g = gold.get(rater_id)
        a = agree.get(rater_id, [])
        stats.append(
            RaterStats(
                username=names[rater_id],
                submitted=counts[rater_id][AssignmentStatus.SUBMITTED],
                skipped=counts[rater_id][AssignmentStatus.SKIPPED],
                active=counts[rater_id][AssignmentStatus.ACTIVE],
                median_seconds=median_seconds.get(rater_id),
                gold_rated=g.n_gold if g else 0,
                gold_correct=g.n_correct if g else 0,
                gold_accuracy=g.accuracy.rate if g else None,
                agreement=sum(a) / len(a) if a else None,
                agreement_n=len(a),
            )
        )
    return stats


def study_preference_alpha(*, study: Study) -> tuple[float | None, str | None]:
    """Krippendorff's alpha (nominal) over the pairwise preferences of the study's non-gold tasks."""
    from metrics.agreement import krippendorff_alpha, ratings_matrix

    records = list(
        Rating.objects.filter(task__study=study, task__is_gold=False)
        .exclude(preference="")
        .values_list("task_id", "rater_id", "preference")
    )
    if not records:
        return None, "no ratings yet"
    result = krippendorff_alpha(ratings_matrix(records), level="nominal")
    return result.alpha, result.reason


def skip_reasons(*, study: Study) -> list[tuple[str, int]]:
    rows = (
        Assignment.objects.filter(study=study, status=AssignmentStatus.SKIPPED)
        .values_list("skip_reason")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    return [(reason, n) for reason, n in rows]


@dataclass(frozen=True)
class ConsentStatus:
    """Where a member stands with the terms of the project's open studies they may rate."""

    accepted: int
    studies: int
    pending: tuple[str, ...]  # names of the studies whose current terms they have not accepted


def member_consent(*, project: Any, user: Any) -> ConsentStatus:
    """The member's consent to the open studies of `project` they can get (rater_studies' rule)."""
    studies = list(rater_studies(rater=user).filter(project=project).only("pk", "name", "terms"))
    pending = tuple(s.name for s in studies if not rater_has_consented(study=s, rater=user))
    return ConsentStatus(accepted=len(studies) - len(pending), studies=len(studies), pending=pending)
