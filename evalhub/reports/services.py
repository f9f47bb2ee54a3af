"""Report actions: build a report, save a gate policy, freeze a verdict and reopen it.

A frozen verdict's snapshot holds the rows the report was computed from, the policy and the report
itself (its format and reader live in ``snapshots``); the content hash is SHA-256 over its canonical
JSON, so reopening recomputes the report from the snapshot alone and names any number that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from django.db import transaction

from evalhub.audit.services import audit_record
from evalhub.catalog.models import Adapter
from evalhub.catalog.selectors import adapter_last_approved, adapter_previous_version
from evalhub.errors import ValidationFailed
from evalhub.reports import gates as gate_rules
from evalhub.reports.compute import ReportInput, report_from_input
from evalhub.reports.gates import GateResult, Policy
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.reports.schema import SCHEMA_VERSION, AdapterInfo, LineageEntry, Report, RunRef, from_json
from evalhub.reports.selectors import adapter_info, report_rows, run_adapters_by_role, snapshot_inputs_gone
from evalhub.reports.snapshots import (
    Change,
    canonical,
    content_hash,
    report_changes,
    snapshot_build,
    snapshot_missing,
    snapshot_read,
)
from evalhub.runs.models import Run, RunAdapter
from metrics.rater_quality import DEFAULT_MIN_SECONDS

DEFAULT_RESAMPLES = 2000
ADDED_SECTIONS = ("rater_quality", "judge")
"""Report sections newer than some frozen snapshots; reopening such a snapshot leaves them out."""


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


def _lineage(run: Run, candidate: Adapter, report: Report) -> dict[str, LineageEntry | None]:
    """The candidate against its parent, its previous version and the last approved adapter:
    metric mean differences where those adapters are in this run."""
    others = {
        "parent": candidate.parent,
        "previous_version": adapter_previous_version(adapter=candidate),
        "last_approved": adapter_last_approved(adapter=candidate),
    }
    out: dict[str, LineageEntry | None] = {}
    for role, other in others.items():
        if other is None:
            out[role] = None
            continue
        in_run = False
        deltas: dict[str, float | None] = {}
        for metric in report.metrics:
            means = metric.means
            if other.label in means and candidate.label in means:
                in_run = True
                c, o = means[candidate.label], means[other.label]
                deltas[metric.metric] = None if c is None or o is None else c - o
        adapter = from_json(AdapterInfo, adapter_info(other))
        out[role] = LineageEntry(adapter=adapter, in_run=in_run, metric_deltas=deltas)
    return out


def _report_input(
    *,
    run: Run,
    candidate: Adapter,
    baseline: Adapter,
    study: Any,
    exclude_raters_below: float | None,
    resamples: int,
    exclude_flagged: bool = False,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> ReportInput:
    adapter_ids = list(RunAdapter.objects.filter(run=run).values_list("adapter_id", flat=True))
    rows = report_rows(run=run, adapter_ids=adapter_ids, study_ids=[study.pk] if study is not None else None)
    return ReportInput(
        rows=rows,
        candidate_id=candidate.pk,
        baseline_id=baseline.pk,
        exclude_raters_below=exclude_raters_below,
        resamples=resamples,
        exclude_flagged=exclude_flagged,
        min_seconds=min_seconds,
    )


def rater_quality_params(*, exclude_flagged: Any = None, min_seconds: Any = None) -> dict[str, Any]:
    """The rater-quality parameters of a report from query-string or form values: ``exclude_flagged``
    ("1", "true", "on" or True) and ``min_seconds`` (a number of seconds from 0 to 3600). Empty
    values keep the defaults; anything else is a field-level error."""
    params: dict[str, Any] = {}
    if exclude_flagged not in (None, ""):
        if str(exclude_flagged).lower() not in ("0", "1", "true", "false", "on", "off"):
            raise ValidationFailed(
                "exclude_flagged must be 1 or 0.", fields={"exclude_flagged": ["Use 1 (exclude) or 0."]}
            )
        params["exclude_flagged"] = str(exclude_flagged).lower() in ("1", "true", "on")
    if min_seconds not in (None, ""):
        try:
            seconds = float(min_seconds)
        except (TypeError, ValueError):
            seconds = math.nan
        if not 0 <= seconds <= 3600:
            raise ValidationFailed(
                "min_seconds must be a number of seconds from 0 to 3600.",
                fields={"min_seconds": ["A number of seconds from 0 to 3600."]},
            )
        params["min_seconds"] = seconds
    return params


def _report_of(run: Run, candidate: Adapter, inp: ReportInput) -> Report:
    report = report_from_input(inp)
    run_ref = RunRef(id=run.pk, name=run.name, project=run.project.slug)
    return dataclasses.replace(report, run=run_ref, lineage=_lineage(run, candidate, report))


def report_build(
    *,
    run: Run,
    candidate: Adapter | None = None,
    baseline: Adapter | None = None,
    study: Any = None,
    exclude_raters_below: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    exclude_flagged: bool = False,
    min_seconds: float = DEFAULT_MIN_SECONDS,
) -> Report:
    """The comparison report of a run. Defaults: the run's baseline and first candidate, all the
    run's studies. ``exclude_flagged`` leaves out the raters that rater quality flags (a rating
    under ``min_seconds`` counts as too fast)."""
    candidate, baseline = _resolve(run, candidate, baseline)
    inp = _report_input(
        run=run,
        candidate=candidate,
        baseline=baseline,
        study=study,
        exclude_raters_below=exclude_raters_below,
        resamples=resamples,
        exclude_flagged=exclude_flagged,
        min_seconds=min_seconds,
    )
    return _report_of(run, candidate, inp)


class VerdictOutcome(TypedDict):
    decision: str
    why: str
    gates: list[GateResult]
    policy: Policy


def report_with_verdict(*, report: Report, policy: Policy) -> VerdictOutcome:
    decision, results = gate_rules.verdict_decide(report, policy)
    why = gate_rules.verdict_why(decision, list(results), report.candidate_label)
    return {"decision": decision, "why": why, "gates": results, "policy": policy}


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
    exclude_flagged: bool = False,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    actor: Any = None,
) -> Verdict:
    """Compute the report, decide it under the policy (the project's default if None), and store the
    verdict with a canonical snapshot of its inputs and a content hash. Audited."""
    candidate, baseline = _resolve(run, candidate, baseline)
    policy = policy or default_policy_for(project=run.project, actor=actor)
    if policy.project_id != run.project_id:
        raise ValidationFailed("The gate policy belongs to another project.")
    inp = _report_input(
        run=run,
        candidate=candidate,
        baseline=baseline,
        study=study,
        exclude_raters_below=exclude_raters_below,
        resamples=DEFAULT_RESAMPLES,
        exclude_flagged=exclude_flagged,
        min_seconds=min_seconds,
    )
    report = _report_of(run, candidate, inp)
    outcome = report_with_verdict(report=report, policy=policy.parsed)
    snapshot = snapshot_build(
        inp=inp,
        policy=policy.parsed,
        report=report.to_dict(),
        decision=outcome["decision"],
        gates=outcome["gates"],
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
                "excluded_raters": [g.rater for g in report.exclusion.excluded] if report.exclusion else [],
                "exclude_raters_below": exclude_raters_below,
                "exclude_flagged": exclude_flagged,
                "excluded_flagged_raters": [r.rater for r in report.rater_quality.excluded]
                if report.rater_quality and exclude_flagged
                else [],
            },
        )
    return verdict


@dataclass(frozen=True, slots=True)
class Reopened:
    """A frozen verdict recomputed from its snapshot.

    ``status``: "identical" (every stored number and the decision reproduced), "changed"
    (``changes`` names each value that differs, stored and recomputed) or "incomplete" (the snapshot
    lacks what ``missing`` names, so nothing was recomputed). ``gone`` names the snapshot's inputs
    that are no longer in the database: the snapshot still holds them, so they do not stop a
    recomputation, but the verdict can no longer be traced to live rows."""

    hash_ok: bool
    status: str
    decision: str | None
    changes: tuple[Change, ...] = ()
    missing: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    report: Report | None = None
    gates: tuple[GateResult, ...] = ()

    @property
    def reproduced(self) -> bool:
        return self.status == "identical"

    def to_dict(self) -> dict[str, Any]:
        """The API's form: the outcome and what differs or is missing, not the recomputed report."""
        return {
            "hash_ok": self.hash_ok,
            "reproduced": self.reproduced,
            "status": self.status,
            "decision": self.decision,
            "changes": [c.to_dict() for c in self.changes],
            "missing": list(self.missing),
            "gone": list(self.gone),
        }


def verdict_reopen(verdict: Verdict) -> Reopened:
    """Recompute the report and decision from the snapshot alone and say what, if anything, differs
    from what was frozen, or what the snapshot lacks."""
    snapshot = verdict.snapshot
    hash_ok = content_hash(snapshot) == verdict.content_hash
    missing = snapshot_missing(snapshot)
    if missing:
        return Reopened(hash_ok=hash_ok, status="incomplete", decision=None, missing=tuple(missing))
    stored = snapshot_read(snapshot)
    report = report_from_input(stored.inp)
    # run and lineage came from the database at freeze time, not from the rows, and schema names the
    # stored format: all three are kept as stored.
    kept = {key: stored.report[key] for key in ("schema", "run", "lineage") if key in stored.report}
    # Sections added since the snapshot was frozen are not in it: nothing to compare them with.
    added = [key for key in ADDED_SECTIONS if key not in stored.report]
    decision, results = gate_rules.verdict_decide(report, stored.policy)
    # Compared as the snapshot would store it (JSON: sorted keys, lists for tuples).
    recomputed = {k: v for k, v in report.to_dict().items() if k not in added}
    fresh = canonical({"report": {**recomputed, **kept}, "decision": decision, "gates": results})
    changes = report_changes(
        {"report": stored.report, "decision": stored.decision, "gates": stored.gates},
        {"report": fresh["report"], "decision": fresh["decision"], "gates": fresh["gates"]},
    )
    return Reopened(
        hash_ok=hash_ok,
        status="changed" if changes else "identical",
        decision=decision,
        changes=tuple(changes),
        gone=tuple(snapshot_inputs_gone(inputs=snapshot["inputs"])),
        report=report,
        gates=tuple(fresh["gates"]),
    )


REPORT_CACHE = "reports"
"""The cache alias built reports live in (settings.CACHES): shared by the web processes and the
workers, since a worker builds what the page then shows."""
BUILD_TIMEOUT = 1800  # seconds a "building" marker holds: past this a lost build may start again


def _report_cache() -> Any:
    from django.core.cache import caches

    return caches[REPORT_CACHE]


@dataclass(frozen=True, slots=True)
class ReportKey:
    """Where a report's build is cached: project, run, parameters and the hash of its input rows.
    New or edited ratings, scores or outputs change the hash, so a stale report is never found."""

    key: str
    inp: ReportInput
    candidate: Adapter

    @property
    def building(self) -> str:
        return f"{self.key}:building"

    @property
    def failed(self) -> str:
        return f"{self.key}:failed"


def _digest(h: Any, value: Any) -> None:
    """Feed ``value`` to the hash: numpy columns by their bytes, dataclasses field by field, mappings
    in key order, anything else as JSON. Equal inputs give equal digests and any changed value a
    different one. It runs on every page view: hashing the rating columns directly took 0.08 s
    for 100k ratings where their snapshot JSON form (``snapshots.rows_dump``) took 4 s."""
    if isinstance(value, np.ndarray):
        h.update(f"nd:{value.dtype.str}:{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            h.update(f"field:{f.name}".encode())
            _digest(h, getattr(value, f.name))
    elif isinstance(value, dict):
        h.update(f"map:{len(value)}".encode())
        for key in sorted(value, key=repr):
            h.update(f"key:{key!r}".encode())
            _digest(h, value[key])
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


def report_input_hash(inp: ReportInput) -> str:
    """SHA-256 of everything a report is computed from: the input rows and every parameter of
    the ``ReportInput`` (new parameters are included without a change here)."""
    h = hashlib.sha256(f"report-input:v{SCHEMA_VERSION}".encode())
    _digest(h, inp)
    return h.hexdigest()


def report_key(
    *, run: Run, candidate: Adapter | None = None, baseline: Adapter | None = None, **options: Any
) -> ReportKey:
    """Fetch the report's input rows (cheap next to the statistics) and name its cache entry.
    ``options`` are ``report_build``'s other parameters (``exclude_raters_below``, ...)."""
    candidate, baseline = _resolve(run, candidate, baseline)
    inp = _report_input(
        run=run,
        candidate=candidate,
        baseline=baseline,
        study=None,
        resamples=DEFAULT_RESAMPLES,
        **{"exclude_raters_below": None, **options},
    )
    key = (
        f"report:v{SCHEMA_VERSION}:p{run.project_id}:r{run.pk}:c{candidate.pk}:b{baseline.pk}"
        f":{report_input_hash(inp)}"
    )
    return ReportKey(key=key, inp=inp, candidate=candidate)


def _last_build_key(run: Run) -> str:
    return f"report-build-seconds:r{run.pk}"


def _build_and_store(run: Run, found: ReportKey) -> Report:
    started = time.monotonic()
    report = _report_of(run, found.candidate, found.inp)
    cache = _report_cache()
    cache.set(found.key, report)
    cache.set(_last_build_key(run), round(time.monotonic() - started, 2))
    cache.delete_many([found.building, found.failed])
    return report


def report_cached(
    *, run: Run, candidate: Adapter | None = None, baseline: Adapter | None = None, **options: Any
) -> Report:
    """``report_build`` through the cache: the stored build for exactly these input rows and
    parameters, else built now (in the caller) and stored. The page, its plots and exports, the
    API and the build task all go through here."""
    found = report_key(run=run, candidate=candidate, baseline=baseline, **options)
    report = _report_cache().get(found.key)
    if report is None:
        report = _build_and_store(run, found)
    return report


def report_plot_png(
    *, run: Run, name: str, candidate: Adapter | None = None, baseline: Adapter | None = None, **options: Any
) -> bytes:
    """A plot of the report (``plots.REPORT_PLOTS[name]``) as PNG, cached beside the report under
    the same key, so a page's images are drawn once per input as well."""
    from evalhub.reports.plots import REPORT_PLOTS

    found = report_key(run=run, candidate=candidate, baseline=baseline, **options)
    cache = _report_cache()
    png = cache.get(f"{found.key}:plot:{name}")
    if png is None:
        report = cache.get(found.key) or _build_and_store(run, found)
        png = REPORT_PLOTS[name](report)
        cache.set(f"{found.key}:plot:{name}", png)
    return png


@dataclass(frozen=True, slots=True)
class ReportState:
    """Where a report's build stands: "ready" (``report`` is set), "building" (since ``started_at``,
    a Unix time; ``expected_seconds`` is the run's last build time, if any) or "failed" (``error``)."""

    state: str
    key: str
    report: Report | None = None
    started_at: float | None = None
    expected_seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ready": self.state == "ready",
            "started_at": self.started_at,
            "elapsed_seconds": round(time.time() - self.started_at, 1) if self.started_at else None,
            "expected_seconds": self.expected_seconds,
            "error": self.error,
        }


def report_state(
    *,
    run: Run,
    candidate: Adapter | None = None,
    baseline: Adapter | None = None,
    start: bool = False,
    **options: Any,
) -> ReportState:
    """The cached report if it is built; otherwise, with ``start``, enqueue its build (once: a
    marker in the cache stops a second build of the same key while one runs) and say it is
    building. With tasks running in process (no broker) the build runs here, in the caller."""
    from evalhub.reports.tasks import build_report

    found = report_key(run=run, candidate=candidate, baseline=baseline, **options)
    cache = _report_cache()
    report = cache.get(found.key)
    if report is not None:
        return ReportState(state="ready", key=found.key, report=report)
    error = cache.get(found.failed)
    if error is not None and not start:
        return ReportState(state="failed", key=found.key, error=error)
    expected = cache.get(_last_build_key(run))
    if start and cache.add(found.building, time.time(), BUILD_TIMEOUT):
        cache.delete(found.failed)
        kwargs = {
            "run_id": run.pk,
            "candidate_id": found.inp.candidate_id,
            "baseline_id": found.inp.baseline_id,
            "options": options,
            "key": found.key,
        }
        # Enqueued at once, not on commit: this request writes no rows the task must wait for.
        # In process (no broker) the build has run by now: answer with its outcome.
        build_report.delay(**kwargs)
        report = cache.get(found.key)
        if report is not None:
            return ReportState(state="ready", key=found.key, report=report)
        error = cache.get(found.failed)
        if error is not None:
            return ReportState(state="failed", key=found.key, error=error)
    started = cache.get(found.building)
    if started is None:
        return ReportState(state="missing", key=found.key, expected_seconds=expected)
    return ReportState(state="building", key=found.key, started_at=started, expected_seconds=expected)


def report_build_for_cache(
    *, run_id: int, candidate_id: int, baseline_id: int, options: dict[str, Any], key: str
) -> None:
    """The build task's body: build and cache the report unless it is there already. The rows are
    fetched again here, so what is cached is keyed by the rows it was computed from (if ratings
    arrived since the request, the page's next poll asks for the newer key)."""
    run = Run.objects.select_related("project").filter(pk=run_id).first()
    if run is None:
        _report_cache().delete(f"{key}:building")
        return
    found = report_key(
        run=run,
        candidate=Adapter.objects.get(pk=candidate_id),
        baseline=Adapter.objects.get(pk=baseline_id),
        **options,
    )
    if _report_cache().get(found.key) is None:
        _build_and_store(run, found)
    _report_cache().delete(f"{key}:building")


def report_build_failed(*, key: str, error: str) -> None:
    """Record a build that gave up, so the page says so instead of waiting for ever."""
    cache = _report_cache()
    cache.set(f"{key}:failed", error, BUILD_TIMEOUT)
    cache.delete(f"{key}:building")
