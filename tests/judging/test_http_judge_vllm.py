"""The HTTP judge against a real vLLM OpenAI-compatible server serving the fixture base model.

These test the protocol, not the judge's quality (the fixture base is no judge): the prompts sent, both
orders stored in the pair's frame, the answer tokens' log-probabilities read into prob_a, an answer
that does not parse stored as unparseable, the context refused up front with vLLM's own numbers, and a
timeout recorded per order. Slow (the server takes a minute or two to start on CPU); the "vllm" xdist
group keeps them away from the other vLLM tests.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from evalhub.accounts.services import project_create
from evalhub.judging.http import HttpJudge, pair_prompt
from evalhub.judging.logprob import JudgeContextError, PairToJudge
from evalhub.judging.models import Judgement
from evalhub.judging.services import pair_judge
from tests.factories import CaseFactory, OutputFactory, RunFactory, TaskFactory
from tests.vllm_server import VllmServer

pytestmark = pytest.mark.slow

RUBRIC = "- Factual accuracy: every figure matches the notes."
NOTE = "Notes from the Jadeport Foods earnings call for Q1 2024. Revenue was $582.8 million, up 12.0%."
FAITHFUL = "Jadeport Foods: Q1 2024 revenue $582.8 million, up 12.0%."
WRONG = "Jadeport Foods: Q1 2024 revenue $911.0 million, down 4.0%."


def _judge(server: VllmServer, **kwargs: Any) -> HttpJudge:
    return HttpJudge(base_url=server.base_url, model=server.model, timeout_s=120, **kwargs)


def _task() -> Any:
    run = RunFactory(suite_version__suite__project=project_create(name="Judging"))
    case = CaseFactory(version=run.suite_version, input=NOTE)
    first = OutputFactory(run=run, case=case, text=FAITHFUL, adapter__base_model=run.base_model)
    second = OutputFactory(run=run, case=case, text=WRONG, adapter__base_model=run.base_model)
    return TaskFactory(case=case, output_a=first, output_b=second, study__run=run)


def _first_token_prob(server: VllmServer, api: str, prompt: str) -> tuple[str, float]:
    """The oracle, asked directly: the answer text and P("A") / (P("A") + P("B")) at its first token."""
    body: dict[str, Any] = {"model": server.model, "max_tokens": 8, "temperature": 0,
                            "structured_outputs": {"choice": ["A", "B", "tie"]}}  # fmt: skip
    if api == "chat":
        body.update(messages=[{"role": "user", "content": prompt}], logprobs=True, top_logprobs=5)
        choice = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120).json()["choices"][
            0
        ]
        top = {t["token"]: t["logprob"] for t in choice["logprobs"]["content"][0]["top_logprobs"]}
        text = choice["message"]["content"]
    else:
        body.update(prompt=prompt, logprobs=5)
        choice = httpx.post(f"{server.base_url}/completions", json=body, timeout=120).json()["choices"][0]
        top = choice["logprobs"]["top_logprobs"][0]
        text = choice["text"]
    p = {w: sum(math.exp(v) for k, v in top.items() if k.strip() == w) for w in ("A", "B")}
    assert p["A"] + p["B"] > 0, top  # both answer letters are among the top five at the answer token
    return text, p["A"] / (p["A"] + p["B"])


@pytest.mark.django_db
def test_both_orders_are_sent_and_stored_with_prompt_raw_output_and_latency(vllm_server: VllmServer) -> None:
    task = _task()
    with _judge(vllm_server) as judge:
        result = pair_judge(task_id=task.pk, judge=judge)
    rows = {j.order: j for j in Judgement.objects.filter(task=task)}
    assert set(rows) == {"ab", "ba"} and len(result.judgements) == 2
    assert rows["ab"].prompt.index(FAITHFUL) < rows["ab"].prompt.index(WRONG)
    assert rows["ba"].prompt.index(WRONG) < rows["ba"].prompt.index(FAITHFUL)
    for row in rows.values():
        assert row.judge_name == "http:fixture-base" and len(row.judge_version) == 16
        assert row.raw_output.strip() and row.latency_ms > 0 and row.failure == ""
        if row.preference == "unparseable":  # the fixture base rarely answers as asked: stored as such
            assert row.prob_a is None and row.scores == {}
        else:
            assert 0 <= row.prob_a <= 1


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_constrained_answers_parse_and_prob_a_is_read_from_the_answer_tokens_logprobs(
    vllm_server: VllmServer, api: str
) -> None:
    with _judge(vllm_server, api=api, constrained=True) as judge:
        ab, ba = judge.judge_pair(rubric=RUBRIC, case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    for r in (ab, ba):
        assert r.failure == "" and r.preference in ("A", "B", "tie")
        assert 0 < r.prob_a < 1  # from log-probabilities, not the 0 / 0.5 / 1 of a bare answer
    text_ab, p_ab = _first_token_prob(
        vllm_server, api, pair_prompt(rubric=RUBRIC, case=NOTE, first=FAITHFUL, second=WRONG)
    )
    text_ba, p_ba = _first_token_prob(
        vllm_server, api, pair_prompt(rubric=RUBRIC, case=NOTE, first=WRONG, second=FAITHFUL)
    )
    assert ab.raw_output == text_ab and ba.raw_output == text_ba
    assert ab.prob_a == pytest.approx(p_ab, abs=1e-3)
    assert ba.prob_a == pytest.approx(1 - p_ba, abs=1e-3)  # mapped back to the pair's frame


def test_a_single_output_is_judged_pass_or_fail_with_its_probability(vllm_server: VllmServer) -> None:
    with _judge(vllm_server, constrained=True) as judge:
        result = judge.judge_output(rubric="Keeps every figure of the notes.", case=NOTE, output=FAITHFUL)
    assert result.raw_output in ("PASS", "FAIL") and result.passed is (result.raw_output == "PASS")
    assert result.prob_pass is not None and 0 < result.prob_pass < 1


def test_unconstrained_free_text_is_unparseable_never_guessed(vllm_server: VllmServer) -> None:
    with _judge(vllm_server, api="completions", max_answer_tokens=12) as judge:
        ab, ba = judge.judge_pair(rubric=RUBRIC, case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    for r in (ab, ba):
        assert r.failure == "" and r.raw_output
        # Whatever the fixture base says, only an exact answer counts; the rest has no probability.
        if r.preference == "unparseable":
            assert r.prob_a is None
        else:
            assert r.raw_output.strip().rstrip(".") in (
                "A",
                "B",
                "tie",
                "Tie",
            ) or r.raw_output.lstrip().startswith("{")


def test_a_pair_the_served_context_cannot_hold_is_refused_with_vllms_numbers(vllm_server: VllmServer) -> None:
    long = " ".join(["Revenue was $582.8 million, up 12.0%."] * 120)
    with _judge(vllm_server) as judge, pytest.raises(JudgeContextError) as refused:
        judge.judge_pair(rubric=RUBRIC, case=NOTE, output_a=long, output_b=WRONG)
    message = str(refused.value)
    assert f"the judge's context holds {vllm_server.max_model_len}" in message
    tokens = int(message.split("the judging prompt is ")[1].split(" tokens")[0])
    assert tokens + 96 > vllm_server.max_model_len


def test_a_tiny_timeout_is_recorded_per_order_and_the_next_pairs_carry_on(vllm_server: VllmServer) -> None:
    with _judge(vllm_server) as warm:  # (also warms the server up, so the next timeout is the client's)
        warm.judge_pair(rubric=RUBRIC, case=NOTE, output_a=FAITHFUL, output_b=WRONG)
    impatient = HttpJudge(
        base_url=vllm_server.base_url, model=vllm_server.model, timeout_s=0.001, max_retries=1, backoff_s=0.01
    )
    with impatient:
        results = impatient.judge_pairs(
            [PairToJudge(NOTE, FAITHFUL, WRONG), PairToJudge(NOTE, WRONG, FAITHFUL)], rubric=RUBRIC
        )
    for orders in results:
        assert not isinstance(orders, JudgeContextError)
        for r in orders:
            assert r.preference == "unparseable" and r.prob_a is None
            assert r.failure.startswith("timed out after 0.001 s") and "after 2 tries" in r.failure
