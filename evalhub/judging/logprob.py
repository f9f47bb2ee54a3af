"""A judge that reads the log-probabilities of the answer tokens "A" and "B" from a local causal LM
(optionally with a LoRA adapter), loaded through the generation package: pairs in both orders, and
single outputs against a rubric (pass is answer A, fail answer B: the same single-token answers).

No Django here: the services in ``evalhub.judging.services`` store what this returns. Reading the
next-token distribution instead of parsing free text means the answer is never guessed from prose;
when the model puts almost no probability on either answer token the result is "unparseable".
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from evalhub.generation.errors import GenerationError
from evalhub.generation.loading import load_base_model, peft_attach

Order = Literal["ab", "ba"]
Preference = Literal["A", "B", "tie", "unparseable"]
ORDERS: tuple[Order, Order] = ("ab", "ba")
#: Bumped when the prompt or the reading of the answer changes, so judgements of old and new stay apart.
PROMPT_VERSION = "1"
_PROMPT = (
    "You compare two answers to the same task.\n"
    "Rubric:\n{rubric}\n\n"
    "Task:\n{case}\n\n"
    "Answer A:\n{first}\n\n"
    "Answer B:\n{second}\n\n"
    "Which answer is better under the rubric? Reply with A or B.\n"
    "Better answer:"
)
#: Bumped with the single-output prompt below (part of the judge's version, like PROMPT_VERSION).
OUTPUT_PROMPT_VERSION = "1"
_OUTPUT_PROMPT = (
    "You check one answer against a rubric.\n"
    "Rubric:\n{rubric}\n\n"
    "Task:\n{case}\n\n"
    "Answer:\n{output}\n\n"
    "Does the answer meet the rubric? Reply with A if it passes, B if it fails.\n"
    "Verdict:"
)


class JudgeContextError(GenerationError):
    """The pair does not fit the judge's context; refused before any forward pass."""


@dataclass(frozen=True)
class OrderJudgement:
    """One order of one pair. ``preference`` and ``prob_a`` are in the pair's own frame: "A" is the
    task's output A whichever position it was shown in."""

    order: Order
    prompt: str
    raw_output: str
    preference: Preference
    prob_a: float | None
    latency_ms: float
    #: Per-criterion scores when the judge gives them (the HTTP judge's JSON answer).
    scores: dict[str, float] = field(default_factory=dict)
    #: Why there is no usable answer (timeout, HTTP 429 after the retries, refusal); "" when it answered.
    failure: str = ""


@dataclass(frozen=True)
class OutputJudgement:
    """One output judged against a rubric. ``passed`` is None when the answer was unparseable (the
    model put almost no probability on either answer token): never a guessed pass or fail.
    ``prob_pass`` is the probability of "passes" among the two answers; ``score`` the same in [0, 1]
    (promptfoo's score, compared with an assertion's threshold). An HTTP judge that could not be
    reached gives ``passed=None`` too, and ``reason`` says which."""

    prompt: str
    raw_output: str
    passed: bool | None  # None = unparseable
    prob_pass: float | None
    score: float | None
    reason: str
    latency_ms: float


def output_prompt(*, rubric: str, case: str, output: str) -> str:
    return _OUTPUT_PROMPT.format(rubric=rubric.strip(), case=case.strip(), output=output.strip())


def judge_prompt(*, rubric: str, case: str, first: str, second: str) -> str:
    return _PROMPT.format(
        rubric=rubric.strip(), case=case.strip(), first=first.strip(), second=second.strip()
    )


def _folder_fingerprint(folder: Path) -> list[Any]:
    # Configs by content, weights by name and size: hashing gigabytes of weights per load is too slow.
    parts: list[Any] = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            parts.append([path.name, hashlib.sha256(path.read_bytes()).hexdigest()])
        elif path.suffix in (".safetensors", ".bin"):
            parts.append([path.name, path.stat().st_size])
    return parts


class LogprobJudge:
    """Judges pairs with a local model. ``tie_band``: a probability of A within this distance of 0.5
    is a tie. ``min_answer_mass``: below this total probability on the two answer tokens, the model
    did not answer A or B, and the order is recorded as unparseable."""

    def __init__(
        self,
        base_model_dir: str | Path,
        *,
        adapter_dir: str | Path | None = None,
        device: str = "cpu",
        tie_band: float = 0.05,
        min_answer_mass: float = 0.01,
    ) -> None:
        base = Path(base_model_dir)
        loaded = load_base_model(base, dtype=torch.float32)
        model = loaded.model
        if adapter_dir is not None:
            model = peft_attach(model, "judge", adapter_dir)
        self.model = model.to(device)
        self.tokenizer = loaded.tokenizer
        self.device = torch.device(device)
        self.context = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 0)
        self.tie_band = tie_band
        self.min_answer_mass = min_answer_mass
        self.answer_ids = self._answer_ids()
        self.name = base.name if adapter_dir is None else f"{base.name}+{Path(adapter_dir).name}"
        fingerprint = {
            "prompt": PROMPT_VERSION,
            "output_prompt": OUTPUT_PROMPT_VERSION,
            "base": _folder_fingerprint(base),
            "adapter": _folder_fingerprint(Path(adapter_dir)) if adapter_dir is not None else None,
        }
        self.version = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]

    def _answer_ids(self) -> tuple[int, int]:
        ids = [self.tokenizer.encode(text, add_special_tokens=False) for text in (" A", " B")]
        if any(len(i) != 1 for i in ids) or ids[0] == ids[1]:
            raise GenerationError(f"the judge's tokenizer has no single-token answers ' A' and ' B' ({ids})")
        return ids[0][0], ids[1][0]

    def check_fits(self, prompt: str) -> list[int]:
        """The prompt's token ids, or ``JudgeContextError`` with the numbers when it cannot fit."""
        ids = self.tokenizer.encode(prompt)
        if self.context and len(ids) > self.context:
            raise JudgeContextError(
                f"the judging prompt is {len(ids)} tokens; the judge's context holds {self.context}"
            )
        return ids

    @torch.inference_mode()
    def _answer_logprobs(self, ids: list[int]) -> tuple[float, float, int, float]:
        """Log-probabilities of the answers A and B as the next token, the top token, and the latency."""
        started = time.perf_counter()
        logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        latency_ms = (time.perf_counter() - started) * 1000
        lp_a, lp_b = (float(logprobs[i]) for i in self.answer_ids)
        return lp_a, lp_b, int(torch.argmax(logits)), latency_ms

    def judge_output(self, *, rubric: str, case: str, output: str) -> OutputJudgement:
        """One output against ``rubric``: passes (answer A) or fails (answer B), read from the answer
        tokens' log-probabilities. A prompt the context cannot hold raises ``JudgeContextError``."""
        prompt = output_prompt(rubric=rubric, case=case, output=output)
        ids = self.check_fits(prompt)
        lp_pass, lp_fail, top, latency_ms = self._answer_logprobs(ids)
        raw = json.dumps({"logprob_pass": lp_pass, "logprob_fail": lp_fail, "top_token": top})
        mass = math.exp(lp_pass) + math.exp(lp_fail)
        if not math.isfinite(mass) or mass < self.min_answer_mass:
            reason = (
                f"unparseable: the judge put {mass:.4f} of its probability on the answers "
                f"(at least {self.min_answer_mass} needed)"
            )
            return OutputJudgement(prompt, raw, None, None, None, reason, latency_ms)
        prob_pass = 1 / (1 + math.exp(lp_fail - lp_pass))
        passed = prob_pass > 0.5
        reason = f"{'passes' if passed else 'fails'}: P(pass) = {prob_pass:.3f} from the answer tokens"
        return OutputJudgement(prompt, raw, passed, prob_pass, prob_pass, reason, latency_ms)

    @torch.inference_mode()
    def _judge_order(
        self, order: Order, *, rubric: str, case: str, output_a: str, output_b: str
    ) -> OrderJudgement:
        first, second = (output_a, output_b) if order == "ab" else (output_b, output_a)
        prompt = judge_prompt(rubric=rubric, case=case, first=first, second=second)
        ids = self.check_fits(prompt)
        lp_first, lp_second, top, latency_ms = self._answer_logprobs(ids)
        raw = json.dumps({"logprob_A": lp_first, "logprob_B": lp_second, "top_token": top})
        mass = math.exp(lp_first) + math.exp(lp_second)
        if not math.isfinite(mass) or mass < self.min_answer_mass:
            return OrderJudgement(order, prompt, raw, "unparseable", None, latency_ms)
        # Probability that the answer shown first is better, among the two answers.
        p_first = 1 / (1 + math.exp(lp_second - lp_first))
        prob_a = p_first if order == "ab" else 1 - p_first
        preference: Preference = "tie" if abs(prob_a - 0.5) < self.tie_band else "A" if prob_a > 0.5 else "B"
        return OrderJudgement(order, prompt, raw, preference, prob_a, latency_ms)

    def judge_pair(
        self, *, rubric: str, case: str, output_a: str, output_b: str
    ) -> tuple[OrderJudgement, ...]:
        """Both orders of one pair, output A shown first and then second. Either order's prompt that
        cannot fit the context raises ``JudgeContextError`` before anything is judged."""
        for order in ORDERS:
            first, second = (output_a, output_b) if order == "ab" else (output_b, output_a)
            self.check_fits(judge_prompt(rubric=rubric, case=case, first=first, second=second))
        return tuple(
            self._judge_order(order, rubric=rubric, case=case, output_a=output_a, output_b=output_b)
            for order in ORDERS
        )
