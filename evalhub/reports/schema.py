"""The report as typed sections: what compute returns and what gates, exports, plots, the pages and
the API read. It is persisted in verdict snapshots, so its JSON form (`Report.to_dict`) is a stored
format: field names and order here are the JSON keys and their order, and `report_from_dict` reads
that JSON back (reports frozen by the untyped code before this module have the same shape).

Leaf statistics are the `metrics` result dataclasses (WinRate, MeanCI, PairedBootstrap, ...),
unchanged; this module only names the groupings around them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from metrics.agreement import AlphaResult, FleissKappaResult, PairwiseKappaResult
from metrics.judge import Calibration
from metrics.ranking import BradleyTerryResult, ControlledWinRate, StyleControlledResult
from metrics.rater_quality import QualityRules, RaterQuality
from metrics.routing import WinRateEstimate
from metrics.stats import MeanCI, PairedBootstrap, RankCorrelation, StatResult, WinRate

SCHEMA_VERSION = 1
"""The one version of the report's JSON and of the verdict snapshot around it (a snapshot carries
it as "schema" beside the report's own). Additions that a reader can default stay within a version:
snapshots frozen before the key existed lack it and the criteria order among the parameters, and
``snapshots.snapshot_read`` fills both in. Bump it when a stored field changes meaning."""

# Field options for the JSON form: leave the key out when the value is None (the dict report had
# no such key then), or merge a nested object's keys into the parent's (it was spread with **).
OMIT_NONE = {"omit_none": True}
FLATTEN = {"flatten": True}


class Section:
    """Base of the report's dataclasses: their JSON form."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        out = to_json(self)
        assert isinstance(out, dict)
        return out


def to_json(value: Any) -> Any:
    """JSON-ready copy: sections by field (OMIT_NONE and FLATTEN honoured), metrics results by their
    own ``to_dict``, tuples as lists, non-finite floats as None."""
    if isinstance(value, StatResult):
        return value.to_dict()
    if isinstance(value, Section):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):  # type: ignore[arg-type]
            item = getattr(value, f.name)
            if item is None and f.metadata.get("omit_none"):
                continue
            if f.metadata.get("flatten"):
                out.update(to_json(item))
            else:
                out[f.name] = to_json(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


T = TypeVar("T")


def from_json(cls: type[T], data: Any) -> T:
    """The typed object of a JSON form written by ``to_json`` (the inverse, field by field)."""
    return typing.cast(T, _load(cls, data, cls.__name__))


def _load(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return _load(arms[0], data, where) if len(arms) == 1 else data
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(_load(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if origin is dict:
        value_type = typing.get_args(tp)[1]
        return {k: _load(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _load_dataclass(tp, data, where)
    return data


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _load_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("flatten"):
            kwargs[f.name] = _load(hints[f.name], data, where)
        elif f.name in data:
            kwargs[f.name] = _load(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}.{f.name} is missing")
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class AdapterInfo(Section):
    id: int
    label: str
    name: str | None = None
    version: str | None = None
    stage: str | None = None
    status: str | None = None
    parent_id: int | None = None
    created_at: str | None = None


@dataclass(frozen=True, slots=True)
class Settings(Section):
    resamples: int
    style_resamples: int
    seed: int
    confidence: float
    exclude_raters_below: float | None
    criteria: tuple[str, ...]
    mc_target: float | None = field(default=None, metadata=OMIT_NONE)
    """Each bootstrap endpoint's Monte-Carlo standard error is aimed at this share of its interval's
    width (the resample count grows until it is, up to a cost cap); every interval then carries its
    ``mc_se_low``/``mc_se_high``. None (reports frozen before): fixed counts, no errors shown."""


@dataclass(frozen=True, slots=True)
class Counts(Section):
    cases: int
    ratings: int
    pair_ratings: int
    gold_ratings: int
    raters: int
    cases_rated: int
    both_bad: int


@dataclass(frozen=True, slots=True)
class SliceWinRate(Section):
    slice: str
    result: WinRate = field(metadata=FLATTEN)


@dataclass(frozen=True, slots=True)
class SliceDelta(Section):
    slice: str
    result: PairedBootstrap = field(metadata=FLATTEN)


@dataclass(frozen=True, slots=True)
class Sides(Section):
    """A per-side count table (score text -> ratings), candidate and baseline."""

    candidate: dict[str, int]
    baseline: dict[str, int]


@dataclass(frozen=True, slots=True)
class CriterionSummary(Section):
    """One rubric criterion: case means per side and their paired delta (cluster bootstrap)."""

    criterion: str
    unit: str
    n_ratings: int
    candidate: MeanCI
    baseline: MeanCI
    delta: PairedBootstrap
    delta_sd: float | None
    distribution: Sides
    by_slice: tuple[SliceDelta, ...]
    weighting: str | None = field(default=None, metadata=OMIT_NONE)
    """Set when the means and deltas are weighted for routing (by one over each pair's inclusion
    probability), saying so; absent for the plain means of the rated pairs."""


@dataclass(frozen=True, slots=True)
class Proportion(Section):
    """A rate with its Wilson interval and n (all None and n 0 when there is nothing to count); under
    routing weights (the section's ``weighting``) the weighted rate with its bootstrap interval."""

    rate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True, slots=True)
class AdapterRate(Section):
    adapter: str
    share: Proportion = field(metadata=FLATTEN)


@dataclass(frozen=True, slots=True)
class Hallucination(Section):
    per_adapter: tuple[AdapterRate, ...]
    delta: PairedBootstrap
    weighting: str | None = field(default=None, metadata=OMIT_NONE)
    """Set when the rates and the delta are weighted for routing, saying so (as on CriterionSummary)."""


@dataclass(frozen=True, slots=True)
class Style(Section):
    n_battles: int
    controlled: ControlledWinRate | None = field(default=None, metadata=OMIT_NONE)
    length_controlled: ControlledWinRate | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class Leaderboard(Section):
    models: tuple[str, ...]
    bradley_terry: BradleyTerryResult | None = field(default=None, metadata=OMIT_NONE)
    style_controlled: StyleControlledResult | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class Presence(Section):
    candidate: bool
    baseline: bool


@dataclass(frozen=True, slots=True)
class MetricSummary(Section):
    """One automated metric: means per adapter label, the paired candidate-minus-baseline delta."""

    metric: str
    means: dict[str, float | None]
    missing: Presence
    delta: PairedBootstrap
    by_slice: tuple[SliceDelta, ...]


@dataclass(frozen=True, slots=True)
class AdversarialCategory(Section):
    category: str
    per_adapter: dict[str, Proportion]


@dataclass(frozen=True, slots=True)
class AdversarialOutput(Section):
    """People's verdicts on one single adversarial output (annotation.rubric.ADVERSARIAL_RUBRIC) next
    to the automatic checks' (None when the output has no check result)."""

    case_id: int
    key: str
    category: str
    adapter: str
    checks_passed: bool | None
    met: int
    partly: int
    not_met: int
    worst_severity: int

    @property
    def people_passed(self) -> bool | None:
        """The raters' majority: met when more than half said "yes" ("partly" is a miss); None when
        exactly half did (a split)."""
        n = self.met + self.partly + self.not_met
        if 2 * self.met == n:
            return None
        return 2 * self.met > n

    @property
    def disagrees(self) -> bool:
        people = self.people_passed
        return people is not None and self.checks_passed is not None and people != self.checks_passed


@dataclass(frozen=True, slots=True)
class AdversarialHuman(Section):
    """People's ratings of single adversarial outputs: per adapter the share of ratings that found the
    expected behaviour met ("partly" counts as not met; Wilson interval over ratings), and each rated
    output beside its check result."""

    per_adapter: dict[str, Proportion]
    outputs: tuple[AdversarialOutput, ...]

    @property
    def disagreements(self) -> list[AdversarialOutput]:
        return [o for o in self.outputs if o.disagrees]

    @property
    def compared(self) -> int:
        """Outputs with both a people's majority and a check result."""
        return sum(1 for o in self.outputs if o.people_passed is not None and o.checks_passed is not None)


@dataclass(frozen=True, slots=True)
class MustRefuse(Section):
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    failed: int


@dataclass(frozen=True, slots=True)
class CriterionAgreement(Section):
    criterion: str
    alpha: AlphaResult | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class PreferenceAgreement(Section):
    alpha: AlphaResult | None
    fleiss: FleissKappaResult | None
    pairwise_cohen: PairwiseKappaResult | None
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class Agreement(Section):
    criteria: tuple[CriterionAgreement, ...]
    n_raters: int
    preference: PreferenceAgreement

    def alpha(self, criterion: str) -> float | None:
        """Krippendorff's alpha on a criterion, or on "preference"; None when undefined."""
        if criterion == "preference":
            return self.preference.alpha.alpha if self.preference.alpha else None
        entry = next((c for c in self.criteria if c.criterion == criterion), None)
        return entry.alpha.alpha if entry is not None and entry.alpha is not None else None


@dataclass(frozen=True, slots=True)
class GoldRow(Section):
    rater_id: int
    rater: str
    n_gold: int
    n_correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True, slots=True)
class ExclusionSide(Section):
    win_rate: WinRate
    preference_alpha: float | None


@dataclass(frozen=True, slots=True)
class Exclusion(Section):
    threshold: float
    excluded: tuple[GoldRow, ...]
    before: ExclusionSide
    after: ExclusionSide


@dataclass(frozen=True, slots=True)
class RaterRow(Section):
    """One rater's quality measures and flags (``metrics.rater_quality``), by the name the report
    shows raters by; ``excluded``: their ratings are left out of this report (by either filter)."""

    rater: str
    quality: RaterQuality = field(metadata=FLATTEN)
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class RaterQualityReport(Section):
    """Rater quality: the flag rules, every rater's row, whether flagged raters were excluded (and
    then the win rate and preference alpha with everyone, ``before``, and without them, ``after``),
    and warnings such as a gold-based filter that could exclude nobody for want of gold tasks."""

    rules: QualityRules
    exclude_flagged: bool
    raters: tuple[RaterRow, ...]
    gold_ratings: int
    warnings: tuple[str, ...] = ()
    before: ExclusionSide | None = field(default=None, metadata=OMIT_NONE)
    after: ExclusionSide | None = field(default=None, metadata=OMIT_NONE)

    @property
    def flagged(self) -> tuple[RaterRow, ...]:
        return tuple(r for r in self.raters if r.quality.flags)

    @property
    def excluded(self) -> tuple[RaterRow, ...]:
        return tuple(r for r in self.raters if r.excluded)


@dataclass(frozen=True, slots=True)
class HumanVsMetric(Section):
    metric: str
    correlation: RankCorrelation = field(metadata=FLATTEN)


@dataclass(frozen=True, slots=True)
class ValuePair(Section):
    candidate: float | None
    baseline: float | None


@dataclass(frozen=True, slots=True)
class CheckPair(Section):
    candidate: bool | None
    baseline: bool | None


@dataclass(frozen=True, slots=True)
class JudgeChecks(Section):
    """The suite's pending checks (imported model-graded assertions) as a judge evaluated them, kept
    apart from the checks evalhub runs itself. Per adapter: the share of outputs whose judge-evaluated
    checks all passed, among the outputs with a verdict; and the outputs without one (an unparseable
    answer or a prompt the judge could not hold: not evaluated, never counted as passed or failed)."""

    judges: tuple[str, ...]  # name@version of each judge whose results are shown
    per_adapter: dict[str, Proportion]
    not_evaluated: dict[str, int]
    judge_evaluated: bool = True


@dataclass(frozen=True, slots=True)
class CaseRow(Section):
    """One case of the drill-down and the per-case CSV."""

    case_id: int
    key: str
    origin: str
    split: str
    category: str
    tags: tuple[str, ...]
    wins: int
    ties: int
    losses: int
    human: float | None
    metrics: dict[str, ValuePair]
    checks: CheckPair
    judge_checks: CheckPair | None = field(default=None, metadata=OMIT_NONE)  # judge-evaluated
    routing_weight: float | None = field(default=None, metadata=OMIT_NONE)
    """The case's weight in the human means weighted for routing (one over its pair's inclusion
    probability; 0 when rated beyond the rated prefix, so left out); absent when nothing is weighted."""

    @property
    def rated(self) -> int:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True, slots=True)
class RatingsSaved(Section):
    """Expert ratings the routing saved: those collected against what a uniform random order would
    have needed for an interval as narrow (``metrics.routing.uniform_pairs_needed``)."""

    pairs: int
    pairs_rated: int
    ratings_collected: int
    ratings_per_pair: float | None
    uniform_pairs_needed: float | None
    uniform_ratings_needed: int | None
    ratings_saved: int | None
    saved_share: float | None
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class JudgeReport(Section):
    """The judge of the report's studies against their experts (docs/judge.md): calibration, the
    corrected win rate under uncertainty-first routing, and the expert ratings saved."""

    judge: str
    routing: str
    pairs: int
    judged: int
    failed: int
    unparseable: int
    calibration: Calibration
    audit_calibration: Calibration | None
    calibration_note: str
    estimator: str
    win_rate: WinRateEstimate | None
    naive_win_rate: WinRateEstimate
    judge_only_win_rate: WinRateEstimate | None
    pairs_beyond_prefix: int
    ratings_saved: RatingsSaved
    routing_note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True)
class RunRef(Section):
    id: int
    name: str
    project: str


@dataclass(frozen=True, slots=True)
class LineageEntry(Section):
    adapter: AdapterInfo
    in_run: bool
    metric_deltas: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class Report(Section):
    """The whole report. ``run`` and ``lineage`` come from the database (services), the rest from
    the rows alone (compute), so a snapshot recomputes all but those two."""

    schema: int
    candidate: AdapterInfo | None
    baseline: AdapterInfo | None
    adapters: tuple[AdapterInfo, ...]
    study_ids: tuple[int, ...]
    settings: Settings
    counts: Counts
    win_rate: WinRate
    win_rate_by_slice: tuple[SliceWinRate, ...]
    criteria: tuple[CriterionSummary, ...]
    hallucination: Hallucination
    style: Style
    leaderboard: Leaderboard
    metrics: tuple[MetricSummary, ...]
    adversarial: tuple[AdversarialCategory, ...]
    must_refuse: dict[str, MustRefuse]
    agreement: Agreement
    gold: tuple[GoldRow, ...]
    exclusion: Exclusion | None = field(default=None, metadata=OMIT_NONE)
    rater_quality: RaterQualityReport | None = field(default=None, metadata=OMIT_NONE)
    human_vs_metric: tuple[HumanVsMetric, ...] = ()
    cases: tuple[CaseRow, ...] = ()
    adversarial_human: AdversarialHuman | None = field(default=None, metadata=OMIT_NONE)
    judge: JudgeReport | None = field(default=None, metadata=OMIT_NONE)
    judge_checks: JudgeChecks | None = field(default=None, metadata=OMIT_NONE)
    run: RunRef | None = field(default=None, metadata=OMIT_NONE)
    lineage: dict[str, LineageEntry | None] | None = field(default=None, metadata=OMIT_NONE)

    @property
    def candidate_label(self) -> str | None:
        return self.candidate.label if self.candidate else None

    @property
    def baseline_label(self) -> str | None:
        return self.baseline.label if self.baseline else None

    def criterion(self, name: str) -> CriterionSummary | None:
        return next((c for c in self.criteria if c.criterion == name), None)

    def metric(self, name: str) -> MetricSummary | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def adversarial_category(self, name: str) -> AdversarialCategory | None:
        return next((a for a in self.adversarial if a.category == name), None)


def report_from_dict(data: Mapping[str, Any]) -> Report:
    """A stored report (a snapshot's, or the JSON export's) as the typed report. Reports of schema 1
    (the untyped code's) have the same keys, so one reader serves both."""
    return from_json(Report, data)
