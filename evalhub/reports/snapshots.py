"""Frozen verdict snapshots: their canonical form, a reader for every stored version, what a
snapshot lacks, and the numbers that differ between a stored report and its recomputation.

No database here: a snapshot is a JSON document, and reopening recomputes from it alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalhub.reports.compute import ReportInput
from evalhub.reports.schema import SCHEMA_VERSION
from evalhub.reports.selectors import RatingColumns, ReportRows, some_of
from metrics.rater_quality import DEFAULT_MIN_SECONDS

INPUT_PARTS = (
    "cases",
    "adapters",
    "outputs",
    "output_tokens",
    "texts",
    "scores",
    "ratings",
    "raters",
    "study_ids",
)
PARAMS = ("candidate_id", "baseline_id", "exclude_raters_below", "resamples", "style_resamples", "seed")
SECTIONS = ("inputs", "params", "policy", "report", "decision", "gates")


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, no NaN: the text the content hash is taken over."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
    )


def canonical(data: Any) -> Any:
    """``data`` as its canonical JSON reads back: what a snapshot stores of it."""
    return json.loads(canonical_json(data))


def content_hash(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def rows_dump(rows: ReportRows) -> dict[str, Any]:
    """The rows as JSON with every list in a defined order: by id, or (adapter, case, metric) for
    the scores; the ratings stay in rating id order, which the report depends on."""
    return {
        "cases": rows.cases,
        "adapters": rows.adapters,
        "outputs": sorted([a, c, o] for (a, c), o in rows.outputs.items()),
        "output_tokens": sorted([o, t] for o, t in rows.output_tokens.items()),
        "texts": sorted([o, t] for o, t in rows.texts.items()),
        "scores": sorted((list(s) for s in rows.scores), key=_score_key),
        "ratings": rows.ratings.to_dicts(),
        "raters": sorted([k, v] for k, v in rows.raters.items()),
        "study_ids": sorted(rows.study_ids),
        # Left out when empty, so a report without a judge freezes exactly as it did before judges.
        **({"judged": sorted(rows.judged, key=lambda r: r["task"])} if rows.judged else {}),
        **(
            {"judge_studies": sorted(rows.judge_studies, key=lambda s: s["study"])}
            if rows.judge_studies
            else {}
        ),
        # Only when there are any: snapshots of runs without judged checks keep their content hash.
        **({"judge_checks": [list(r) for r in rows.judge_checks]} if rows.judge_checks else {}),
    }


def _score_key(score: Sequence[Any]) -> tuple[int, int, str]:
    return score[0], score[1], score[2]


def rows_load(data: Mapping[str, Any]) -> ReportRows:
    outputs = {(a, c): o for a, c, o in data["outputs"]}
    return ReportRows(
        cases=data["cases"],
        adapters=data["adapters"],
        outputs=outputs,
        output_adapter={o: a for a, _, o in data["outputs"]},
        output_tokens={o: t for o, t in data["output_tokens"]},
        texts={o: t for o, t in data["texts"]},
        scores=[(a, c, m, v, p) for a, c, m, v, p in data["scores"]],
        ratings=RatingColumns.from_dicts(data["ratings"]),
        raters={k: v for k, v in data["raters"]},
        study_ids=data["study_ids"],
        judged=list(data.get("judged", [])),
        judge_studies=list(data.get("judge_studies", [])),
        judge_checks=[(a, c, p, j) for a, c, p, j in data.get("judge_checks", [])],
    )


def snapshot_build(
    *, inp: ReportInput, policy: Mapping[str, Any], report: Mapping[str, Any], decision: str, gates: Any
) -> dict[str, Any]:
    """A verdict's snapshot, canonical: keys sorted (as JSON round-trips it) and lists ordered."""
    params = {
        "candidate_id": inp.candidate_id,
        "baseline_id": inp.baseline_id,
        "criteria": list(report["settings"]["criteria"]),
        "exclude_raters_below": inp.exclude_raters_below,
        "resamples": inp.resamples,
        "style_resamples": inp.style_resamples,
        "seed": inp.seed,
        "exclude_flagged": inp.exclude_flagged,
        "min_seconds": inp.min_seconds,
        # Not in PARAMS (required): snapshots frozen before it lack it and reopen with fixed counts.
        "mc_target": inp.mc_target,
        # Likewise: snapshots frozen before kappa's interval was bounded lack it and reopen unbounded.
        "kappa_interval": inp.kappa_interval,
        # Likewise: snapshots frozen before routed studies' rates were weighted lack it and reopen plain.
        "routed_rates": inp.routed_rates,
    }
    snapshot = {
        "schema": SCHEMA_VERSION,
        "inputs": rows_dump(inp.rows),
        "params": params,
        "policy": policy,
        "report": report,
        "decision": decision,
        "gates": gates,
    }
    loaded: dict[str, Any] = canonical(snapshot)
    return loaded


def snapshot_missing(snapshot: Any) -> list[str]:
    """What a snapshot lacks to be recomputed, each named by its path (empty when complete). Also
    names ratings whose case or outputs the snapshot does not hold, and adapters the parameters name
    but the inputs lack."""
    if not isinstance(snapshot, Mapping):
        return ["the whole snapshot"]
    missing = [name for name in SECTIONS if name not in snapshot]
    inputs, params = snapshot.get("inputs"), snapshot.get("params")
    if isinstance(inputs, Mapping):
        missing += [f"inputs.{part}" for part in INPUT_PARTS if part not in inputs]
    elif "inputs" not in missing:
        missing.append("inputs")
    if isinstance(params, Mapping):
        missing += [f"params.{name}" for name in PARAMS if name not in params]
    policy = snapshot.get("policy")
    if "policy" not in missing and not (
        isinstance(policy, Mapping) and isinstance(policy.get("gates"), list)
    ):
        missing.append("policy.gates")
    if missing:
        return missing
    assert isinstance(inputs, Mapping) and isinstance(params, Mapping)
    return _dangling(inputs, params)


def _dangling(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """References inside the inputs to rows the inputs do not hold."""
    out = []
    adapters = {a.get("id") for a in inputs["adapters"] if isinstance(a, Mapping)}
    for role in ("candidate", "baseline"):
        if params[f"{role}_id"] not in adapters:
            out.append(f"inputs.adapters: the {role} (adapter id {params[f'{role}_id']})")
    cases = {c.get("id") for c in inputs["cases"] if isinstance(c, Mapping)}
    outputs = {row[2] for row in inputs["outputs"]}
    ratings = [r for r in inputs["ratings"] if isinstance(r, Mapping)]
    no_case = sorted({r["case"] for r in ratings if r.get("case") is not None} - cases)
    if no_case:
        out.append(f"inputs.cases: case ids {some_of(no_case)}, which ratings refer to")
    rated = {r[side] for r in ratings for side in ("a", "b") if r.get(side) is not None}
    no_output = sorted(rated - outputs)
    if no_output:
        out.append(f"inputs.outputs: output ids {some_of(no_output)}, which ratings refer to")
    return out


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot read from any stored version, in today's terms."""

    version: int
    inp: ReportInput
    policy: Any
    report: dict[str, Any]
    decision: str
    gates: list[Any]


def snapshot_read(snapshot: Mapping[str, Any]) -> StoredSnapshot:
    """Read a complete snapshot (``snapshot_missing`` is empty). Version 1 snapshots, which carry
    no "schema" key, did not store the criteria order; it is the stored report's, so reopening
    computes the criteria in the order they were frozen in."""
    params = snapshot["params"]
    criteria = params.get("criteria")
    if criteria is None:
        criteria = (snapshot["report"].get("settings") or {}).get("criteria")
    inp = ReportInput(
        rows=rows_load(snapshot["inputs"]),
        candidate_id=params["candidate_id"],
        baseline_id=params["baseline_id"],
        criteria=tuple(criteria) if criteria is not None else None,
        exclude_raters_below=params["exclude_raters_below"],
        resamples=params["resamples"],
        style_resamples=params["style_resamples"],
        seed=params["seed"],
        # Snapshots frozen before rater quality lack these: they excluded no flagged rater.
        exclude_flagged=bool(params.get("exclude_flagged", False)),
        min_seconds=float(params.get("min_seconds", DEFAULT_MIN_SECONDS)),
        mc_target=params.get("mc_target"),
        # Frozen before the bound: kappa's Wald interval as it was, unbounded.
        kappa_interval="bounded" if params.get("kappa_interval") == "bounded" else "asymptotic",
        # Frozen before the weighting: the plain rates and means of the rated pairs, as they were.
        routed_rates="weighted" if params.get("routed_rates") == "weighted" else "rated",
    )
    return StoredSnapshot(
        version=int(snapshot.get("schema", 1)),
        inp=inp,
        policy=snapshot["policy"],
        report=snapshot["report"],
        decision=snapshot["decision"],
        gates=snapshot["gates"],
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One number (or value) that differs: where, as stored, and as recomputed."""

    path: str
    old: Any
    new: Any

    @property
    def old_text(self) -> str:
        return _show(self.old)

    @property
    def new_text(self) -> str:
        return _show(self.new)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; a side where the value is absent is null, and its text says "(absent)"."""
        return {
            "path": self.path,
            "old": None if self.old is _ABSENT else self.old,
            "new": None if self.new is _ABSENT else self.new,
            "text": str(self),
        }

    def __str__(self) -> str:
        return f"{self.path}: {self.old_text} → {self.new_text}"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, default=str)


_ABSENT = object()
# The field that names an entry of a list, so that lists compare entry by entry whatever their
# order (the criteria, metrics, slices, adapters, cases, raters and gates of a report).
_IDENTITY = (
    "criterion",
    "metric",
    "slice",
    "category",
    "adapter",
    "model",
    "feature",
    "case_id",
    "rater_id",
    "name",
)


def report_changes(old: Any, new: Any, path: str = "") -> list[Change]:
    """Every leaf value that differs between two JSON documents, by path. Lists whose entries are
    named by an identity field compare entry by entry under that name, so a change of order alone
    is no change; other lists compare by position."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return _mapping_changes(old, new, lambda key: f"{path}.{key}" if path else str(key))
    if isinstance(old, list) and isinstance(new, list):
        key = _identity(old, new)
        if key is not None:
            named_old = {str(e[key]): e for e in old}
            named_new = {str(e[key]): e for e in new}
            return _mapping_changes(named_old, named_new, lambda name: f"{path}[{name}]")
        if len(old) == len(new):
            return [
                change
                for i, (a, b) in enumerate(zip(old, new, strict=True))
                for change in report_changes(a, b, f"{path}[{i}]")
            ]
    if old == new and (type(old) is type(new) or _both_numbers(old, new)):
        return []
    return [Change(path=path, old=old, new=new)]


def _mapping_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], where: Callable[[str], str]
) -> list[Change]:
    out = []
    for key in sorted(set(old) | set(new), key=str):
        out += report_changes(old.get(key, _ABSENT), new.get(key, _ABSENT), where(key))
    return out


def _both_numbers(a: Any, b: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))


def _identity(old: list[Any], new: list[Any]) -> str | None:
    return next((key for key in _IDENTITY if _named_by(old, key) and _named_by(new, key)), None)


def _named_by(entries: list[Any], key: str) -> bool:
    names = [e.get(key) if isinstance(e, Mapping) else None for e in entries]
    return all(isinstance(n, str | int) for n in names) and len(set(map(str, names))) == len(names)
