"""The fixture judge: its training pairs, its exact prompt, batched judging, loading by folder or by
catalogue label, and that it judges held-out pairs better than chance."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from annotation.rubric import rubric_default, rubric_text
from evalhub import simulated_experts as experts
from evalhub.errors import ValidationFailed
from evalhub.generation.errors import GenerationError
from evalhub.judging.logprob import (
    JudgeContextError,
    LogprobJudge,
    PairToJudge,
    answer_token_ids,
    judge_prompt,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
MODELS = FIXTURES / "models"
JUDGE_DIR = MODELS / "judge"


def _load(name: str, path: Path) -> ModuleType:
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    return _load("corpus", FIXTURES / "corpus.py")


@pytest.fixture(scope="module")
def judge() -> LogprobJudge:
    return LogprobJudge.from_adapter(JUDGE_DIR, batch_size=8)


def test_judge_pairs_are_deterministic_flawed_and_drawn_from_held_out_entities(corpus):
    pairs = corpus.judge_pairs(corpus.SEED_JUDGE_HELDOUT, 40, corpus.HELDOUT_POOLS)
    assert pairs == corpus.judge_pairs(corpus.SEED_JUDGE_HELDOUT, 40, corpus.HELDOUT_POOLS)
    assert {p.flaw for p in pairs} == set(corpus.JUDGE_FLAWS)
    assert all(p.good != p.bad for p in pairs)
    training = corpus.judge_pairs(corpus.SEED_JUDGE, 40, corpus.TRAIN_POOLS)
    assert not {p.document for p in training} & {p.document for p in pairs}
    held_out_stems = set(corpus.HELDOUT_POOLS.stems)
    finance = [p for p in pairs if "earnings" in p.document.lower()]
    assert finance and all(any(stem in p.document for stem in held_out_stems) for p in finance)


def test_the_demo_experts_prefer_the_faithful_side_of_constructed_pairs(corpus):
    # The construction is only a fair test of the judge if the experts the demo uses agree with it.
    pairs = corpus.judge_pairs(corpus.SEED_JUDGE_HELDOUT, 100, corpus.HELDOUT_POOLS)
    votes = [
        experts.prefer(
            experts.judge(p.good, source=p.document, reference=p.reference),
            experts.judge(p.bad, source=p.document, reference=p.reference),
        )
        for p in pairs
    ]
    assert votes.count("A") >= 85
    assert votes.count("B") <= 3


def test_training_examples_are_the_judges_exact_prompt_and_answer_token_in_both_orders(corpus):
    build = _load("build_models", FIXTURES / "build_models.py")
    tok = build.PreTrainedTokenizerFast.from_pretrained(MODELS / "base")
    pair = corpus.judge_pairs(corpus.SEED_JUDGE, 1, corpus.TRAIN_POOLS)[0]
    (ab_ids, ab_target), (ba_ids, ba_target) = build.judge_examples(tok, [pair])
    rubric = rubric_text(rubric_default())
    assert tok.decode(ab_ids) == judge_prompt(
        rubric=rubric, case=pair.document, first=pair.good, second=pair.bad
    )
    assert tok.decode(ba_ids) == judge_prompt(
        rubric=rubric, case=pair.document, first=pair.bad, second=pair.good
    )
    first_better, second_better = answer_token_ids(tok)
    assert (ab_target, ba_target) == ([first_better], [second_better])


def test_the_judge_adapter_records_its_provenance_and_its_base_is_the_sibling_folder():
    config = json.loads((JUDGE_DIR / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "base"
    provenance = json.loads((JUDGE_DIR / "evalhub.json").read_text())
    assert (provenance["name"], provenance["version"], provenance["stage"]) == ("judge", "1", "judging")
    assert provenance["train_examples"] > 0 and provenance["seed"] and provenance["consent_reference"]


def test_from_adapter_names_the_judge_after_its_provenance_and_refuses_a_folder_without_base(judge, tmp_path):
    assert judge.name == "judge@1"
    orphan = tmp_path / "judge"
    shutil.copytree(JUDGE_DIR, orphan)
    with pytest.raises(GenerationError, match="neither a model folder nor a sibling"):
        LogprobJudge.from_adapter(orphan)
    with pytest.raises(GenerationError, match="not an adapter folder"):
        LogprobJudge.from_adapter(tmp_path)


def test_batched_judging_equals_one_prompt_at_a_time(judge, corpus):
    # Pairs of different lengths share a left-padded batch: padding must not change any probability.
    import torch

    rubric = rubric_text(rubric_default())
    pairs = [PairToJudge(p.document, p.good, p.bad) for p in corpus.judge_pairs(99, 5, corpus.HELDOUT_POOLS)]
    batched = judge.judge_pairs(pairs, rubric=rubric)
    for ab, ba in batched:
        for order in (ab, ba):
            ids = judge.tokenizer.encode(order.prompt)
            with torch.inference_mode():
                logits = judge.model(input_ids=torch.tensor([ids])).logits[0, -1]
            alone = torch.log_softmax(logits, -1)
            raw = json.loads(order.raw_output)
            assert raw["logprob_A"] == pytest.approx(float(alone[judge.answer_ids[0]]), abs=1e-4)
            assert raw["logprob_B"] == pytest.approx(float(alone[judge.answer_ids[1]]), abs=1e-4)
    single = judge.judge_pair(
        rubric=rubric, case=pairs[0].case, output_a=pairs[0].output_a, output_b=pairs[0].output_b
    )
    assert [o.prob_a for o in single] == pytest.approx([o.prob_a for o in batched[0]], abs=1e-5)


def test_judge_pairs_returns_a_pair_the_context_cannot_hold_as_its_refusal_and_judges_the_others(judge):
    long_case = "word " * 2000
    short, refused, other = judge.judge_pairs(
        [
            PairToJudge("short note.", "a.", "b."),
            PairToJudge(long_case, "a.", "b."),
            PairToJudge("n.", "b.", "a."),
        ],
        rubric="- Factual",
    )
    assert isinstance(refused, JudgeContextError)
    assert re.search(
        r"order ab: the judging prompt is \d+ tokens; the judge's context holds 1024", str(refused)
    )
    # The others are judged as they would be alone: the refused pair took no place in their batch.
    alone = judge.judge_pairs(
        [PairToJudge("short note.", "a.", "b."), PairToJudge("n.", "b.", "a.")], rubric="- Factual"
    )
    assert [o.prob_a for r in (short, other) for o in r] == pytest.approx(
        [o.prob_a for r in alone for o in r], abs=1e-5
    )


@pytest.mark.slow
def test_the_fixture_judge_prefers_the_faithful_summary_on_held_out_pairs(judge, corpus):
    rubric = rubric_text(rubric_default())
    pairs = corpus.judge_pairs(corpus.SEED_JUDGE_HELDOUT + 1, 40, corpus.HELDOUT_POOLS)
    shown = [(p, i % 2 == 0) for i, p in enumerate(pairs)]  # the faithful side first in half the pairs
    judged = judge.judge_pairs(
        [PairToJudge(p.document, *((p.good, p.bad) if first else (p.bad, p.good))) for p, first in shown],
        rubric=rubric,
    )
    right = 0
    for (_p, first), (ab, ba) in zip(shown, judged, strict=True):
        assert ab.prob_a is not None and ba.prob_a is not None  # the judge answers A or B
        prob_a = (ab.prob_a + ba.prob_a) / 2
        right += (prob_a > 0.5) == first
    assert right >= ACCURACY_FLOOR * len(pairs)


# The side the mean of both orders leans to: right on 70.7% of 191 decisive held-out pairs in
# fixtures/models/judge_metrics.json ("lean_accuracy_vs_experts"); 0.6 leaves room for a 40-pair sample
# and still fails a judge at chance (a coin passes it with probability about 0.13).
ACCURACY_FLOOR = 0.6


@pytest.mark.django_db
def test_a_catalogued_judge_adapter_loads_by_label_and_an_unknown_label_is_a_field_error():
    from evalhub.accounts.services import project_create
    from evalhub.catalog.services import adapter_register, base_model_register
    from evalhub.judging.services import judge_for_adapter

    project = project_create(name="Judge catalogue")
    base = base_model_register(project=project, name="base", folder=str(MODELS / "base"))
    adapter_register(project=project, base_model=base, folder=str(JUDGE_DIR))
    loaded: Any = judge_for_adapter(project=project, label="judge@1")
    assert loaded.name == "judge@1"
    assert loaded.version == LogprobJudge.from_adapter(JUDGE_DIR).version
    with pytest.raises(ValidationFailed) as error:
        judge_for_adapter(project=project, label="judge@9")
    assert "judge" in error.value.fields
