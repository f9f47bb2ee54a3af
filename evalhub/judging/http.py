"""A pairwise judge behind an OpenAI-compatible HTTP endpoint (vLLM, or any server speaking that API).

No Django here: ``evalhub.judging.endpoints`` builds one from a project's stored endpoint and the
services in ``evalhub.judging.services`` store what it returns.

- Both orders of each pair are asked, through a bounded thread pool (``concurrency`` requests at most).
- The answer is parsed strictly: exactly ``A``, ``B`` or ``tie`` (an optional final full stop), or one
  JSON object ``{"preference": "A"|"B"|"tie", "scores": {"<criterion>": {"A": n, "B": n}}}``. Anything
  else is stored as unparseable, with no probability: never guessed.
- ``prob_a`` comes from the log-probabilities of the answer token when the server returns them (the
  top log-probabilities of "A" against "B" at the token that carries the answer); without them it is
  the stated answer itself (1, 0, or 0.5 for a tie).
- A request that times out, cannot connect, gets HTTP 429 or 5xx, or an answer that is not the API's
  JSON, is retried up to ``max_retries`` times with exponential backoff, honouring ``Retry-After``.
  What still fails (and a refusal, which is not retried) is returned as an unparseable order with the
  reason in ``failure``: no exception escapes to stop a study.
- A pair whose prompt cannot fit the served model's context is refused up front with the numbers
  (``JudgeContextError``), counting tokens with vLLM's ``/tokenize`` and reading ``max_model_len`` from
  it or ``/v1/models``. A server with neither is not checked up front; its own refusal is recorded.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import httpx

from evalhub.judging.logprob import (
    ORDERS,
    JudgeContextError,
    Order,
    OrderJudgement,
    OutputJudgement,
    PairResult,
    PairToJudge,
    Preference,
    pair_orders,
)
from evalhub.untrusted import json_loads, printable

Api = Literal["chat", "completions"]
#: Bumped when a prompt or the reading of the answers changes, so old and new judgements stay apart.
HTTP_PROMPT_VERSION = "1"
_PAIR_PROMPT = (
    "You compare two answers to the same task.\n"
    "Rubric:\n{rubric}\n\n"
    "Task:\n{case}\n\n"
    "Answer A:\n{first}\n\n"
    "Answer B:\n{second}\n\n"
    "Which answer is better under the rubric? Reply with exactly one of: A, B, tie. Or reply with one "
    'JSON object: {{"preference": "A" or "B" or "tie", "scores": {{"<criterion>": {{"A": <number>, '
    '"B": <number>}}}}}}.\n'
    "Better answer:"
)
_OUTPUT_PROMPT = (
    "You check one answer against a rubric.\n"
    "Rubric:\n{rubric}\n\n"
    "Task:\n{case}\n\n"
    "Answer:\n{output}\n\n"
    "Does the answer meet the rubric? Reply with exactly one of: PASS, FAIL. Or reply with one JSON "
    'object: {{"pass": true or false, "score": <number from 0 to 1>, "reason": "<one sentence>"}}.\n'
    "Verdict:"
)
_BARE_PAIR = re.compile(r"\s*(A|B|tie|Tie|TIE)\.?\s*", re.DOTALL)
_BARE_OUTPUT = re.compile(r"\s*(PASS|FAIL|Pass|Fail|pass|fail)\.?\s*", re.DOTALL)
_REFUSAL = re.compile(
    r"\s*(i\s+(can['\u2019]?t|cannot|can not|am unable|won['\u2019]?t|will not|am not able)|i['\u2019]m (sorry|unable|not able)"
    r"|sorry|as an ai)",
    re.IGNORECASE,
)
_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_SNIPPET = 300
PAIR_WORDS = ("A", "B", "tie")
OUTPUT_WORDS = ("PASS", "FAIL")


def pair_prompt(*, rubric: str, case: str, first: str, second: str) -> str:
    return _PAIR_PROMPT.format(
        rubric=rubric.strip(), case=case.strip(), first=first.strip(), second=second.strip()
    )


def output_prompt(*, rubric: str, case: str, output: str) -> str:
    return _OUTPUT_PROMPT.format(rubric=rubric.strip(), case=case.strip(), output=output.strip())


def _snippet(text: str) -> str:
    text = printable(" ".join(text.split()))
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _finite(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- parsing the answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAnswer:
    preference: Literal["A", "B", "tie"]
    scores: dict[str, dict[str, float]]
    answer_at: int  # character offset of the answer's first character in the text


@dataclass(frozen=True)
class OutputAnswer:
    passed: bool
    score: float | None
    reason: str
    answer_at: int
    bare: bool


def _json_object(text: str) -> tuple[dict[str, Any], int] | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json_loads(stripped)
    except (ValueError, RecursionError):
        return None
    return (value, text.index("{")) if isinstance(value, dict) else None


def parse_pair_answer(text: str) -> PairAnswer | None:
    """The answer in the shown order's frame (A = the answer shown first), or None when it is not
    exactly one of the allowed forms."""
    bare = _BARE_PAIR.fullmatch(text)
    if bare:
        word = bare.group(1)
        return PairAnswer("tie" if word.lower() == "tie" else word, {}, bare.start(1))  # type: ignore[arg-type]
    found = _json_object(text)
    if found is None:
        return None
    value, start = found
    if not set(value) <= {"preference", "scores", "reason"} or value.get("preference") not in (
        "A",
        "B",
        "tie",
    ):
        return None
    scores = value.get("scores", {})
    if not isinstance(scores, dict):
        return None
    parsed: dict[str, dict[str, float]] = {}
    for criterion, pair in scores.items():
        if (
            not isinstance(pair, dict)
            or set(pair) != {"A", "B"}
            or not all(_finite(v) for v in pair.values())
        ):
            return None
        parsed[criterion] = {"A": float(pair["A"]), "B": float(pair["B"])}
    where = re.search(r'"preference"\s*:\s*"', text[start:])
    return PairAnswer(value["preference"], parsed, start + (where.end() if where else 0))


def parse_output_answer(text: str) -> OutputAnswer | None:
    bare = _BARE_OUTPUT.fullmatch(text)
    if bare:
        return OutputAnswer(bare.group(1).lower() == "pass", None, "", bare.start(1), True)
    found = _json_object(text)
    if found is None:
        return None
    value, start = found
    if not set(value) <= {"pass", "score", "reason"} or not isinstance(value.get("pass"), bool):
        return None
    score = value.get("score")
    if score is not None and not (_finite(score) and 0 <= score <= 1):
        return None
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        return None
    where = re.search(r'"pass"\s*:\s*', text[start:])
    return OutputAnswer(
        value["pass"],
        None if score is None else float(score),
        printable(reason),
        start + (where.end() if where else 0),
        False,
    )


def _answer_probability(
    tokens: list[tuple[str, dict[str, float]]] | None,
    text: str,
    at: int,
    yes: tuple[str, ...],
    no: tuple[str, ...],
) -> float | None:
    """P(yes) / (P(yes) + P(no)) among the top log-probabilities of the token that covers character
    ``at`` of ``text``; None when the tokens do not spell the text or neither answer is among them.
    A candidate token counts for an answer word when, stripped of spaces and quotes, it starts it."""
    if not tokens or not "".join(t for t, _ in tokens).startswith(text):  # (an end token may follow)
        return None
    offset = 0
    for token, top in tokens:
        if offset + len(token) > at and token.strip(" \t\n\"'"):
            yes_p = no_p = 0.0
            for candidate, logprob in top.items():
                word = candidate.strip(" \t\n\"'").lower()
                if not word or not _finite(logprob):
                    continue
                if any(w.startswith(word) for w in yes):
                    yes_p += math.exp(logprob)
                elif any(w.startswith(word) for w in no):
                    no_p += math.exp(logprob)
            return yes_p / (yes_p + no_p) if yes_p + no_p > 0 else None
        offset += len(token)
    return None


# ---- talking to the server ----------------------------------------------------------------------


class _Failed(Exception):
    """One attempt failed. ``retryable``: worth another try; ``retry_after``: the server's wish, in seconds."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: list[tuple[str, dict[str, float]]] | None  # (token, top log-probabilities) when returned
    latency_ms: float
    failure: str = ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _completion_tokens(api: Api, choice: dict[str, Any]) -> list[tuple[str, dict[str, float]]] | None:
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    try:
        if api == "chat":
            return [
                (
                    str(item["token"]),
                    {str(t["token"]): float(t["logprob"]) for t in item.get("top_logprobs") or []},
                )
                for item in logprobs["content"]
            ]
        tops = logprobs.get("top_logprobs") or [{} for _ in logprobs["tokens"]]
        return [
            (str(token), {str(k): float(v) for k, v in (top or {}).items()})
            for token, top in zip(logprobs["tokens"], tops, strict=True)
        ]
    except (KeyError, TypeError, ValueError):
        return None


class HttpJudge:
    """Judges through ``base_url`` (``http(s)://host:port`` or ``…/v1``) serving ``model``.

    ``timeout_s`` bounds each try's wall-clock time (an answer arriving later is a timeout);
    ``max_retries`` more tries follow a retryable failure, waiting ``backoff_s * 2**try`` (at most
    ``max_backoff_s``) or the server's ``Retry-After`` when it says more; a ``Retry-After`` beyond ``max_backoff_s`` ends the tries at once. The caller checks the URL
    (``evalhub.judging.endpoints``); this class trusts what it is given.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api: Api = "chat",
        api_key: str = "",
        timeout_s: float = 30.0,
        concurrency: int = 4,
        max_retries: int = 3,
        name: str | None = None,
        max_answer_tokens: int = 96,
        top_logprobs: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        constrained: bool = False,
    ) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api is 'chat' or 'completions', not {api!r}")
        base = base_url.strip().rstrip("/")
        self.root = base[: -len("/v1")] if base.endswith("/v1") else base
        self.model = model
        self.api: Api = api
        self.timeout_s = float(timeout_s)
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.max_answer_tokens = max_answer_tokens
        self.top_logprobs = top_logprobs
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.constrained = constrained
        self.name = name or f"http:{model}"
        identity = {
            "prompt": HTTP_PROMPT_VERSION, "root": self.root, "model": model, "api": api, "constrained": constrained
        }  # fmt: skip
        self.version = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        headers = {"User-Agent": "evalhub-judge/1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            follow_redirects=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="http-judge")
        self._lock = threading.Lock()
        self._logprobs = True  # off once the server refuses them
        self._context: tuple[bool, int | None] | None = None  # (has /tokenize, max_model_len), asked once

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> HttpJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request, with its retries --

    def _payload(self, prompt: str, logprobs: bool, choices: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_answer_tokens, "temperature": 0}
        if self.constrained:  # vLLM's structured outputs: the answer can only be one of the bare words
            body["structured_outputs"] = {"choice": list(choices)}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if logprobs:
                body.update(logprobs=True, top_logprobs=self.top_logprobs)
            return "/v1/chat/completions", body
        body["prompt"] = prompt
        if logprobs:
            body["logprobs"] = self.top_logprobs
        return "/v1/completions", body

    def _attempt(self, prompt: str, choices: tuple[str, ...]) -> Completion:
        logprobs = self._logprobs
        path, body = self._payload(prompt, logprobs, choices)
        started = time.perf_counter()
        try:
            answer = self._client.post(self.root + path, json=body)
        except httpx.TimeoutException as exc:
            raise _Failed(
                f"timed out after {self.timeout_s:g} s ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise _Failed(
                f"could not reach the endpoint: {_snippet(str(exc)) or type(exc).__name__}", retryable=True
            ) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if latency_ms > self.timeout_s * 1000:
            # httpx bounds each phase (connect, each read), not the whole request: a server dripping its answer,
            # or one whose answer was ready before a busy client read it, would pass unbounded. timeout_s is the
            # wall-clock bound of one try, so an answer past it is a timeout like any other (and retried).
            raise _Failed(f"timed out after {self.timeout_s:g} s (the answer took {latency_ms / 1000:.3g} s)",
                          retryable=True)
        if answer.status_code >= 400:
            text = answer.text
            if answer.status_code == 400 and logprobs and "logprob" in text.lower():
                with self._lock:
                    self._logprobs = False  # the server refuses log-probabilities: ask again without them
                return self._attempt(prompt, choices)
            raise _Failed(
                f"HTTP {answer.status_code}: {_snippet(text)}",
                retryable=answer.status_code in _RETRYABLE_STATUS,
                retry_after=_retry_after(answer.headers.get("Retry-After")),
            )
        try:
            data = json_loads(answer.content)
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
            if not isinstance(text, str):
                raise TypeError("no text")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Failed(
                f"the answer is not an OpenAI-compatible {self.api} completion: {_snippet(answer.text) or '(empty)'}",
                retryable=True,
            ) from exc
        return Completion(text, _completion_tokens(self.api, choice) if logprobs else None, latency_ms)

    def complete(self, prompt: str, choices: tuple[str, ...] = PAIR_WORDS) -> Completion:
        """The server's answer to ``prompt``, after the retries; a failure is returned, never raised."""
        started = time.perf_counter()
        tries = 0
        while True:
            try:
                return self._attempt(prompt, choices)
            except _Failed as failed:  # (below: anything else is a failure too, never a crashed study)
                reason = str(failed)
                if not failed.retryable or tries >= self.max_retries:
                    suffix = f" (after {tries + 1} tries)" if tries else ""
                    return Completion("", None, (time.perf_counter() - started) * 1000, reason + suffix)
                wait = min(self.max_backoff_s, self.backoff_s * 2**tries)
                if failed.retry_after is not None:
                    if failed.retry_after > self.max_backoff_s:
                        return Completion(
                            "", None, (time.perf_counter() - started) * 1000,
                            f"{reason} (the server asks to retry after {failed.retry_after:g} s, beyond the "
                            f"{self.max_backoff_s:g} s this judge waits)",
                        )  # fmt: skip
                    wait = max(wait, failed.retry_after)
                tries += 1
                time.sleep(wait)
            except Exception as exc:  # an unforeseen client error is recorded, not raised
                failure = f"unexpected error: {type(exc).__name__}: {_snippet(str(exc))}"
                return Completion("", None, (time.perf_counter() - started) * 1000, failure)

    # -- the context check --

    def _context_info(self) -> tuple[bool, int | None]:
        with self._lock:
            if self._context is not None:
                return self._context
        has_tokenize, limit = False, None
        try:
            probe = self._client.post(self.root + "/tokenize", json={"model": self.model, "prompt": ""})
            if probe.status_code == 200:
                has_tokenize = True
                limit = probe.json().get("max_model_len")
            if not _finite(limit):
                models = self._client.get(self.root + "/v1/models")
                for entry in models.json().get("data", []) if models.status_code == 200 else []:
                    if entry.get("id") == self.model and _finite(entry.get("max_model_len")):
                        limit = entry["max_model_len"]
        except (httpx.HTTPError, ValueError, AttributeError):
            return False, None  # not cached: the next pair asks again
        info = (has_tokenize, int(limit) if _finite(limit) else None)
        with self._lock:
            self._context = info
        return info

    def prompt_tokens(self, prompt: str) -> int | None:
        """The prompt's length in the served model's tokens (vLLM's /tokenize, with the chat template for
        the chat API), or None when the server cannot tell."""
        has_tokenize, _ = self._context_info()
        if not has_tokenize:
            return None
        body: dict[str, Any] = {"model": self.model}
        if self.api == "chat":
            body.update(messages=[{"role": "user", "content": prompt}], add_generation_prompt=True)
        else:
            body["prompt"] = prompt
        try:
            answer = self._client.post(self.root + "/tokenize", json=body)
            count = answer.json().get("count") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return int(count) if _finite(count) else None

    def check_fits(self, prompt: str) -> None:
        """``JudgeContextError`` with the numbers when the prompt and the answer cannot fit the context."""
        _, limit = self._context_info()
        if limit is None:
            return
        count = self.prompt_tokens(prompt)
        if count is not None and count + self.max_answer_tokens > limit:
            raise JudgeContextError(
                f"the judging prompt is {count} tokens and the answer may take {self.max_answer_tokens}; "
                f"the judge's context holds {limit}"
            )

    # -- pairs --

    def _order(self, order: Order, prompt: str) -> OrderJudgement:
        done = self.complete(prompt)
        raw = printable(done.text)
        if done.failure:
            return OrderJudgement(
                order, prompt, raw, "unparseable", None, done.latency_ms, failure=printable(done.failure)
            )
        parsed = parse_pair_answer(done.text)
        if parsed is None:
            failure = f"the judge refused: {_snippet(done.text)}" if _REFUSAL.match(done.text) else ""
            return OrderJudgement(order, prompt, raw, "unparseable", None, done.latency_ms, failure=failure)
        p_first = _answer_probability(done.tokens, done.text, parsed.answer_at, ("a",), ("b",))
        if p_first is None:
            p_first = {"A": 1.0, "B": 0.0, "tie": 0.5}[parsed.preference]
        # Back to the pair's own frame: in order "ba" the answer shown first is the task's output B.
        swap = {"A": "B", "B": "A", "tie": "tie"}
        preference: Preference = parsed.preference if order == "ab" else swap[parsed.preference]  # type: ignore[assignment]
        scores = {
            key: (value if order == "ab" else {"A": value["B"], "B": value["A"]})
            for key, value in parsed.scores.items()
        }
        prob_a = p_first if order == "ab" else 1 - p_first
        return OrderJudgement(order, prompt, raw, preference, prob_a, done.latency_ms, scores=scores)  # type: ignore[arg-type]

    def _prompts(self, pair: PairToJudge, rubric: str) -> list[tuple[Order, str]] | JudgeContextError:
        """Both orders' prompts of one pair, or its refusal when either cannot fit the context."""
        prompts: list[tuple[Order, str]] = []
        for order in ORDERS:
            first, second = (
                (pair.output_a, pair.output_b) if order == "ab" else (pair.output_b, pair.output_a)
            )
            prompt = pair_prompt(rubric=rubric, case=pair.case, first=first, second=second)
            try:
                self.check_fits(prompt)
            except JudgeContextError as exc:
                return exc
            prompts.append((order, prompt))
        return prompts

    def judge_pair(
        self, *, rubric: str, case: str, output_a: str, output_b: str
    ) -> tuple[OrderJudgement, ...]:
        """Both orders of one pair, asked at once. A prompt that cannot fit raises ``JudgeContextError``
        before anything is asked; every other failure is an order returned with ``failure`` set."""
        return pair_orders(self.judge_pairs([PairToJudge(case, output_a, output_b)], rubric=rubric)[0])

    def judge_pairs(self, pairs: Sequence[PairToJudge], *, rubric: str) -> list[PairResult]:
        """Many pairs, both orders each, ``concurrency`` requests in flight (the context checks too,
        before any pair is asked). A pair that cannot fit comes back as its ``JudgeContextError`` in its
        place, never asked; the others are judged."""
        planned = list(self._pool.map(lambda pair: self._prompts(pair, rubric), pairs))
        futures = [
            item
            if isinstance(item, JudgeContextError)
            else [self._pool.submit(self._order, o, p) for o, p in item]
            for item in planned
        ]
        return [
            item if isinstance(item, JudgeContextError) else tuple(f.result() for f in item)
            for item in futures
        ]

    # -- one output (pending promptfoo checks) --

    def judge_output(self, *, rubric: str, case: str, output: str) -> OutputJudgement:
        """Whether one output meets the rubric. Unparseable: ``passed`` None and the reason says so;
        an endpoint failure likewise, with the failure as the reason. ``JudgeContextError`` up front."""
        prompt = output_prompt(rubric=rubric, case=case, output=output)
        self.check_fits(prompt)
        done = self.complete(prompt, OUTPUT_WORDS)
        raw = printable(done.text)
        if done.failure:
            return OutputJudgement(prompt, raw, None, None, None, printable(done.failure), done.latency_ms)
        parsed = parse_output_answer(done.text)
        if parsed is None:
            refused = _REFUSAL.match(done.text)
            reason = f"the judge refused: {_snippet(done.text)}" if refused else "unparseable answer"
            return OutputJudgement(prompt, raw, None, None, None, reason, done.latency_ms)
        words = (("pass",), ("fail",)) if parsed.bare else (("true",), ("false",))
        prob = _answer_probability(done.tokens, done.text, parsed.answer_at, *words)
        return OutputJudgement(
            prompt, raw, parsed.passed, prob if prob is not None else float(parsed.passed), parsed.score,
            parsed.reason, done.latency_ms,
        )  # fmt: skip
