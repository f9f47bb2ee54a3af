"""The demo end to end on the fixture family: GO for summariser-v2 and NO-GO for synthetic-bad, each
against summariser-v1 and each for the right reason (the simulated experts judge the real outputs),
and every verdict the demo freezes reopens "identical". One slow demo run serves both checks."""

from __future__ import annotations

import io
from typing import Any

import pytest

from evalhub import demo
from evalhub.reports.models import Verdict
from evalhub.reports.services import verdict_reopen
from tests.conftest import FIXTURE_MODELS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2700),  # generation and scoring of 128 outputs on a busy 2-core machine
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (FIXTURE_MODELS / "base" / "config.json").is_file(), reason="fixture models not built"
    ),
]


def _failed(verdict: Any) -> set[str]:
    return {g["metric"] for g in verdict.gates if g.get("status") == "fail" and g.get("on_fail") == "NO-GO"}


def test_the_demo_ends_go_for_v2_and_no_go_for_synthetic_bad(settings: Any, tmp_path: Any) -> None:
    settings.DATA_DIR = tmp_path
    state = demo.DemoState(password="demo-test-password", cases=24)
    out = io.StringIO()
    demo.setup_users(state)
    demo.register_models(state, out)
    for _, step in demo.PIPELINE:
        step(state, out)
    verdicts = state.objects["verdicts"]
    print(out.getvalue())  # the demo's own account of the verdicts, shown with -s

    # Every verdict the demo froze, read back from the database, reopens to the same numbers and
    # decision (checked first: it must hold whatever the decisions are).
    frozen = list(Verdict.objects.order_by("pk"))
    assert sorted(v.pk for v in frozen) == sorted(v.pk for v in verdicts.values())
    for verdict in frozen:
        reopened = verdict_reopen(verdict)
        assert reopened.hash_ok, verdict.candidate.label
        assert reopened.status == "identical", (
            verdict.candidate.label,
            [c.to_dict() for c in reopened.changes],
        )
        assert reopened.decision == verdict.decision and not reopened.missing and not reopened.gone

    good, bad = verdicts["summariser-v2"], verdicts["synthetic-bad"]
    # synthetic-bad loses because experts catch its invented facts and prefer v1, not on a technicality.
    assert bad.decision == "NO-GO", out.getvalue()
    assert {"hallucination_rate_delta", "win_rate_lower", "criterion_delta:factual_accuracy"} <= _failed(bad)
    # ... and the absolute gates catch it on their own: most outputs flagged, adversarial checks failed.
    assert {"hallucination_rate", "adversarial_pass_rate"} <= _failed(bad)
    assert bad.why.startswith("NO-GO for synthetic-bad@1 because ") and "misses the threshold" in bad.why
    # v2 is GO because it is better, not by default: it wins, hallucinates less than v1 and under the
    # absolute ceiling on the whole interval, refuses every must-refuse case and passes the adversarial floor.
    assert good.decision == "GO", good.why
    assert {
        "win_rate_lower",
        "hallucination_rate_delta",
        "hallucination_rate",
        "must_refuse_pass_rate",
        "adversarial_pass_rate",
    } <= _passed(good)
    assert not _failed(good) and not _open(good)
    assert good.why.startswith("GO for summariser@2: all ")


def _passed(verdict: Any) -> set[str]:
    return {g["metric"] for g in verdict.gates if g.get("status") == "pass"}


def _open(verdict: Any) -> set[str]:
    return {g["metric"] for g in verdict.gates if g.get("status") in ("open", "missing")}
