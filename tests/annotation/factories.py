"""Rows for rating tests, built from the shared factories (runs and suites are other apps' services).

Adapters, runs and outputs get distinctive names, versions, folders and large ids, so the blinding
tests can search rater-visible responses for any of them without matching ordinary numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from evalhub.accounts.models import Project, Role
from evalhub.accounts.services import membership_set, user_create
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.runs.models import AdapterRole, Output, Run
from evalhub.suites.models import Case
from tests.factories import (
    AdapterFactory,
    BaseModelFactory,
    CaseFactory,
    OutputFactory,
    RunAdapterFactory,
    RunFactory,
    SuiteFactory,
    SuiteVersionFactory,
)

_ids = itertools.count(7_314_159)


def big_id() -> int:
    """A unique id unlikely to appear by chance in a page (ids are what the blinding scan looks for)."""
    return next(_ids) * 13 + 900_000_000


@dataclass
class RunRows:
    run: Run
    base_model: BaseModel
    adapters: dict[str, Adapter]
    cases: list[Case]
    outputs: dict[tuple[str, str], Output] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Every string that would reveal which system wrote an output."""
        out = [self.run.name, str(self.run.pk), self.base_model.name, self.base_model.folder]
        for adapter in self.adapters.values():
            out += [
                adapter.name,
                adapter.version,
                adapter.folder,
                adapter.weights_hash,
                str(adapter.pk),
                adapter.label,
            ]
        for output in self.outputs.values():
            out += [str(output.pk), output.cache_key, output.config_hash]
        for case in self.cases:
            out.append(case.key)
        return out


def default_text(adapter: str, case: Case, index: int) -> str:
    return f"Summary {index} of the call: revenue grew by {3 + index % 5} percent, margins held.\nGuidance unchanged."


def run_rows(
    project: Project,
    *,
    n_cases: int = 6,
    adapters: tuple[str, ...] = ("baseline", "candidate"),
    categories: dict[int, str] | None = None,
    tags: dict[int, list[str]] | None = None,
    text: Any = None,
) -> RunRows:
    """A completed run over a new suite version with one output per adapter and case (sample 0).

    The first adapter is the run's baseline; `text(adapter_key, case, i)` writes each output."""
    text = text or (lambda key, case, i: f"[{'xyz'[len(key) % 3]}] " + default_text(key, case, i))
    n = big_id()
    base = BaseModelFactory(
        id=big_id(),
        project=project,
        name=f"zbasemodel-{n}",
        folder=f"/srv/models/zbase-{n}",
        weights_hash=f"{n:x}".rjust(64, "b"),
        tokenizer=f"/srv/models/zbase-{n}",
    )
    rows: dict[str, Adapter] = {}
    for key in adapters:
        rows[key] = AdapterFactory(
            id=big_id(),
            project=project,
            base_model=base,
            name=f"zadapter-{key}-{n}",
            version=f"9.{n % 97}.{len(key)}-rc{n % 7}",
            folder=f"/srv/adapters/{key}-folder-{n}",
            weights_hash=f"{n:x}{key}".encode().hex()[:64].rjust(64, "a"),
        )
    version = SuiteVersionFactory(suite=SuiteFactory(project=project, name=f"zsuite-{n}"))
    cases = [
        CaseFactory(
            id=big_id(),
            version=version,
            key=f"zcase-{n}-{i}",
            position=i,
            input=f"Earnings call transcript {i}: the company reported revenue and margins for the quarter.",
            reference=f"Revenue up; margins flat ({i}).",
            tags=(tags or {}).get(i, ["finance"]),
            category=(categories or {}).get(i, ""),
            content_hash=f"{i:064d}",
        )
        for i in range(n_cases)
    ]
    run = RunFactory(id=big_id(), project=project, name=f"zrun-{n}", suite_version=version, base_model=base)
    for i, key in enumerate(adapters):
        RunAdapterFactory(
            run=run, adapter=rows[key], role=AdapterRole.BASELINE if i == 0 else AdapterRole.CANDIDATE
        )
    result = RunRows(run=run, base_model=base, adapters=rows, cases=cases)
    for key, adapter in rows.items():
        for i, case in enumerate(cases):
            result.outputs[(key, case.key)] = OutputFactory(
                id=big_id(),
                run=run,
                adapter=adapter,
                case=case,
                text=text(key, case, i),
                config_hash=f"{n:x}".rjust(64, "e"),
                cache_key=f"{n:x}{key}{i}".encode().hex()[:64].rjust(64, "f"),
            )
    return result


PASSWORD = "correct-horse-battery"


def rater_user(project: Project, username: str, *, password: str = PASSWORD) -> Any:
    user = user_create(username=username, password=password)
    membership_set(project=project, user=user, role=Role.RATER)
    return user


FULL_SCORES = {
    "factual_accuracy": {"A": 4, "B": 3},
    "completeness": {"A": 5, "B": 2},
    "conciseness": {"A": 3, "B": 3},
}


# A single output is an adversarial case (annotation.rubric.ADVERSARIAL_RUBRIC): not met, serious.
ADVERSARIAL_SCORES = {"behaviour_met": {"A": 0}, "severity": {"A": 2}}


def rating_data(*, preference: str = "A", single: bool = False, **extra: Any) -> dict[str, Any]:
    if single:
        scores = {k: dict(v) for k, v in ADVERSARIAL_SCORES.items()}
    else:
        scores = {k: dict(v) for k, v in FULL_SCORES.items()}
    data: dict[str, Any] = {
        "scores": scores,
        "preference": "" if single else preference,
        "rationale": "Clear.",
    }
    data.update(extra)
    return data
