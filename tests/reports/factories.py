"""Rows for report tests (and a typed report with no rows, for gate tests): a run with outputs, metric
scores, a pairwise study and its ratings, built in bulk from the shared factories (runs, scoring and
annotation are other apps' services)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from annotation.models import Assignment, Rating, Study, Task
from evalhub.accounts.models import Project, Role
from evalhub.accounts.services import membership_set, user_create
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.reports.schema import (
    SCHEMA_VERSION,
    AdapterInfo,
    AdapterRate,
    AdversarialCategory,
    Agreement,
    Counts,
    Hallucination,
    Leaderboard,
    PreferenceAgreement,
    Proportion,
    Report,
    Settings,
    Style,
)
from evalhub.runs.models import AdapterRole, MetricScore, Output, Run
from evalhub.suites.models import Case
from metrics.agreement import AlphaResult
from metrics.stats import PairedBootstrap, wilson_interval, win_rate
from tests.factories import (
    AdapterFactory,
    AssignmentFactory,
    BaseModelFactory,
    CaseFactory,
    MetricScoreFactory,
    OutputFactory,
    RatingFactory,
    RunAdapterFactory,
    RunFactory,
    StudyFactory,
    SuiteFactory,
    SuiteVersionFactory,
    TaskFactory,
)

_n = itertools.count(1)

Pref = Callable[[int, int], str]  # (case index, rater index) -> "candidate" | "baseline" | "tie" | "both_bad"


@dataclass
class Built:
    run: Run
    adapters: dict[str, Adapter]
    cases: list[Case]
    study: Study | None = None
    raters: list[Any] = field(default_factory=list)


def build_run(
    project: Project,
    *,
    n_cases: int = 40,
    adapters: tuple[str, ...] = ("base", "cand"),
    n_raters: int = 3,
    preference: Pref | None = None,
    scores: Callable[[int, int], tuple[int, int]] | None = None,
    hallucination: Callable[[int, int], tuple[bool, bool]] | None = None,
    metrics: dict[str, Callable[[str, int], float | None]] | None = None,
    checks: Callable[[str, int], bool] | None = None,
    categories: Callable[[int], str] | None = None,
    must_refuse: Callable[[int], bool] | None = None,
    gold_cases: int = 0,
    gold_right: Callable[[int], bool] | None = None,
    with_study: bool = True,
    base_model: BaseModel | None = None,
    adapter_objects: dict[str, Adapter] | None = None,
    extra_criteria: tuple[str, ...] = (),
) -> Built:
    """A completed run, baseline first. ``preference(case, rater)`` names the winner by role;
    ``scores(case, rater)`` gives (candidate, baseline) factual accuracy; ``metrics[name](adapter,
    case)`` the metric value per output. The candidate is ``adapters[1]``; with three adapters, the
    third is rated against the baseline too. ``gold_right(rater)`` says whether a rater answers gold
    tasks correctly. ``extra_criteria`` (rubric keys) are scored after factual accuracy, derived from
    its scores."""
    n = next(_n)
    if base_model is None:
        base_model = BaseModelFactory(project=project, name=f"base-{n}")
    made: dict[str, Adapter] = dict(adapter_objects or {})
    for key in adapters:
        if key not in made:
            made[key] = AdapterFactory(project=project, base_model=base_model, name=key, version=f"1.{n}")
    version = SuiteVersionFactory(suite=SuiteFactory(project=project, name=f"suite-{n}"))
    cases = Case.objects.bulk_create(
        [
            CaseFactory.build(
                version=version,
                position=i,
                tags=["finance" if i % 2 == 0 else "clinic"],
                origin="synthetic" if i % 4 == 3 else "real",
                split="heldout" if i % 5 == 4 else "eval",
                category=categories(i) if categories else "",
                expected=[{"type": "must_refuse"}] if must_refuse and must_refuse(i) else [],
            )
            for i in range(n_cases + gold_cases)
        ]
    )
    run = RunFactory(project=project, name=f"run-{n}", suite_version=version, base_model=base_model)
    for i, key in enumerate(adapters):
        RunAdapterFactory(
            run=run, adapter=made[key], role=AdapterRole.BASELINE if i == 0 else AdapterRole.CANDIDATE
        )
    outputs: dict[tuple[str, int], Output] = {}
    objs = []
    for key in adapters:
        for i, case in enumerate(cases):
            length = 40 + (i % 7) * 5
            objs.append(
                OutputFactory.build(
                    run=run,
                    adapter=made[key],
                    case=case,
                    text=f"{key} says " + "word " * length,
                    output_tokens=length,
                    cache_key=f"{n}-{key}-{i}",
                )
            )
    for o in Output.objects.bulk_create(objs):
        outputs[(next(k for k, a in made.items() if a.pk == o.adapter_id), cases.index(o.case))] = o
    score_rows = []
    for key in adapters:
        for i, case in enumerate(cases):
            out = outputs[(key, i)]
            for name, fn in (metrics or {}).items():
                value = fn(key, i)
                if value is not None:
                    score_rows.append(
                        MetricScoreFactory.build(
                            run=run, adapter=made[key], case=case, output=out, metric=name, value=value
                        )
                    )
            if checks is not None and (case.category or case.expected):
                score_rows.append(
                    MetricScoreFactory.build(
                        run=run,
                        adapter=made[key],
                        case=case,
                        output=out,
                        metric="checks",
                        passed=checks(key, i),
                        value=None,
                    )
                )
    MetricScore.objects.bulk_create(score_rows)
    built = Built(run=run, adapters=made, cases=list(cases))
    if not with_study:
        return built
    raters = []
    for r in range(n_raters):
        user = user_create(username=f"rater-{n}-{r}", password="correct-horse-battery")
        membership_set(project=project, user=user, role=Role.RATER)
        raters.append(user)
    study = StudyFactory(project=project, run=run, name=f"study-{n}", baseline=made[adapters[0]])
    base, cand = adapters[0], adapters[1]
    pairs = [(cand, base)] + [(other, base) for other in adapters[2:]]
    tasks = []
    for i in range(n_cases + gold_cases):
        for j, (c_key, b_key) in enumerate(pairs):
            flip = (i + j) % 2 == 1  # candidate on side B for odd cases
            a_out, b_out = (
                (outputs[(b_key, i)], outputs[(c_key, i)])
                if flip
                else (outputs[(c_key, i)], outputs[(b_key, i)])
            )
            gold = i >= n_cases and j == 0
            if i >= n_cases and not gold:
                continue
            tasks.append(
                TaskFactory.build(
                    study=study,
                    case=cases[i],
                    output_a=a_out,
                    output_b=b_out,
                    is_gold=gold,
                    gold_answer={"preference": "B" if flip else "A"} if gold else None,
                    required_ratings=0 if gold else n_raters,
                    order_key=f"{i:08d}{j}",
                )
            )
    tasks = Task.objects.bulk_create(tasks)
    now = timezone.now()
    assignments, ratings = [], []
    for task in tasks:
        i = cases.index(task.case)
        cand_side = "B" if task.output_a.adapter_id == made[base].pk else "A"
        base_side = "B" if cand_side == "A" else "A"
        for r, user in enumerate(raters):
            if task.is_gold:
                right = gold_right(r) if gold_right else True
                pref = cand_side if right else base_side
            else:
                who = preference(i, r) if preference else "candidate"
                pref = {"candidate": cand_side, "baseline": base_side}.get(who, who)
            c_score, b_score = scores(i, r) if scores else (4, 3)
            c_h, b_h = hallucination(i, r) if hallucination else (False, False)
            assignments.append(AssignmentFactory.build(task=task, study=study, rater=user, leased_at=now))
            ratings.append(
                {
                    "task": task,
                    "rater": user,
                    "scores": {
                        "factual_accuracy": {cand_side: c_score, base_side: b_score},
                        **{
                            name: {cand_side: 1 + (c_score + k) % 5, base_side: 1 + (b_score + 2 * k) % 5}
                            for k, name in enumerate(extra_criteria, start=1)
                        },
                    },
                    "preference": pref,
                    "hallucination": {
                        cand_side: {"flagged": c_h, "spans": []},
                        base_side: {"flagged": b_h, "spans": []},
                    },
                }
            )
    made_assignments = Assignment.objects.bulk_create(assignments)
    Rating.objects.bulk_create(
        [RatingFactory.build(assignment=a, **r) for a, r in zip(made_assignments, ratings, strict=True)]
    )
    built.study = study
    built.raters = raters
    return built


def build_full_run(project: Project, **overrides: Any) -> Built:
    """A small run that fills every part of the report (three adapters, hallucination flags, a metric,
    checks and an adversarial slice): the PDF's and the report page's tests read the same one."""
    return build_run(
        project,
        **{
            "n_cases": 24,
            "adapters": ("base", "cand", "other"),
            "preference": lambda i, r: "candidate" if i % 3 else "baseline",
            "hallucination": lambda i, r: (i % 5 == 0, i % 3 == 0),
            "metrics": {"rougeL": lambda k, i: 0.3 + 0.01 * (i % 7) + (k == "cand") * 0.02},
            "checks": lambda k, i: i % 4 != 0,
            "categories": lambda i: "jailbreak" if i % 6 == 0 else "",
            **overrides,
        },
    )


def _proportion(successes: int, n: int) -> Proportion:
    low, high = wilson_interval(successes, n)
    return Proportion(rate=successes / n, ci_low=float(low), ci_high=float(high), n=n)


def report_of(
    *,
    wins: int = 70,
    ties: int = 10,
    losses: int = 20,
    pair_ratings: int = 100,
    preference_alpha: float = 0.7,
    both_bad: int = 0,
    flagged: tuple[int, int] | None = None,
    adversarial: tuple[int, int] | None = None,
) -> Report:
    """A typed report holding only a candidate-vs-baseline win count and the preference agreement
    (every other section empty), for gate tests that need no rows. ``flagged`` and ``adversarial``
    are the candidate's (successes, n): hallucination flags and adversarial checks passed."""
    no_pairs = PairedBootstrap(
        n=0,
        n_dropped=0,
        mean_a=None,
        mean_b=None,
        mean_difference=None,
        ci_low=None,
        ci_high=None,
        confidence=0.95,
        method="percentile",
        resamples=0,
        seed=0,
        reason="no flags",
    )
    alpha = AlphaResult(
        alpha=preference_alpha, level="nominal", n_units=pair_ratings, n_raters=3, n_values=300
    )
    return Report(
        schema=SCHEMA_VERSION,
        candidate=AdapterInfo(id=2, label="c@1"),
        baseline=AdapterInfo(id=1, label="b@1"),
        adapters=(AdapterInfo(id=1, label="b@1"), AdapterInfo(id=2, label="c@1")),
        study_ids=(),
        settings=Settings(
            resamples=0, style_resamples=0, seed=0, confidence=0.95, exclude_raters_below=None, criteria=()
        ),
        counts=Counts(
            cases=0,
            ratings=pair_ratings,
            pair_ratings=pair_ratings,
            gold_ratings=0,
            raters=3,
            cases_rated=0,
            both_bad=both_bad,
        ),
        win_rate=win_rate(wins, ties, losses),
        win_rate_by_slice=(),
        criteria=(),
        hallucination=Hallucination(
            per_adapter=() if flagged is None else (AdapterRate(adapter="c@1", share=_proportion(*flagged)),),
            delta=no_pairs,
        ),
        style=Style(n_battles=0, reason="no pairwise ratings"),
        leaderboard=Leaderboard(models=(), reason="none"),
        metrics=(),
        adversarial=()
        if adversarial is None
        else (AdversarialCategory(category="all", per_adapter={"c@1": _proportion(*adversarial)}),),
        must_refuse={},
        agreement=Agreement(
            criteria=(),
            n_raters=3,
            preference=PreferenceAgreement(alpha=alpha, fleiss=None, pairwise_cohen=None),
        ),
        gold=(),
    )
