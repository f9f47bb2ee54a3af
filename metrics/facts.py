"""Checkable facts in a summary: numbers, names and periods, compared with the source and the reference.

A summary's facts are what a domain expert checks first: every number, every proper name (a run of
capitalised words that is not an ordinary sentence opener) and every period such as ``Q3``. A fact
of the reference that is missing from the output was *omitted*; a fact of the output that the source
does not contain was *invented*. Text is *garbled* when it shows the marks of a broken generation
(doubled punctuation, a sentence that starts in lower case, a repeated run of words, no ending).
Plain Python: the fixture build (no Django) and the simulated experts use the same rules.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

# A number not glued to a word on its left ("Q3" is a period, not the number 3); commas group thousands.
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])\d+(?:\.\d+)?")
_PERIOD = re.compile(r"\b(?:Q[1-4]|H[12]|FY\d{2,4})\b")
_NAME_RUN = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*\b")
_SENTENCE_END = re.compile(r"[.!?;:]\s+")
# Capitalised only because they open a sentence or a label; never names on their own.
_OPENERS = frozenset(
    [
        "a",
        "an",
        "the",
        "in",
        "on",
        "at",
        "for",
        "from",
        "of",
        "to",
        "and",
        "or",
        "but",
        "with",
        "by",
        "as",
        "is",
        "was",
        "were",
        "be",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "there",
        "here",
        "then",
        "next",
        "after",
        "before",
        "during",
        "patient",
        "plan",
        "vitals",
        "started",
        "prescribed",
        "revenue",
        "guidance",
        "sales",
        "operating",
        "margin",
        "follow-up",
        "review",
        "visit",
        "notes",
        "note",
        "call",
        "summary",
        "short",
        "sorry",
        "earnings",
        "clinic",
        "outpatient",
        "observations",
        "results",
        "blood",
        "heart",
        "temperature",
        "chief",
        "ceo",
        "cfo",
        "management",
        "analysts",
        "company",
        "quarter",
        "quarterly",
        "record",
        "key",
        "figures",
        "recap",
        "dr",
        "mr",
        "mrs",
        "ms",
        "booked",
        "seen",
        "on",
        "examination",
        "also",
        "net",
        "cholesterol",
        "weight",
        "an",
        "ecg",
    ]
)


def _norm_number(text: str) -> str:
    text = text.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.lstrip("0") or "0"


def numbers(text: str) -> list[str]:
    """The numbers in ``text``, normalised (``1,200.50`` -> ``1200.5``), in order of appearance."""
    return [_norm_number(m.group()) for m in _NUMBER.finditer(text)]


def _name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _NAME_RUN.finditer(text):
        start, end = match.span()
        words = match.group().split()
        # Drop leading words that are only capitalised as sentence openers ("The", "Patient").
        while words and words[0].lower() in _OPENERS:
            start += len(words[0]) + 1
            words = words[1:]
        if words:
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class Fact:
    """One checkable fact: its normalised value and where it sits in the text it came from."""

    kind: str  # "number", "name" or "period"
    value: str
    start: int
    end: int


def facts(text: str) -> list[Fact]:
    """Every number, name and period in ``text``, in order of appearance."""
    found = [Fact("number", _norm_number(m.group()), *m.span()) for m in _NUMBER.finditer(text)]
    found += [Fact("period", m.group(), *m.span()) for m in _PERIOD.finditer(text)]
    found += [Fact("name", text[s:e], s, e) for s, e in _name_spans(text)]
    return sorted(found, key=lambda f: f.start)


def _values(text: str) -> set[tuple[str, str]]:
    return {(f.kind, f.value) for f in facts(text)}


def _states(text: str, numbers_in_text: set[str], fact: tuple[str, str]) -> bool:
    kind, value = fact
    if kind == "number":
        return value in numbers_in_text
    # A name or period counts where the text holds it as whole words ("Foxglove" within "Foxglove Foods").
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def garbled_reasons(text: str) -> list[str]:
    """Why ``text`` reads as a broken generation; empty when it reads as finished prose."""
    stripped = text.strip()
    if not stripped:
        return ["empty"]
    reasons = []
    if re.search(r"(?<!\.)\.\.(?!\.)|\$\.|\s[.,;:]|[.,;:]{2,}", stripped.replace("...", "")):
        reasons.append("broken punctuation")
    if re.search(r"[.!?]\s+[a-z]", stripped):
        reasons.append("a sentence starts in lower case")
    words = re.findall(r"[^\W\d_]+", stripped.lower())  # words only: "1.1" is not a repeated word
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if any(a == b for a, b in itertools.pairwise(words)) or len(set(trigrams)) < len(trigrams):
        reasons.append("repeated words")
    if stripped[-1] not in ".!?)\"'":
        reasons.append("unfinished")
    return reasons


@dataclass(frozen=True)
class FactCheck:
    """An output's facts against its source and reference."""

    wanted: tuple[tuple[str, str], ...]  # the reference's facts
    kept: tuple[tuple[str, str], ...]  # those the output states too
    invented: tuple[Fact, ...]  # the output's facts the source does not contain
    garbled: tuple[str, ...]

    @property
    def recall(self) -> float:
        """Share of the reference's facts that the output states (1.0 when the reference has none)."""
        return len(self.kept) / len(self.wanted) if self.wanted else 1.0

    @property
    def missing(self) -> tuple[tuple[str, str], ...]:
        return tuple(f for f in self.wanted if f not in self.kept)


def fact_check(output: str, *, source: str, reference: str) -> FactCheck:
    """Compare ``output``'s facts with the ``reference``'s (omitted) and the ``source``'s (invented)."""
    wanted = sorted(_values(reference))
    out_numbers = set(numbers(output))
    known = f"{source}\n{reference}"
    known_numbers = set(numbers(known))
    invented = tuple(f for f in facts(output) if not _states(known, known_numbers, (f.kind, f.value)))
    return FactCheck(
        wanted=tuple(wanted),
        kept=tuple(f for f in wanted if _states(output, out_numbers, f)),
        invented=invented,
        garbled=tuple(garbled_reasons(output)),
    )
