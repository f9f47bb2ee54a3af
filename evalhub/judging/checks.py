"""What the judge is asked for each pending check of an imported promptfoo suite, and how its answer
becomes a check result (the one home for both). No Django, no torch.

A pending check is an assertion evalhub could not run at import (``{"type": "pending", "assert": {...}}``,
see ``evalhub.suites.promptfoo``). Only the assertions whose meaning is "grade this output against a
rubric" are given to the judge (``JUDGEABLE``); the others stay pending with the reason. promptfoo's
semantics (docs: configuration/expected-outputs/model-graded):

- ``llm-rubric``: the value is the rubric; a pass/fail and a score in [0, 1] (the assertion's
  ``threshold``, when given, is compared with the score).
- ``model-graded-closedqa``: the value is a criterion the answer must meet (yes/no).
- ``factuality``: the value is a reference; the output must be consistent with it (no contradiction).
- ``answer-relevance``: the output must address the query (promptfoo's default threshold 0.7 applies
  only to its embedding score; here the judge's probability of "relevant" is compared with the
  assertion's threshold when given).
- ``g-eval``: the value is one criterion or a list of them; promptfoo's default threshold is 0.7.
- ``context-faithfulness``: the output must be supported by the ``context`` var (refused without one).
- ``not-<type>``: the opposite of ``<type>``.

A ``rubricPrompt`` (the suite's own grading prompt, from the assertion or the test's options) is
rendered with the test's vars, ``output`` and ``rubric``, and given to the judge as the rubric. The
suite's ``provider`` is recorded beside the result, never used: evalhub's judge is the one chosen for
the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalhub.suites.templating import TemplateProblem, render

#: Bumped when a rubric or the reading of a judgement changes, so old and new results stay apart.
CHECK_RUBRICS_VERSION = "1"
G_EVAL_THRESHOLD = 0.7

JUDGEABLE = (
    "llm-rubric",
    "model-graded-closedqa",
    "factuality",
    "answer-relevance",
    "g-eval",
    "context-faithfulness",
)
# Why the others stay pending (by type, then a general reason).
NOT_JUDGEABLE: dict[str, str] = {
    "similar": "needs an embedding model, not a judge",
    "javascript": "code evalhub does not run",
    "python": "code evalhub does not run",
    "webhook": "calls a web service evalhub does not call",
    "select-best": "compares the outputs of several prompts, not one output",
    "max-score": "compares the outputs of several prompts, not one output",
    "moderation": "needs a moderation classifier, not a judge",
    "classifier": "needs a text classifier, not a judge",
    "search-rubric": "needs web search",
    "context-relevance": "grades the retrieved context, not the output",
    "context-recall": "grades the retrieved context, not the output",
    "cost": "needs the provider's cost, which evalhub does not have",
    "latency": "needs the provider's latency, which evalhub does not measure this way",
    "perplexity": "needs the provider's log-probabilities",
    "levenshtein": "an edit distance, not a rubric",
    "rouge-n": "a text metric, not a rubric",
    "bleu": "a text metric, not a rubric",
}


@dataclass(frozen=True)
class CheckRubric:
    """A pending check the judge can grade: the rubric it reads, the threshold on its score (None:
    the judge's own pass/fail), and whether the check is the opposite of the rubric (``not-``)."""

    assert_type: str
    rubric: str
    threshold: float | None
    inverse: bool
    rubric_prompt: bool  # the rubric is the suite's rendered rubricPrompt
    suite_provider: Any


@dataclass(frozen=True)
class NotJudgeable:
    assert_type: str
    reason: str


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _threshold(item: Mapping[str, Any]) -> tuple[float | None, str]:
    raw: Any = item.get("threshold")
    if raw in (None, ""):
        return None, ""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"its threshold {raw!r} is not a number"
    return value, "" if 0.0 <= value <= 1.0 else f"its threshold {value} is outside [0, 1]"


def _rubric_for(kind: str, value: Any, variables: Mapping[str, str]) -> str | NotJudgeable:
    text = _text(value).strip()
    if kind == "llm-rubric":
        return text or NotJudgeable(kind, "llm-rubric without a value or a rubricPrompt has no rubric")
    if kind == "model-graded-closedqa":
        return f"The answer meets this criterion: {text}" if text else NotJudgeable(kind, "no criterion")
    if kind == "factuality":
        if not text:
            return NotJudgeable(kind, "factuality needs the reference statement as its value")
        return (
            "The answer is factually consistent with the reference below: it contradicts nothing in it "
            f"and states no fact it does not support.\nReference: {text}"
        )
    if kind == "answer-relevance":
        return "The answer is directly relevant to the task: it addresses what was asked, not something else."
    if kind == "g-eval":
        criteria = [_text(v).strip() for v in value] if isinstance(value, list) else [text]
        criteria = [c for c in criteria if c]
        if not criteria:
            return NotJudgeable(kind, "g-eval without criteria")
        return "The answer meets every one of these criteria:\n" + "\n".join(f"- {c}" for c in criteria)
    # context-faithfulness
    context = variables.get("context", "")
    if not context:
        return NotJudgeable(kind, "context-faithfulness needs the test's context var, which this case lacks")
    return f"Every claim in the answer is supported by this context:\n{context}"


def _rendered_rubric_prompt(prompt: Any, variables: Mapping[str, str], output: str, rubric: str) -> str:
    """promptfoo's rubricPrompt (text, or a chat message list as a list or as JSON text) rendered with
    the vars, the output and the rubric; messages are joined as "role: content"."""
    messages: Any = prompt
    if isinstance(prompt, str) and prompt.strip().startswith("["):
        try:
            messages = json.loads(prompt)
        except ValueError:
            messages = prompt
    if isinstance(messages, list):
        source = "\n\n".join(
            f"{m.get('role', 'user')}: {_text(m.get('content'))}" if isinstance(m, Mapping) else _text(m)
            for m in messages
        )
    else:
        source = _text(messages)
    return render(source, {**variables, "output": output, "rubric": rubric})


def check_rubric(
    item: Mapping[str, Any], *, variables: Mapping[str, str], output: str
) -> CheckRubric | NotJudgeable:
    """The judge's rubric for one pending assertion (``item``, as imported), or why it is not judged.

    ``variables`` are the case's vars as text (its slices, plus ``input`` and ``reference``).
    """
    kind = str(item.get("type", ""))
    inverse = kind.startswith("not-")
    base = kind[4:] if inverse else kind
    if base not in JUDGEABLE:
        if base.startswith("promptfoo:redteam:"):
            return NotJudgeable(kind, "a red-team plugin grader: its rubric is promptfoo's, not in the suite")
        return NotJudgeable(kind, NOT_JUDGEABLE.get(base, f"{kind!r} is not a rubric the judge can grade"))
    if item.get("transform") or item.get("contextTransform"):
        return NotJudgeable(kind, "its output is transformed first by JavaScript, which evalhub does not run")
    threshold, problem = _threshold(item)
    if problem:
        return NotJudgeable(kind, problem)
    if threshold is None and base == "g-eval":
        threshold = G_EVAL_THRESHOLD
    prompt = item.get("rubricPrompt")
    rubric = _rubric_for(base, item.get("value"), variables)
    if isinstance(rubric, NotJudgeable):
        if not (prompt and base == "llm-rubric"):
            return rubric
        rubric = ""  # llm-rubric whose whole grading is in its rubricPrompt
    if prompt:
        try:
            rubric = _rendered_rubric_prompt(prompt, variables, output, rubric)
        except TemplateProblem as exc:
            return NotJudgeable(kind, f"its rubricPrompt does not render: {exc.message}")
        if not rubric.strip():
            return NotJudgeable(kind, "its rubricPrompt renders empty")
    return CheckRubric(kind, rubric, threshold, inverse, bool(prompt), item.get("provider"))


def check_passed(rubric: CheckRubric, *, judge_passed: bool | None, score: float | None) -> bool | None:
    """The check's result from the judge's answer: None when the answer was unparseable (never a
    guessed pass or fail); against the threshold when there is one, else the judge's own verdict;
    reversed for a ``not-`` assertion."""
    if judge_passed is None:
        return None
    if rubric.threshold is not None:
        if score is None:
            return None
        passed = score >= rubric.threshold
    else:
        passed = judge_passed
    return not passed if rubric.inverse else passed
