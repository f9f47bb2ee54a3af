"""Fixtures for rating tests: a run with a baseline and a candidate, a study over it, raters who consented."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.services import consent_accept, study_create_from_run
from tests.annotation.factories import RunRows, rater_user, run_rows


@pytest.fixture
def rows(project: Any) -> RunRows:
    return run_rows(project, n_cases=6)


@pytest.fixture
def study(rows: RunRows) -> Any:
    return study_create_from_run(
        run=rows.run, name="Summaries: v2 vs v1", overlap=2, terms="Be fair.", seed=1
    )


@pytest.fixture
def raters(project: Any, study: Any) -> list[Any]:
    users = [rater_user(project, f"expert{i}") for i in range(3)]
    for user in users:
        consent_accept(study=study, rater=user)
    return users
