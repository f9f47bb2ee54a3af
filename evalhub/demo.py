"""The demo pipeline, step by step. Each step calls the same services the web UI, API and CLI use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model

from evalhub import simulated_experts as experts
from evalhub.accounts.models import Project, Role
from evalhub.accounts.services import membership_set, project_create
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.services import adapter_register, base_model_register

ADAPTERS = ["summariser-v1", "summariser-v2", "tone-v1", "synthetic-bad"]
USERS = [
    ("admin", Role.ADMIN, "site admin: users, raters, consent and the audit trail"),
    ("lead", Role.LEAD, "ML lead: reports and verdicts"),
    ("engineer", Role.ENGINEER, "engineer: suites, runs and gates"),
    ("rater1", Role.RATER, "domain expert: the blinded rating form"),
    ("rater2", Role.RATER, "domain expert"),
]


class Writer(Protocol):
    def write(self, text: str) -> Any: ...


class StepUnavailable(Exception):
    """A pipeline step whose part of evalhub is not installed."""


@dataclass
class DemoState:
    password: str
    cases: int
    project: Project | None = None
    users: dict[str, Any] = field(default_factory=dict)
    base_model: BaseModel | None = None
    adapters: dict[str, Adapter] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    urls: list[tuple[str, str]] = field(default_factory=list)


def setup_users(state: DemoState) -> None:
    user_model = get_user_model()
    state.project = Project.objects.filter(slug="demo").first() or project_create(
        name="Demo", description="Fixture summarisers of earnings-call and clinic-visit notes."
    )
    for username, role, _ in USERS:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model.objects.create_user(
                username=username,
                password=state.password,
                is_staff=role == Role.ADMIN,
                is_superuser=role == Role.ADMIN,
            )
        membership_set(project=state.project, user=user, role=role)
        state.users[username] = user


def register_models(state: DemoState, out: Writer) -> None:
    assert state.project is not None
    models_dir = settings.FIXTURES_DIR / "models"
    actor = state.users.get("engineer")
    state.base_model = BaseModel.objects.filter(
        project=state.project, name="base"
    ).first() or base_model_register(
        project=state.project, name="base", folder=str(models_dir / "base"), actor=actor
    )
    for name in ADAPTERS:
        adapter = Adapter.objects.filter(project=state.project, name=name).first() or adapter_register(
            project=state.project, base_model=state.base_model, folder=str(models_dir / name), actor=actor
        )
        state.adapters[name] = adapter
        parent = f" (parent {adapter.parent.label}, stage {adapter.stage})" if adapter.parent else ""
        out.write(f"  {adapter.label}: LoRA r={adapter.rank}{parent}\n")
    state.urls.append(("Models and adapters", f"/p/{state.project.slug}/adapters/"))


FIXTURE_JUSTIFICATION = "Fixture data: every name, e-mail and number was invented by fixtures/corpus.py."


def _import(state: DemoState, name: str, path: Any, out: Writer) -> Any:
    from evalhub.suites.services import suite_import_file

    assert state.project is not None
    version = suite_import_file(
        project=state.project,
        name=name,
        path=path,
        actor=state.users["engineer"],
        pii_action="keep",
        pii_justification=FIXTURE_JUSTIFICATION,
        data_source="fixtures/corpus.py (generated)",
        consent_statement="No real person's data: generated text.",
    )
    out.write(f"  {name} v{version.number}: {version.case_count} cases\n")
    return version


def import_suites(state: DemoState, out: Writer) -> None:
    """The two sample suites, and the demo's evaluation mix (a slice of each) through the same import."""
    import json

    suites_dir = settings.FIXTURES_DIR / "suites"
    _import(state, "Summaries", suites_dir / "summaries.jsonl", out)
    _import(state, "Adversarial", suites_dir / "adversarial.jsonl", out)
    summaries = [json.loads(line) for line in (suites_dir / "summaries.jsonl").read_text().splitlines()]
    adversarial = [json.loads(line) for line in (suites_dir / "adversarial.jsonl").read_text().splitlines()]
    heldout = [row for row in summaries if row["split"] == "heldout"][: max(4, state.cases // 5)]
    evaluation = [row for row in summaries if row["split"] != "heldout"][: state.cases - len(heldout)]
    keep = {"refusal", "injection", "pii", "format"}
    # At least 5 per category: the default policy's adversarial floor needs n >= 20 to decide anything.
    per_category = max(5, state.cases // 12)
    picked = [
        r
        for c in sorted(keep)
        for r in [row for row in adversarial if row.get("category") == c][:per_category]
    ]
    mix = evaluation + heldout + picked
    path = settings.DATA_DIR / "demo-evaluation.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in mix), encoding="utf-8")
    state.objects["suite_version"] = _import(state, "Demo evaluation", path, out)
    assert state.project is not None
    state.urls.append(("Suites", f"/p/{state.project.slug}/suites/"))


def generate(state: DemoState, out: Writer) -> None:
    """One run: three candidates against summariser-v1, greedy; scoring follows on completion."""
    from evalhub.runs.models import RunStatus
    from evalhub.runs.services import run_create, run_start

    assert state.project is not None and state.base_model is not None
    run = run_create(
        project=state.project,
        suite_version=state.objects["suite_version"],
        base_model=state.base_model,
        adapters=[
            state.adapters["summariser-v2"],
            state.adapters["tone-v1"],
            state.adapters["synthetic-bad"],
        ],
        baseline=state.adapters["summariser-v1"],
        generation_config={"max_new_tokens": 96},  # the longest reference is 73 tokens (RECIPE.md)
        name="Demo: v2, tone and synthetic vs v1",
        actor=state.users["engineer"],
    )
    run = run_start(run=run, actor=state.users["engineer"])
    run.refresh_from_db()
    if run.status != RunStatus.COMPLETED:
        raise RuntimeError(f"the demo run ended {run.status}: {run.error}")
    rate = run.output_tokens / run.generation_seconds if run.generation_seconds else 0.0
    out.write(
        f"  run {run.pk}: {run.done}/{run.total} outputs, {run.output_tokens} tokens, {rate:,.0f} tokens/s\n"
    )
    state.objects["run"] = run
    state.urls.append(("Run and outputs", f"/p/{state.project.slug}/runs/{run.pk}/"))


def scores(state: DemoState, out: Writer) -> None:
    from django.db.models import Avg, Count

    from evalhub.runs.models import MetricScore
    from evalhub.runs.scoring import run_score

    run = state.objects["run"]
    if not MetricScore.objects.filter(run=run).exists():  # scoring is off in this environment: do it now
        run_score(run_id=run.pk)
    rows = (
        MetricScore.objects.filter(run=run, metric__in=["rougeL", "perplexity", "checks"])
        .values("adapter__name", "adapter__version", "metric")
        .annotate(mean=Avg("value"), n=Count("id"))
        .order_by("metric", "adapter__name", "adapter__version")
    )
    for row in rows:  # v1 and v2 share the name "summariser": show name@version
        label = f"{row['adapter__name']}@{row['adapter__version']}"
        out.write(f"  {row['metric']:<11} {label:<17} {row['mean']:.3f}  (n={row['n']})\n")


def open_study(state: DemoState, out: Writer) -> None:
    """A blinded study (candidates vs summariser-v1), and simulated experts rating most of it.

    Real raters (rater1, rater2) find the remaining tasks in their queue.
    """
    from annotation.queue import task_assign_next
    from annotation.selectors import study_raters_needed
    from annotation.services import consent_accept, rating_submit, study_create_from_run
    from evalhub.judging.services import study_judge

    assert state.project is not None
    user_model = get_user_model()
    run = state.objects["run"]
    judge = demo_judge(state, out)
    study = study_create_from_run(
        run=run,
        name="Demo: which summary would you ship?",
        baseline=state.adapters["summariser-v1"],
        overlap=2,
        lease_seconds=900,
        single_output_categories=("refusal", "injection", "pii", "format"),
        instructions="Compare the two summaries of each note. Check every number against the note.",
        terms="I rate as an independent domain expert and keep the notes confidential.",
        seed=7,
        routing="uncertainty_first",
        audit_share=0.2,
        actor=state.users["lead"],
        **judge,
    )
    study.refresh_from_db()
    if study.judge_state.get("status") != "done":  # a worker judges it; the demo needs the order now
        study_judge(study_id=study.pk)
        study.refresh_from_db()
    js = study.judge_state
    seconds = float(js.get("seconds") or 0)
    rate = f", {2 * js['pairs'] / seconds:.1f} orders/s" if seconds else ""
    routed = js.get("routing") or {}
    out.write(
        f"  judge {js['judge']} rated {js['judged']} of {js['pairs']} pairs in both orders in {seconds:.1f}s{rate}"
        f" ({len(js['failures'])} failed); experts' order: "
        + (
            "uncertainty-first with a 20% random audit\n"
            if routed.get("applied")
            else f"random ({routed.get('reason')})\n"
        )
    )
    state.objects["study"] = study
    total = study.tasks.count()
    budget = int(total * 2 * 0.8)  # simulated experts fill 80% of the ratings; people get the rest
    given = 0
    # A rater gets at most one task per case (the queue's blinding rule), so the study needs as many
    # simulated experts as it takes raters to finish it.
    sim_raters = [f"expert-sim-{i + 1}" for i in range(study_raters_needed(study=study))]
    for index, username in enumerate(sim_raters):
        rater = user_model.objects.filter(username=username).first() or user_model.objects.create_user(
            username=username, password=None
        )
        membership_set(project=state.project, user=rater, role=Role.RATER)
        consent_accept(study=study, rater=rater)
        while given < budget:
            assignment = task_assign_next(study=study, rater=rater)
            if assignment is None:
                break
            task = assignment.task
            sides: dict[str, Any] = {"A": task.output_a}
            if task.output_b is not None:
                sides["B"] = task.output_b
            if task.output_b is None:  # an adversarial single output: was the expected behaviour met?
                data = experts.adversarial_rating_data(
                    task.output_a.text, expected=task.case.expected, source=task.case.input, rater=index
                )
            else:
                judged = {
                    side: experts.judge(
                        output.text, source=task.case.input, reference=task.case.reference, rater=index
                    )
                    for side, output in sides.items()
                }
                data = experts.rating_data(judged, rationale="Simulated expert (demo)")
            # The simulated expert "took" its stated time: submit at lease + that time, or the server
            # (which caps time on task at the time since the lease) would record milliseconds and the
            # report's rater quality would flag every simulated expert as too fast.
            took = timedelta(milliseconds=int(data.get("time_on_task_ms") or 0))
            rating_submit(public_id=task.public_id, rater=rater, data=data, now=assignment.leased_at + took)
            given += 1
    out.write(
        f"  study with {total} blinded tasks (overlap 2); {given} simulated expert ratings, the rest await rater1/rater2\n"
    )
    state.urls.append(("Rate (as rater1)", "/rate/"))


def demo_judge(state: DemoState, out: Writer) -> dict[str, Any]:
    """The study's judge: the fixture judge adapter when fixtures/models/judge exists (trained on the
    fixture base to tell a faithful summary from one with altered facts), else the bare fixture base."""
    assert state.project is not None and state.base_model is not None
    folder = settings.FIXTURES_DIR / "models" / "judge"
    if (folder / "adapter_config.json").is_file():
        adapter = Adapter.objects.filter(project=state.project, name="judge").first() or adapter_register(
            project=state.project,
            base_model=state.base_model,
            folder=str(folder),
            actor=state.users.get("engineer"),
        )
        out.write(
            f"  judge: the fixture judge adapter {adapter.label} on the fixture base (log-probabilities)\n"
        )
        return {"judge_adapter": adapter}
    out.write("  judge: the bare fixture base (log-probabilities); fixtures/models/judge is not built\n")
    return {"judge_base_model": state.base_model}


VERDICTS = ["summariser-v2", "synthetic-bad"]  # each frozen against summariser-v1


def report(state: DemoState, out: Writer) -> None:
    """The go/no-go reports of summariser-v2 and synthetic-bad against summariser-v1, frozen as verdicts."""
    from evalhub.reports.services import report_cached, verdict_freeze

    assert state.project is not None
    run = state.objects["run"]
    state.objects["verdicts"] = {}
    for name in VERDICTS:
        verdict = verdict_freeze(
            run=run,
            candidate=state.adapters[name],
            baseline=state.adapters["summariser-v1"],
            study=state.objects.get("study"),
            actor=state.users["lead"],
        )
        state.objects["verdicts"][name] = verdict
        baseline = verdict.baseline.label if verdict.baseline else "-"
        out.write(f"  verdict for {verdict.candidate.label} vs {baseline}: {verdict.decision}\n")
        out.write(f"    why: {verdict.why}\n")
        for gate in verdict.gates:
            if isinstance(gate, dict):
                out.write(f"    {gate_line(gate)}\n")
    # Fill the report cache, so the lead's first visit opens the report at once instead of the building page.
    report_cached(run=run)
    for name in VERDICTS:
        built = report_cached(
            run=run, candidate=state.adapters[name], baseline=state.adapters["summariser-v1"]
        )
        for line in judge_lines(built):
            out.write(f"    {line}\n")
    state.urls.append(("Report (as lead)", f"/p/{state.project.slug}/runs/{run.pk}/report/"))


def judge_lines(report: Any) -> list[str]:
    """The report's judge section in a few lines of the demo's output: agreement with the experts, the
    statement, the corrected win rate and the expert ratings saved."""
    j = report.judge
    if j is None:
        return []
    label = report.candidate.label if report.candidate else "?"
    lines = [f"judge on {label} vs {report.baseline.label if report.baseline else '?'}:"]
    row = j.calibration.rows[0]
    if row.accuracy.rate is not None:
        kappa = "undefined" if row.kappa.kappa is None else f"{row.kappa.kappa:.2f}"
        experts = "undefined" if row.expert_mean_kappa is None else f"{row.expert_mean_kappa:.2f}"
        lines.append(
            f"  agrees with the expert majority on {row.accuracy.rate:.0%} of {row.n_units} pairs (kappa {kappa};"
            f" experts among themselves {experts}); same answer in both orders on"
            f" {j.calibration.consistency.rate.rate or 0:.0%} of pairs"
        )
    lines.append(f"  {j.calibration.statement}")
    if j.win_rate is not None and j.win_rate.estimate is not None:
        lines.append(
            f"  win rate {j.win_rate.estimate:.3f} ({j.win_rate.ci_low:.3f}-{j.win_rate.ci_high:.3f}), {j.estimator};"
            f" plain mean of the rated pairs {j.naive_win_rate.estimate or 0:.3f}"
        )
    s = j.ratings_saved
    if s.ratings_saved is not None and s.ratings_saved < 0:
        lines.append(
            f"  expert ratings saved: none; {s.ratings_collected} given where a uniform random order needed about"
            f" {s.uniform_ratings_needed} for an interval as narrow (this judge's predictions widen the interval)"
        )
    elif s.ratings_saved is not None:
        lines.append(
            f"  expert ratings saved: {s.ratings_collected} given where a uniform random order needed about"
            f" {s.uniform_ratings_needed} for an interval as narrow ({s.ratings_saved} saved, {s.saved_share or 0:.0%})"
        )
    else:
        lines.append(f"  expert ratings saved: not computable ({s.reason})")
    return lines


def gate_line(gate: dict[str, Any]) -> str:
    """One gate of a frozen verdict as a line of the demo's output: name, outcome and value (counts
    as integers, rates as percentages: the report's own formatting)."""
    from evalhub.reports.gates import gate_number

    name = gate.get("name", gate.get("metric", "?"))
    outcome = gate.get("result", gate.get("status", ""))
    value = gate.get("value")
    shown = f" ({gate_number(str(gate.get('metric', '')), value)})" if isinstance(value, int | float) else ""
    return f"{name}: {outcome}{shown}"


PIPELINE: list[tuple[str, Any]] = [
    ("Import the sample suites (validation and PII screening)", import_suites),
    ("Generate outputs for every adapter and case", generate),
    ("Score the outputs (ROUGE, BLEU, chrF, embeddings, checks, perplexity)", scores),
    ("Open a blinded rating study; the judge rates every pair and routes the experts", open_study),
    ("Build the report and freeze a verdict", report),
]


def served_base_url(addr: str) -> str:
    """The address a browser should open for `runserver addr` ("8001", "0.0.0.0:8080", "[::]:8000")."""
    host, _, port = addr.rpartition(":")
    if not host and port.isdigit():
        host = "127.0.0.1"
    elif not _:
        host, port = addr, "8000"
    # An address that means "every interface" is not one a browser can open: use this machine's own.
    host = {"0.0.0.0": "127.0.0.1", "0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104  (read, not bound)
    return f"http://{host}:{port}"


def summary_lines(state: DemoState, base_url: str = "http://127.0.0.1:8000") -> list[str]:
    lines = [
        "",
        f"Log in at {base_url}/accounts/login/ with (password for all: " + state.password + "):",
    ]
    lines += [f"  {username:<10} {description}" for username, _, description in USERS]
    if state.urls:
        lines.append("")
        lines.append("Pages to look at:")
        lines += [f"  {title:<28} {base_url}{url}" for title, url in state.urls]
    return lines
