"""A run over the shipped fixture model, its four adapters and a subset of the fixture suites."""

from __future__ import annotations

import json

import pytest

from evalhub.runs.models import Output, RunStatus
from evalhub.runs.services import run_create, run_start
from tests.conftest import FIXTURE_MODELS, FIXTURE_SUITES
from tests.runs.conftest import make_suite_version

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_completion_hooks"),
    pytest.mark.skipif(not (FIXTURE_MODELS / "base" / "config.json").is_file(), reason="fixture models not built"),
]


def rows(name: str, count: int) -> list[dict]:
    lines = (FIXTURE_SUITES / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:count]]


def test_a_run_over_the_fixture_suites_and_adapters_completes(project, fixture_adapters, settings):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 16
    cases = rows("summaries.jsonl", 6) + rows("adversarial.jsonl", 4)
    version = make_suite_version(project, [row["input"] for row in cases], name="fixture-subset")
    baseline = fixture_adapters["summariser-v1"]
    candidates = [a for name, a in fixture_adapters.items() if name != "summariser-v1"]
    run = run_create(project=project, suite_version=version, base_model=baseline.base_model,
                     adapters=candidates, baseline=baseline, generation_config={"max_new_tokens": 24})
    run = run_start(run=run)

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.done == run.total == 10 * 4 == Output.objects.filter(run=run).count()
    for ra in run.run_adapters.all():
        assert ra.sanity["ok"] and ra.sanity["max_logit_delta"] > 0
    texts = {a.name: Output.objects.get(run=run, adapter=a, case__key="c0").text for a in fixture_adapters.values()}
    assert len(set(texts.values())) > 1, texts  # the adapters really differ
