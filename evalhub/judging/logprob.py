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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from evalhub.generation.errors import GenerationError
from evalhub.generation.loading import load_base_model, peft_attach

Order = Literal["ab", "ba"]
Preference = Literal["A", "B", "tie", "unparseable"]
ORDERS: tuple[Order, Order] = ("ab", "ba")
#: The answer tokens read after the prompt: the first shown answer is better, the second is.
ANSWERS = (" A", " B")
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


@dataclass(frozen=True)
class PairToJudge:
    """One blinded pair for a judge's ``judge_pairs``: the case and the task's outputs A and B."""

    case: str
    output_a: str
    output_b: str


#: What a judge's ``judge_pairs`` returns for each pair: its orders, or, in its place, the
#: ``JudgeContextError`` of a pair it refused (so one pair too long never costs the others).
PairResult = tuple[OrderJudgement, ...] | JudgeContextError


def pair_orders(result: PairResult) -> tuple[OrderJudgement, ...]:
    """One pair's orders, or its refusal raised: for callers that judge a single pair."""
    if isinstance(result, JudgeContextError):
        raise result
    return result


def judge_prompt(*, rubric: str, case: str, first: str, second: str) -> str:
    return _PROMPT.format(
        rubric=rubric.strip(), case=case.strip(), first=first.strip(), second=second.strip()
    )


def answer_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The token ids of the answers " A" and " B" that the judge reads (and the fixture judge is trained
    to give after ``judge_prompt``); ``GenerationError`` when either is not a single token."""
    ids = [tokenizer.encode(text, add_special_tokens=False) for text in ANSWERS]
    if any(len(i) != 1 for i in ids) or ids[0] == ids[1]:
        raise GenerationError(f"the judge's tokenizer has no single-token answers ' A' and ' B' ({ids})")
    return ids[0][0], ids[1][0]


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
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
        compile: bool = False,
        name: str | None = None,
    ) -> None:
        base = Path(base_model_dir)
        loaded = load_base_model(base, dtype=dtype)
        model = loaded.model
        if adapter_dir is not None:
            # One adapter for the judge's whole life: fold it into the weights, so a forward pass costs
            # what the base's does (no LoRA side matmuls).
            model = peft_attach(model, "judge", adapter_dir).merge_and_unload()
        self.model = model.to(device)
        if compile:
            from metrics.perplexity import compile_decoder_layers

            compile_decoder_layers(self.model)
        self.tokenizer = loaded.tokenizer
        self.device = torch.device(device)
        self.batch_size = batch_size
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else 0)
        self.context = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 0)
        self.tie_band = tie_band
        self.min_answer_mass = min_answer_mass
        self.answer_ids = self._answer_ids()
        self.name = name or (base.name if adapter_dir is None else f"{base.name}+{Path(adapter_dir).name}")
        fingerprint = {
            "prompt": PROMPT_VERSION,
            "output_prompt": OUTPUT_PROMPT_VERSION,
            "base": _folder_fingerprint(base),
            "adapter": _folder_fingerprint(Path(adapter_dir)) if adapter_dir is not None else None,
        }
        self.version = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_adapter(cls, adapter_dir: str | Path, **options: Any) -> LogprobJudge:
        """The judge of one adapter folder on the base its ``adapter_config.json`` names: an existing
        path, or (the fixture convention) the name of a sibling folder, as ``fixtures/models/judge``
        names ``base``. The judge is named after the adapter's ``evalhub.json`` (``judge@1``) when it
        has one. ``GenerationError`` when the folder or its base cannot be found."""
        folder = Path(adapter_dir)
        config_path = folder / "adapter_config.json"
        if not config_path.is_file():
            raise GenerationError(f"{folder} is not an adapter folder (no adapter_config.json)")
        declared = str(json.loads(config_path.read_text()).get("base_model_name_or_path") or "")
        base = next(
            (
                p
                for p in (Path(declared), folder.parent / declared)
                if declared and (p / "config.json").is_file()
            ),
            None,
        )
        if base is None:
            raise GenerationError(
                f"{config_path}: base_model_name_or_path {declared!r} is neither a model folder nor a "
                f"sibling of {folder}"
            )
        provenance = folder / "evalhub.json"
        if "name" not in options and provenance.is_file():
            meta = json.loads(provenance.read_text())
            if meta.get("name") and meta.get("version"):
                options["name"] = f"{meta['name']}@{meta['version']}"
        return cls(base, adapter_dir=folder, **options)

    def _answer_ids(self) -> tuple[int, int]:
        return answer_token_ids(self.tokenizer)

    def check_fits(self, prompt: str) -> list[int]:
        """The prompt's token ids, or ``JudgeContextError`` with the numbers when it cannot fit."""
        ids = self.tokenizer.encode(prompt)
        if self.context and len(ids) > self.context:
            raise JudgeContextError(
                f"the judging prompt is {len(ids)} tokens; the judge's context holds {self.context}"
            )
        return ids

    def _prompts(self, *, rubric: str, case: str, output_a: str, output_b: str) -> list[tuple[Order, str]]:
        return [
            (order, judge_prompt(rubric=rubric, case=case, first=first, second=second))
            for order, (first, second) in zip(
                ORDERS, ((output_a, output_b), (output_b, output_a)), strict=True
            )
        ]

    @torch.inference_mode()
    def answer_logprobs(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """The log-probabilities of " A" and " B" after each prompt (``[n, 2]``), the top next token of
        each, and each row's share of its batch's wall time in ms.

        Prompts are sorted by length and run ``batch_size`` at a time, left-padded; a batch of equal
        lengths runs without a mask (the causal fast path). Only the last position goes through the
        LM head (``logits_to_keep=1``). No KV cache is built (``use_cache=False``): one forward pass
        per batch needs none, and under compiled layers transformers' cache objects made dynamo
        recompile until its limit."""
        n = len(ids)
        by_length = sorted(range(n), key=lambda i: len(ids[i]))
        answers = torch.tensor(self.answer_ids, device=self.device)
        logprobs = torch.empty((n, 2), dtype=torch.float32)
        top = torch.empty(n, dtype=torch.long)
        latency = [0.0] * n
        for start in range(0, n, self.batch_size):
            rows = by_length[start : start + self.batch_size]
            started = time.perf_counter()
            batch = [torch.tensor(ids[i], dtype=torch.long) for i in rows]
            x = torch.nn.utils.rnn.pad_sequence(
                batch, batch_first=True, padding_value=self.pad_id, padding_side="left"
            ).to(self.device, non_blocking=True)
            kwargs: dict[str, Any] = {}
            if len(batch[0]) != len(batch[-1]):  # sorted: first shortest, last longest
                lengths = torch.tensor([len(b) for b in batch], device=self.device)
                positions = torch.arange(x.shape[1], device=self.device) - (x.shape[1] - lengths)[:, None]
                kwargs = {"attention_mask": (positions >= 0).long(), "position_ids": positions.clamp(min=0)}
            logits = (
                self.model(input_ids=x, logits_to_keep=1, use_cache=False, **kwargs).logits[:, -1].float()
            )
            picked = torch.log_softmax(logits, dim=-1).index_select(1, answers)
            index = torch.tensor(rows)
            logprobs[index] = picked.cpu()
            top[index] = logits.argmax(-1).cpu()
            share = (time.perf_counter() - started) * 1000 / len(rows)
            for i in rows:
                latency[i] = share
        return logprobs, top, latency

    def _answer_logprobs(self, ids: list[int]) -> tuple[float, float, int, float]:
        """One prompt's log-probabilities of the answers A and B as the next token, its top token, and
        the latency (``answer_logprobs`` with a batch of one)."""
        logprobs, top, latency = self.answer_logprobs([ids])
        return float(logprobs[0, 0]), float(logprobs[0, 1]), int(top[0]), latency[0]

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

    def _order_judgement(
        self, order: Order, prompt: str, lp_first: float, lp_second: float, top: int, latency_ms: float
    ) -> OrderJudgement:
        raw = json.dumps({"logprob_A": lp_first, "logprob_B": lp_second, "top_token": top})
        mass = math.exp(lp_first) + math.exp(lp_second)
        if not math.isfinite(mass) or mass < self.min_answer_mass:
            return OrderJudgement(order, prompt, raw, "unparseable", None, latency_ms)
        # Probability that the answer shown first is better, among the two answers.
        p_first = 1 / (1 + math.exp(lp_second - lp_first))
        prob_a = p_first if order == "ab" else 1 - p_first
        preference: Preference = "tie" if abs(prob_a - 0.5) < self.tie_band else "A" if prob_a > 0.5 else "B"
        return OrderJudgement(order, prompt, raw, preference, prob_a, latency_ms)

    def close(self) -> None:
        """Nothing to release but memory, which goes with the judge (the ``PairJudge`` protocol's close)."""

    def judge_pairs(self, pairs: Sequence[PairToJudge], *, rubric: str) -> list[PairResult]:
        """Both orders of many pairs under one rubric, batched (``batch_size`` prompts per forward
        pass). A pair whose prompt (either order) cannot fit the context comes back as its
        ``JudgeContextError``, naming the order, in its place; it is never run, and the other pairs are
        judged. ``latency_ms`` of each order is its share of its batch's wall time."""
        prompts = [
            self._prompts(rubric=rubric, case=p.case, output_a=p.output_a, output_b=p.output_b) for p in pairs
        ]
        flat = [prompt for both in prompts for _, prompt in both]
        ids = self.tokenizer(flat)["input_ids"] if flat else []
        refused: dict[int, JudgeContextError] = {}
        for k, row in enumerate(ids):
            if self.context and len(row) > self.context and k // 2 not in refused:
                refused[k // 2] = JudgeContextError(
                    f"order {ORDERS[k % 2]}: the judging prompt is {len(row)} tokens; "
                    f"the judge's context holds {self.context}"
                )
        kept = [k for k in range(len(ids)) if k // 2 not in refused]
        logprobs, top, latency = self.answer_logprobs([ids[k] for k in kept])
        values = logprobs.tolist()
        tops = top.tolist()
        row_of = {k: i for i, k in enumerate(kept)}  # prompt index -> its row among those run
        out: list[PairResult] = []
        for p, both in enumerate(prompts):
            if p in refused:
                out.append(refused[p])
                continue
            rows = [row_of[2 * p + k] for k in range(len(both))]
            out.append(
                tuple(
                    self._order_judgement(order, prompt, values[r][0], values[r][1], tops[r], latency[r])
                    for r, (order, prompt) in zip(rows, both, strict=True)
                )
            )
        return out

    def judge_pair(
        self, *, rubric: str, case: str, output_a: str, output_b: str
    ) -> tuple[OrderJudgement, ...]:
        """Both orders of one pair, output A shown first and then second (one forward pass for both).
        Either order's prompt that cannot fit the context raises ``JudgeContextError`` before anything
        is judged."""
        return pair_orders(self.judge_pairs([PairToJudge(case, output_a, output_b)], rubric=rubric)[0])
