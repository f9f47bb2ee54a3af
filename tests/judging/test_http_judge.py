"""The HTTP judge against endpoints that behave badly: a real local HTTP server (stdlib, in a thread)
that rate-limits, fails, times out, answers garbage or refuses. The protocol against a real vLLM
server is in test_http_judge_vllm.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from annotation.models import Task
from evalhub.accounts.services import project_create
from evalhub.errors import ValidationFailed
from evalhub.judging.endpoints import endpoint_save, http_judge_for
from evalhub.judging.http import HttpJudge, parse_output_answer, parse_pair_answer
from evalhub.judging.logprob import JudgeContextError
from evalhub.judging.models import Judgement
from evalhub.judging.services import pair_judge
from tests.factories import CaseFactory, OutputFactory, RunFactory, TaskFactory

NOTE = "Notes from the Jadeport Foods earnings call for Q1 2024. Revenue was $582.8 million, up 12.0%."
FAITHFUL = "Jadeport Foods: Q1 2024 revenue $582.8 million, up 12.0%."
WRONG = "Jadeport Foods: Q1 2024 revenue $911.0 million, down 4.0%."


# ---- a server that answers from a script ----------------------------------------------------------


def chat(text: str, logprobs: list[tuple[str, dict[str, float]]] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": t,
                    "logprob": top.get(t, -1.0),
                    "top_logprobs": [{"token": k, "logprob": v} for k, v in top.items()],
                }
                for t, top in logprobs
            ]
        }
    return {"object": "chat.completion", "choices": [choice]}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, str -> as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drip_s: float = 0.0  # the body in four pieces, this long apart (each read waits less than a timeout)


@dataclass
class Seen:
    path: str
    body: Any
    headers: dict[str, str]
    at: float


class Script:
    """Replies in turn to POST /v1/...; the last one repeats. /tokenize and /v1/models answer 404
    unless ``tokenize`` is set to (count, max_model_len); a prompt holding ``too_long`` then counts one
    token more than the limit. ``max_in_flight``: the most completions the server held at once."""

    def __init__(
        self, *replies: Reply, tokenize: tuple[int, int] | None = None, too_long: str | None = None
    ) -> None:
        self.replies = list(replies)
        self.tokenize = tokenize
        self.too_long = too_long
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def next(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    @property
    def completions(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/v1/") and "completions" in s.path]


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, reply: Reply) -> None:
        body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        data = body.encode()
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not reply.drip_s:
                self.wfile.write(data)
            step = -(-len(data) // 4)
            for start in range(0, len(data), step) if reply.drip_s else ():
                self.wfile.write(data[start : start + step])
                self.wfile.flush()
                time.sleep(reply.drip_s)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._send(Reply(404, {"error": "no"}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        body = json.loads(raw) if raw else None
        script = self.script
        with script.lock:
            script.seen.append(Seen(self.path, body, dict(self.headers), time.monotonic()))
        if self.path == "/tokenize":
            if script.tokenize is None:
                self._send(Reply(404, {"error": "no"}))
            else:
                count, limit = script.tokenize
                if script.too_long and script.too_long in raw.decode():
                    count = limit + 1
                self._send(Reply(200, {"count": count, "max_model_len": limit, "tokens": []}))
            return
        reply = script.next()
        with script.lock:
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            if reply.delay_s:
                time.sleep(reply.delay_s)
            self._send(reply)
        finally:
            with script.lock:
                script.in_flight -= 1


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script) -> str:
        handler = type("Handler", (_Handler,), {"script": script})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def judge_at(url: str, **kwargs: Any) -> HttpJudge:
    options = {
        "model": "judge",
        "timeout_s": 5.0,
        "concurrency": 1,
        "max_retries": 2,
        "backoff_s": 0.05,
        **kwargs,
    }
    return HttpJudge(base_url=url, **options)


def pair(judge: HttpJudge) -> tuple[Any, ...]:
    with judge:
        return judge.judge_pair(rubric="- Factual accuracy", case=NOTE, output_a=FAITHFUL, output_b=WRONG)


# ---- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("A", "A"), (" B\n", "B"), ("tie", "tie"), ("Tie.", "tie"), ('{"preference": "B"}', "B"),
     ('{"preference": "tie", "scores": {"accuracy": {"A": 3, "B": 3.5}}}', "tie")],
)  # fmt: skip
def test_the_allowed_answers_parse(text: str, expected: str) -> None:
    parsed = parse_pair_answer(text)
    assert parsed is not None and parsed.preference == expected
    assert text[parsed.answer_at] in "ABtT"


@pytest.mark.parametrize(
    "text",
    ["", "a", "Answer A", "A is better", "A or B", "AB", '{"preference": "a"}', '{"preference": "A", "why": 1}',
     '{"preference": "A", "scores": {"accuracy": 3}}', '{"preference": "A", "scores": {"x": {"A": NaN, "B": 1}}}',
     '["A"]', "{broken", "I can't compare these."],
)  # fmt: skip
def test_anything_else_is_unparseable_never_guessed(text: str) -> None:
    assert parse_pair_answer(text) is None


def test_output_answers_parse_strictly() -> None:
    assert parse_output_answer("PASS").passed is True  # type: ignore[union-attr]
    assert parse_output_answer("fail.").passed is False  # type: ignore[union-attr]
    parsed = parse_output_answer('{"pass": true, "score": 0.8, "reason": "all facts kept"}')
    assert parsed is not None and (parsed.passed, parsed.score, parsed.reason) == (
        True,
        0.8,
        "all facts kept",
    )
    for text in ("PASSED", '{"pass": "yes"}', '{"pass": true, "score": 7}', "maybe"):
        assert parse_output_answer(text) is None


# ---- answers from the server ----------------------------------------------------------------------


def test_the_answer_token_logprobs_give_prob_a_and_json_scores_come_back_in_the_pairs_frame(serve) -> None:
    tokens = [("B", {"B": -0.2, "A": -1.8, "t": -4.0})]
    scores = {"accuracy": {"A": 1, "B": 4}}
    script = Script(
        Reply(body=chat("B", tokens)),
        Reply(body=chat(json.dumps({"preference": "A", "scores": scores}))),
    )
    ab, ba = pair(judge_at(serve(script)))
    # "ab": the answer shown first is the task's A; P(first) = e^-1.8 / (e^-1.8 + e^-0.2).
    expected = 2.718281828**-1.8 / (2.718281828**-1.8 + 2.718281828**-0.2)
    assert (ab.preference, ab.failure) == ("B", "")
    assert ab.prob_a == pytest.approx(expected, rel=1e-6)
    # "ba": the first shown is the task's B, so the stated "A" is the task's B; no logprobs -> 1 - 1.
    assert (ba.preference, ba.prob_a) == ("B", 0.0)
    assert ba.scores == {"accuracy": {"A": 4.0, "B": 1.0}}
    sent = [s.body for s in script.completions]
    assert [b["messages"][0]["content"] for b in sent] == [ab.prompt, ba.prompt]
    assert sent[0]["logprobs"] is True and sent[0]["temperature"] == 0


def test_a_rate_limit_is_retried_after_the_servers_retry_after(serve) -> None:
    script = Script(Reply(429, "slow down", {"Retry-After": "1"}), Reply(body=chat("A")))
    ab, ba = pair(judge_at(serve(script)))
    assert (ab.preference, ab.failure, ba.preference) == ("A", "", "B")
    first, second = script.completions[:2]
    assert second.at - first.at >= 0.95  # Retry-After honoured, not the 0.05 s backoff
    assert len(script.completions) == 3


def test_server_errors_are_retried_with_backoff_then_recorded_per_order(serve) -> None:
    script = Script(Reply(503, "upstream overloaded"))
    ab, ba = pair(judge_at(serve(script), max_retries=2, backoff_s=0.2))
    for r in (ab, ba):
        assert (r.preference, r.prob_a) == ("unparseable", None)
        assert "HTTP 503" in r.failure and "after 3 tries" in r.failure and "upstream overloaded" in r.failure
    ab_times = [s.at for s in script.completions[:3]]
    assert len(script.completions) == 6
    assert ab_times[1] - ab_times[0] >= 0.19 and ab_times[2] - ab_times[1] >= 0.39  # 0.2 s, then 0.4 s


def test_a_retry_after_beyond_the_limit_ends_the_tries_at_once(serve) -> None:
    script = Script(Reply(429, "come back tomorrow", {"Retry-After": "3600"}))
    started = time.monotonic()
    ab, _ = pair(judge_at(serve(script), max_backoff_s=2))
    assert time.monotonic() - started < 2
    assert "3600" in ab.failure and len(script.completions) == 2


def test_garbage_is_retried_then_recorded(serve) -> None:
    script = Script(Reply(200, "<html>proxy error</html>"))
    ab, _ = pair(judge_at(serve(script), max_retries=1))
    assert "not an OpenAI-compatible chat completion" in ab.failure and "proxy error" in ab.failure
    assert ab.preference == "unparseable" and ab.prob_a is None
    assert len(script.completions) == 4


def test_a_refusal_is_recorded_as_such_and_not_retried(serve) -> None:
    script = Script(Reply(body=chat("I can't help with comparing these answers.")))
    ab, _ = pair(judge_at(serve(script)))
    assert ab.failure.startswith("the judge refused: I can't help") and ab.preference == "unparseable"
    assert ab.raw_output == "I can't help with comparing these answers."
    assert len(script.completions) == 2


def test_a_plain_unparseable_answer_is_stored_without_a_failure(serve) -> None:
    script = Script(Reply(body=chat("Answer A is clearly better")))
    ab, _ = pair(judge_at(serve(script)))
    assert (ab.preference, ab.prob_a, ab.failure, ab.raw_output) == (
        "unparseable", None, "", "Answer A is clearly better"
    )  # fmt: skip


def test_a_slow_endpoint_times_out_within_the_limit(serve) -> None:
    script = Script(Reply(body=chat("A"), delay_s=3))
    started = time.monotonic()
    ab, ba = pair(judge_at(serve(script), timeout_s=0.3, max_retries=1, concurrency=2))
    assert time.monotonic() - started < 2.5
    assert ab.failure.startswith("timed out after 0.3 s") and "after 2 tries" in ab.failure
    assert ba.failure.startswith("timed out")


def test_client_errors_are_not_retried_and_the_key_is_sent_as_a_bearer_token(serve) -> None:
    script = Script(Reply(401, {"error": "bad key"}))
    ab, _ = pair(judge_at(serve(script), api_key="sk-test-123"))
    assert ab.failure.startswith("HTTP 401") and "tries" not in ab.failure
    assert len(script.completions) == 2
    assert script.completions[0].headers["Authorization"] == "Bearer sk-test-123"


def test_a_server_refusing_logprobs_is_asked_again_without_them(serve) -> None:
    script = Script(Reply(400, {"error": "logprobs are not supported"}), Reply(body=chat("A")))
    ab, _ = pair(judge_at(serve(script)))
    assert (ab.preference, ab.prob_a, ab.failure) == ("A", 1.0, "")
    bodies = [s.body for s in script.completions]
    assert "logprobs" in bodies[0] and "logprobs" not in bodies[1] and "logprobs" not in bodies[2]


def test_a_pair_the_context_cannot_hold_is_refused_up_front_with_the_numbers(serve) -> None:
    script = Script(Reply(body=chat("A")), tokenize=(1000, 1024))
    with pytest.raises(
        JudgeContextError, match="1000 tokens and the answer may take 96; the judge's context holds 1024"
    ):
        pair(judge_at(serve(script)))
    assert script.completions == []


def test_the_completions_api_and_a_single_output(serve) -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "text": " PASS",
                "logprobs": {"tokens": [" PASS"], "top_logprobs": [{" PASS": -0.1, " FAIL": -2.5}]},
            }
        ]
    }
    script = Script(Reply(body=body))
    with judge_at(serve(script), api="completions") as judge:
        result = judge.judge_output(rubric="Keeps every figure.", case=NOTE, output=FAITHFUL)
    assert (result.passed, result.reason) == (True, "")
    assert result.prob_pass == pytest.approx(1 / (1 + 2.718281828 ** (-2.5 + 0.1)), rel=1e-6)
    sent = script.completions[0]
    assert (
        sent.path == "/v1/completions" and sent.body["prompt"] == result.prompt and sent.body["logprobs"] == 5
    )


def test_a_failed_single_output_has_no_verdict_and_says_why(serve) -> None:
    script = Script(Reply(500, "boom"))
    with judge_at(serve(script), max_retries=0) as judge:
        result = judge.judge_output(rubric="Keeps every figure.", case=NOTE, output=FAITHFUL)
    assert (result.passed, result.prob_pass, result.score) == (None, None, None)
    assert result.reason.startswith("HTTP 500")


# ---- stored: the study carries on ----------------------------------------------------------------------


def _task(a: str, b: str) -> Any:
    run = RunFactory(suite_version__suite__project=project_create(name="Judging"))
    case = CaseFactory(version=run.suite_version, input=NOTE)
    first = OutputFactory(run=run, case=case, text=a, adapter__base_model=run.base_model)
    second = OutputFactory(run=run, case=case, text=b, adapter__base_model=run.base_model)
    return TaskFactory(case=case, output_a=first, output_b=second, study__run=run)


@pytest.mark.django_db
def test_failed_orders_are_stored_with_their_reason_and_a_later_answer_replaces_them(serve, settings) -> None:
    task = _task(FAITHFUL, WRONG)
    bad = Script(Reply(429, "slow down"))
    url = serve(bad)
    with judge_at(url, max_retries=1, backoff_s=0.01) as judge:
        result = pair_judge(task_id=task.pk, judge=judge)
    assert result.orders_agree is None
    rows = {j.order: j for j in Judgement.objects.filter(task=task)}
    assert set(rows) == {"ab", "ba"}
    assert all(
        r.preference == "unparseable" and r.prob_a is None and "HTTP 429" in r.failure for r in rows.values()
    )
    # The same judge identity answering later: the failed rows are replaced, not kept forever.
    good = Script(Reply(body=chat("A")), Reply(body=chat("B")))
    with judge_at(serve(good)) as judge:
        judge.version = judge_at(url).version
        again = pair_judge(task_id=task.pk, judge=judge)
    rows = {j.order: j for j in Judgement.objects.filter(task=task)}
    assert len(rows) == 2 and again.orders_agree is True  # "B" shown second-first is the task's A
    assert (rows["ab"].preference, rows["ab"].failure, rows["ba"].preference) == ("A", "", "A")


@pytest.mark.django_db
def test_a_stored_endpoint_builds_its_judge_and_private_addresses_need_the_admins_switch(
    serve, settings
) -> None:
    project = project_create(name="Judged")
    url = serve(Script(Reply(body=chat("A"))))
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = True
    endpoint = endpoint_save(
        project=project, name="local", base_url=url, model="judge", api_key="sk-1", concurrency=2
    )
    with http_judge_for(endpoint) as judge:
        assert (judge.name, judge.root, judge.concurrency) == ("http:local", url.removesuffix("/v1"), 2)
        assert judge.judge_pair(rubric="r", case="c", output_a="a", output_b="b")[0].preference == "A"
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = False
    with pytest.raises(ValidationFailed) as refused:
        http_judge_for(endpoint)
    assert "base_url" in refused.value.fields and "EVALHUB_JUDGE_ALLOW_PRIVATE" in str(refused.value)


@pytest.mark.django_db
def test_study_judge_keeps_an_http_judges_requests_in_flight_and_a_refused_pair_costs_only_itself(
    serve,
) -> None:
    """The study hands the judge its pairs in batches, so ``concurrency`` requests are in flight at once
    (one pair at a time would never hold more than its two orders); a pair too long for the served
    context is recorded as failed, the others are judged and stored."""
    from annotation.services import study_create_from_run
    from evalhub.judging.services import study_judge
    from tests.annotation.factories import run_rows

    project = project_create(name="Concurrent")
    long_side = "LONG-OUTPUT " * 3
    rows = run_rows(
        project,
        n_cases=9,
        text=lambda key, case, i: long_side if (key, i) == ("candidate", 4) else f"{key} {i}.",
    )
    study = study_create_from_run(run=rows.run, name="s", judge_base_model=rows.base_model, seed=1)
    script = Script(Reply(body=chat("A"), delay_s=0.15), tokenize=(50, 1024), too_long="LONG-OUTPUT")
    with judge_at(serve(script), concurrency=4) as judge:
        state = study_judge(study_id=study.pk, judge=judge, batch_pairs=4)
    assert script.max_in_flight == 4  # the judge's bound, reached; never more
    assert state["pairs"] == 9 and state["judged"] == 8
    (failure,) = state["failures"]
    refused = Task.objects.get(public_id=failure["task"])
    assert refused.case_id == rows.cases[4].pk and "JudgeContextError" in failure["reason"]
    assert not Judgement.objects.filter(task=refused).exists()
    judged = Judgement.objects.filter(task__study=study).exclude(task=refused)
    assert judged.count() == 16 and {j.preference for j in judged} <= {"A", "B"}
    assert len(script.completions) == 16  # the refused pair was never asked


@pytest.mark.django_db
def test_a_study_naming_an_endpoint_is_judged_through_it_and_the_judge_is_closed_after(
    serve, settings, monkeypatch
) -> None:
    """``study_judge`` builds the study's endpoint judge itself (as the Celery task does) and closes it:
    no request thread of it outlives the study's judging in a long-lived worker."""
    from annotation.services import study_create_from_run
    from evalhub.judging.services import study_judge
    from tests.annotation.factories import run_rows

    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = True  # the test server is on loopback
    project = project_create(name="Closed")
    rows = run_rows(project, n_cases=3, text=lambda key, case, i: f"{key} {i}.")
    script = Script(Reply(body=chat("B")), tokenize=(50, 1024))
    endpoint = endpoint_save(project=project, name="local", base_url=serve(script), model="judge", concurrency=3)
    closed: list[str] = []
    close = HttpJudge.close
    monkeypatch.setattr(HttpJudge, "close", lambda self: (closed.append(self.name), close(self))[1])
    study = study_create_from_run(run=rows.run, name="s", judge_endpoint=endpoint, seed=1)
    closed.clear()  # (creating the study may already have judged it, through the eager task)
    state = study_judge(study_id=study.pk)
    assert closed == ["http:local"]  # the judge study_judge built, closed once it was done
    assert state["status"] == "done" and state["judged"] == 3 and state["judge"].startswith("http:local@")
    assert len(script.completions) == 6  # both orders of every pair, through the endpoint
    assert Judgement.objects.filter(task__study=study).count() == 6


def test_an_answer_arriving_after_the_timeout_is_a_timeout_even_when_no_read_waited_that_long(serve) -> None:
    """httpx bounds each phase, not the whole try: an answer dripped out in pieces, each within the read
    timeout, would otherwise be taken however late it comes. timeout_s is the try's wall-clock bound."""
    script = Script(Reply(body=chat("A"), delay_s=0.2, drip_s=0.15))
    with judge_at(serve(script), timeout_s=0.5, max_retries=0) as judge:
        ab, _ = judge.judge_pair(rubric="r", case="c", output_a="a", output_b="b")
    assert ab.preference == "unparseable" and ab.prob_a is None
    assert ab.failure.startswith("timed out after 0.5 s (the answer took "), ab.failure
