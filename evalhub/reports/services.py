"""Report actions: build a report, save a gate policy, freeze a verdict and reopen it.

A frozen verdict's snapshot holds the rows the report was computed from, the policy and the report
itself; the content hash is SHA-256 over their canonical JSON, so reopening recomputes the report
from the snapshot alone and proves the numbers are the same.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from django.db import transaction

from annotation.models import Rating
from evalhub.audit.services import audit_record
from evalhub.catalog.models import Adapter
from evalhub.catalog.selectors import adapter_last_approved, adapter_previous_version
from evalhub.errors import ValidationFailed
from evalhub.reports import gates as gate_rules
from evalhub.reports.compute import report_compute
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.reports.selectors import (
    RatingColumns,
    ReportRows,
    adapter_info,
    report_rows,
    run_adapters_by_role,
)
from evalhub.runs.models import Run, RunAdapter

DEFAULT_RESAMPLES = 2000
SCHEMA_VERSION = 1


def canonical_json(data: Any) -> str:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
    )


def content_hash(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _rows_dump(rows: ReportRows) -> dict[str, Any]:
    return {
        "cases": rows.cases,
        "adapters": rows.adapters,
        "outputs": [[a, c, o] for (a, c), o in rows.outputs.items()],
        "output_tokens": [[o, t] for o, t in rows.output_tokens.items()],
        "texts": [[o, t] for o, t in rows.texts.items()],
        "scores": [list(s) for s in rows.scores],
        "ratings": rows.ratings.to_dicts(),
        "raters": [[k, v] for k, v in rows.raters.items()],
        "study_ids": rows.study_ids,
    }


def _rows_load(data: dict[str, Any]) -> ReportRows:
    outputs = {(a, c): o for a, c, o in data["outputs"]}
    adapter_of = {o: a for a, _, o in data["outputs"]}
    return ReportRows(
        cases=data["cases"],
        adapters=data["adapters"],
        outputs=outputs,
        output_adapter=adapter_of,
        output_tokens={o: t for o, t in data["output_tokens"]},
        texts={o: t for o, t in data["texts"]},
        scores=[tuple(s) for s in data["scores"]],
        ratings=RatingColumns.from_dicts(data["ratings"]),
        raters={k: v for k, v in data["raters"]},
        study_ids=data["study_ids"],
    )


def _resolve(run: Run, candidate: Adapter | None, baseline: Adapter | None) -> tuple[Adapter, Adapter]:
    run_baseline, candidates = run_adapters_by_role(run=run)
    baseline = baseline or run_baseline
    if candidate is None:
        candidate = next((c for c in candidates if baseline is None or c.pk != baseline.pk), None)
    if candidate is None or baseline is None:
        raise ValidationFailed("A report needs a candidate and a baseline adapter in the run.")
    if candidate.pk == baseline.pk:
        raise ValidationFailed("The candidate and the baseline must be different adapters.")
    in_run = set(RunAdapter.objects.filter(run=run).values_list("adapter_id", flat=True))
    for who, adapter in (("candidate", candidate), ("baseline", baseline)):
        if adapter.pk not in in_run:
            raise ValidationFailed(f"The {who} {adapter.label} is not an adapter of run {run.pk}.")
    return candidate, baseline


def _lineage(run: Run, candidate: Adapter, report: dict[str, Any]) -> dict[str, Any]:
    """The candidate against its parent, its previous version and the last approved adapter:
    metric mean differences where those adapters are in this run."""
    others = {
        "parent": candidate.parent,
        "previous_version": adapter_previous_version(adapter=candidate),
        "last_approved": adapter_last_approved(adapter=candidate),
    }
    out: dict[str, Any] = {}
    for role, other in others.items():
        if other is None:
            out[role] = None
            continue
        entry: dict[str, Any] = {"adapter": adapter_info(other), "in_run": False, "metric_deltas": {}}
        for metric in report["metrics"]:
            means = metric["means"]
            if other.label in means and candidate.label in means:
                entry["in_run"] = True
                c, o = means[candidate.label], means[other.label]
                entry["metric_deltas"][metric["metric"]] = None if c is None or o is None else c - o
        out[role] = entry
    return out


def report_build(
    *,
    run: Run,
    candidate: Adapter | None = None,
    baseline: Adapter | None = None,
    study: Any = None,
    exclude_raters_below: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    with_rows: bool = False,
) -> dict[str, Any]:
    """The comparison report of a run (JSON-ready). Defaults: the run's baseline and first candidate,
    all the run's studies. ``with_rows`` adds the fetched rows under ``_rows`` (for freezing)."""
    candidate, baseline = _resolve(run, candidate, baseline)
    adapter_ids = list(RunAdapter.objects.filter(run=run).values_list("adapter_id", flat=True))
    rows = report_rows(run=run, adapter_ids=adapter_ids, study_ids=[study.pk] if study is not None else None)
    report = report_compute(
        rows,
        candidate_id=candidate.pk,
        baseline_id=baseline.pk,
        exclude_raters_below=exclude_raters_below,
        resamples=resamples,
    )
    report["run"] = {"id": run.pk, "name": run.name, "project": run.project.slug}
    report["lineage"] = _lineage(run, candidate, report)
    if with_rows:
        report["_rows"] = _rows_dump(rows)
    return report


def report_with_verdict(*, report: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    decision, results = gate_rules.verdict_decide(report, policy)
    return {"decision": decision, "gates": results, "policy": policy}


def gate_policy_save(*, project: Any, name: str, source: str, actor: Any = None) -> GatePolicy:
    """Create or replace the project's policy of that name; the YAML is validated first."""
    parsed = gate_rules.policy_parse(source)
    name = (name or parsed["name"] or "").strip()
    if not name or len(name) > 120:
        raise ValidationFailed(
            "A gate policy needs a name of at most 120 characters.", fields={"name": ["Required."]}
        )
    with transaction.atomic():
        policy, created = GatePolicy.objects.select_for_update().get_or_create(
            project=project,
            name=name,
            defaults={"source": source, "parsed": parsed, "created_by": _user(actor)},
        )
        before = None if created else policy.parsed
        if not created:
            policy.source, policy.parsed = source, parsed
            policy.save(update_fields=["source", "parsed", "updated_at"])
        audit_record(
            actor=actor, action="gate_policy.save", obj=policy, project=project, before=before, after=parsed
        )
    return policy


def default_policy_for(*, project: Any, actor: Any = None) -> GatePolicy:
    """The project's stored copy of the default policy (a verdict must point at a stored policy)."""
    existing = GatePolicy.objects.filter(project=project, name="default").first()
    if existing is not None:
        return existing
    return gate_policy_save(
        project=project, name="default", source=gate_rules.DEFAULT_POLICY_YAML, actor=actor
    )


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def verdict_freeze(
    *,
    run: Run,
    candidate: Adapter | None = None,
    baseline: Adapter | None = None,
    policy: GatePolicy | None = None,
    study: Any = None,
    exclude_raters_below: float | None = None,
    actor: Any = None,
) -> Verdict:
    """Compute the report, decide it under the policy (the project's default if None), and store the
    verdict with a snapshot of its inputs and a content hash. Audited."""
    candidate, baseline = _resolve(run, candidate, baseline)
    policy = policy or default_policy_for(project=run.project, actor=actor)
    if policy.project_id != run.project_id:
        raise ValidationFailed("The gate policy belongs to another project.")
    report = report_build(
        run=run,
        candidate=candidate,
        baseline=baseline,
        study=study,
        exclude_raters_below=exclude_raters_below,
        with_rows=True,
    )
    rows = report.pop("_rows")
    outcome = report_with_verdict(report=report, policy=policy.parsed)
    snapshot = json.loads(
        canonical_json(
            {
                "inputs": rows,
                "params": {
                    "candidate_id": candidate.pk,
                    "baseline_id": baseline.pk,
                    "exclude_raters_below": exclude_raters_below,
                    "resamples": report["settings"]["resamples"],
                    "style_resamples": report["settings"]["style_resamples"],
                    "seed": report["settings"]["seed"],
                },
                "policy": policy.parsed,
                "report": report,
                "decision": outcome["decision"],
                "gates": outcome["gates"],
            }
        )
    )
    with transaction.atomic():
        verdict = Verdict.objects.create(
            project=run.project,
            public_id=secrets.token_urlsafe(12),
            run=run,
            study=study,
            policy=policy,
            candidate=candidate,
            baseline=baseline,
            decision=outcome["decision"],
            gates=snapshot["gates"],
            snapshot=snapshot,
            content_hash=content_hash(snapshot),
            frozen_by=_user(actor),
        )
        audit_record(
            actor=actor,
            action="verdict.freeze",
            obj=verdict,
            project=run.project,
            after={
                "decision": verdict.decision,
                "candidate": candidate.label,
                "baseline": baseline.label,
                "policy": policy.name,
                "content_hash": verdict.content_hash,
                "excluded_raters": [g["rater"] for g in (report.get("exclusion") or {}).get("excluded", [])],
                "exclude_raters_below": exclude_raters_below,
            },
        )
    return verdict


def verdict_reopen(verdict: Verdict) -> dict[str, Any]:
    """Recompute the report and decision from the snapshot alone; say whether the stored hash and
    numbers are reproduced."""
    snapshot = verdict.snapshot
    params = snapshot["params"]
    report = report_compute(
        _rows_load(snapshot["inputs"]),
        candidate_id=params["candidate_id"],
        baseline_id=params["baseline_id"],
        exclude_raters_below=params["exclude_raters_below"],
        resamples=params["resamples"],
        style_resamples=params["style_resamples"],
        seed=params["seed"],
    )
    for key in ("run", "lineage"):
        report[key] = snapshot["report"].get(key)
    decision, results = gate_rules.verdict_decide(report, snapshot["policy"])
    recomputed = json.loads(canonical_json({"report": report, "decision": decision, "gates": results}))
    same = canonical_json(recomputed) == canonical_json(
        {"report": snapshot["report"], "decision": snapshot["decision"], "gates": snapshot["gates"]}
    )
    return {
        "hash_ok": content_hash(snapshot) == verdict.content_hash,
        "reproduced": same,
        "decision": decision,
        "gates": recomputed["gates"],
        "report": recomputed["report"],
    }


def report_cached(
    *,
    run: Run,
    candidate: Adapter | None = None,
    baseline: Adapter | None = None,
    exclude_raters_below: float | None = None,
    timeout: int = 600,
) -> dict[str, Any]:
    """``report_build`` memoised in the cache, keyed by the rows' current extent, so the page, its
    plots and exports of the same request share one computation and new data is never stale."""
    from django.core.cache import cache
    from django.db.models import Count, Max

    from evalhub.runs.models import MetricScore

    candidate, baseline = _resolve(run, candidate, baseline)
    r = Rating.objects.filter(task__study__run=run).aggregate(n=Count("pk"), m=Max("pk"))
    s = MetricScore.objects.filter(run=run).aggregate(n=Count("pk"), m=Max("pk"))
    key = f"report:v{SCHEMA_VERSION}:{run.pk}:{candidate.pk}:{baseline.pk}:{exclude_raters_below}:{r['n']}:{r['m']}:{s['n']}:{s['m']}"
    report = cache.get(key)
    if report is None:
        report = report_build(
            run=run, candidate=candidate, baseline=baseline, exclude_raters_below=exclude_raters_below
        )
        cache.set(key, report, timeout)
    return report
