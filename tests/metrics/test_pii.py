"""PII detection and redaction (metrics/pii.py), offline."""

import json
import logging
from pathlib import Path

import pytest

from metrics.pii import (
    DEFAULT_ENTITIES,
    SPACY_EXCLUDE,
    PiiFinding,
    build_analyzer,
    detect_pii,
    detect_pii_batch,
    entity_types,
    redact_pii,
    resolve_overlaps,
)

SENTENCE = (
    "Hi, I'm John Smith, email john.smith@example.com, call 212-555-0123. "
    "I live at 42 Main Street, Springfield. Card 4111 1111 1111 1111, SSN 536-22-8796, "
    "IBAN GB82 WEST 1234 5698 7654 32."
)


@pytest.fixture
def analyzer(pii_analyzer):
    return pii_analyzer


def by_type(findings):
    return {(f.entity_type, f.text) for f in findings}


def test_detects_every_kind_of_pii_in_a_fake_profile(analyzer):
    found = by_type(detect_pii(SENTENCE))
    assert ("PERSON", "John Smith") in found
    assert ("EMAIL_ADDRESS", "john.smith@example.com") in found
    assert ("PHONE_NUMBER", "212-555-0123") in found
    assert ("LOCATION", "42 Main Street") in found
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found
    assert ("US_SSN", "536-22-8796") in found
    assert ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32") in found


def test_findings_carry_offsets_into_the_text(analyzer):
    for f in detect_pii(SENTENCE):
        assert SENTENCE[f.start : f.end] == f.text
        assert 0.4 <= f.score <= 1.0


def test_redaction_uses_typed_placeholders(analyzer):
    redacted = redact_pii(SENTENCE, detect_pii(SENTENCE))
    assert redacted == (
        "Hi, I'm <PERSON>, email <EMAIL_ADDRESS>, call <PHONE_NUMBER>. "
        "I live at <LOCATION>, <LOCATION>. Card <CREDIT_CARD>, SSN <US_SSN>, "
        "IBAN <IBAN_CODE>."
    )


def test_ordinary_prose_has_no_pii(analyzer):
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Summarise the quarterly report in three bullet points.",
        "The model achieved 93.5% accuracy on 1200 examples.",
    ]
    assert detect_pii_batch(texts) == [[], [], []]


def test_entities_argument_restricts_the_search(analyzer):
    found = detect_pii(SENTENCE, entities=["EMAIL_ADDRESS"])
    assert entity_types(found) == ["EMAIL_ADDRESS"]


def test_threshold_drops_low_confidence_findings(analyzer):
    # Presidio scores an unlabelled US phone number 0.4.
    text = "call 212-555-0123 tomorrow"
    assert entity_types(detect_pii(text, threshold=0.4)) == ["PHONE_NUMBER"]
    assert detect_pii(text, threshold=0.9) == []


def test_batch_keeps_input_order_and_matches_single_calls(analyzer):
    texts = ["Mail bob@example.org now.", "", "Nothing here.", SENTENCE]
    batch = detect_pii_batch(texts)
    assert batch == [detect_pii(t) for t in texts]
    assert entity_types(batch[0]) == ["EMAIL_ADDRESS"]


def test_empty_and_blank_text_give_no_findings():
    assert detect_pii("") == []
    assert detect_pii("  \n ") == []


def test_non_string_input_is_rejected():
    with pytest.raises(TypeError):
        detect_pii(None)  # type: ignore[arg-type]


def test_long_text_is_scanned_in_overlapping_windows(analyzer, monkeypatch):
    import metrics.pii as pii

    # Small windows so the test is fast; the logic is the one used past 100,000 characters.
    monkeypatch.setattr(pii, "_WINDOW_CHARS", 2_000)
    monkeypatch.setattr(pii, "_WINDOW_OVERLAP", 100)
    filler = "lorem ipsum dolor sit amet. " * 71  # 1,988 characters
    email = "alice.jones@example.com"
    # The first address straddles the first window boundary; the second sits in the last window.
    text = filler + f"Write to {email} now. " + filler * 2 + f"Or {email}."
    found = detect_pii(text, entities=["EMAIL_ADDRESS"])
    assert [f.text for f in found] == [email, email]
    assert all(text[f.start : f.end] == email for f in found)


def test_unicode_heavy_text_does_not_crash(analyzer):
    text = "你好世界 🎉🎉 مرحبا بالعالم — write to zoë@example.com"
    found = detect_pii(text, entities=["EMAIL_ADDRESS"])
    assert [f.text for f in found] == ["zoë@example.com"]


def test_email_check_needs_no_network(analyzer, caplog):
    # tldextract would log a failed fetch of the public suffix list if it tried the network.
    with caplog.at_level(logging.DEBUG):
        assert entity_types(detect_pii("x jane@example.co.uk y")) == ["EMAIL_ADDRESS"]
    assert not [r for r in caplog.records if r.name.startswith("tldextract") and r.levelno >= logging.WARNING]


def test_overlaps_resolved_by_score_then_length():
    a = PiiFinding("URL", 0, 10, "x" * 10, 0.5)
    b = PiiFinding("EMAIL_ADDRESS", 0, 12, "x" * 12, 1.0)
    c = PiiFinding("PERSON", 20, 25, "y" * 5, 0.85)
    d = PiiFinding("LOCATION", 20, 25, "y" * 5, 0.85)
    assert resolve_overlaps([a, b, c, d]) == [b, d]
    assert redact_pii("x" * 12 + " " * 8 + "y" * 5 + "!", [a, b, c]) == "<EMAIL_ADDRESS>        <PERSON>!"


def test_redaction_ignores_findings_outside_the_text():
    assert redact_pii("abc", [PiiFinding("PERSON", 2, 9, "c", 1.0)]) == "abc"


def test_default_entities_cover_the_required_kinds():
    for name in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "LOCATION", "CREDIT_CARD", "IBAN_CODE", "US_SSN"):
        assert name in DEFAULT_ENTITIES


def test_spacy_loads_without_the_parser_but_keeps_what_context_words_need(analyzer):
    pipes = analyzer.nlp_engine.nlp["en"].pipe_names
    assert "parser" not in pipes and "parser" in SPACY_EXCLUDE
    # Context words ("call ... phone") match on lemmas: the lemmatizer and its tagger must stay.
    assert {"ner", "lemmatizer", "tagger"} <= set(pipes)
    assert detect_pii("phone: 212-555-0123")[0].score > detect_pii("ref 212-555-0123")[0].score


def test_lemmas_are_made_only_when_presidio_asks_for_them(analyzer):
    artifacts = analyzer.nlp_engine.process_text("Revenue rose in both regions.", "en")
    assert [t.tag_ for t in artifacts.tokens] == [""] * 6  # NER ran; the tagger did not
    assert artifacts.lemmas[1] == "rise" and "rise" in artifacts.keywords
    assert artifacts.tokens[1].tag_ == "VBD"


FIXTURE_SUITES = Path(__file__).resolve().parents[2] / "fixtures" / "suites"


@pytest.mark.slow
def test_trimmed_pipeline_finds_exactly_what_the_full_pipeline_finds(analyzer):
    texts = [SENTENCE, "Call Dr. Maria Garcia on 020 7946 0958 about the dose."]
    for name in ("summaries.jsonl", "adversarial.jsonl"):
        for line in (FIXTURE_SUITES / name).open(encoding="utf-8"):
            case = json.loads(line)
            texts += [v for v in (case.get("input"), case.get("reference")) if isinstance(v, str)]
    full = detect_pii_batch(texts, analyzer=build_analyzer(spacy_exclude=(), lazy_lemmas=False))
    trimmed = detect_pii_batch(texts)
    assert sum(map(len, trimmed)) > 100  # the fixtures hold plenty of PII: the comparison means something
    assert trimmed == full


# --- the screening misses reported in issue #18, and the labelled evaluation set -------------------


def test_date_of_birth_is_found_with_a_context_word(analyzer):
    assert ("DATE_OF_BIRTH", "1980-02-03") in by_type(detect_pii("Patient DOB 1980-02-03, seen today."))
    assert ("DATE_OF_BIRTH", "3 February 1980") in by_type(detect_pii("She was born on 3 February 1980."))


def test_an_old_date_beside_a_name_is_a_date_of_birth_but_a_recent_plain_date_is_not(analyzer):
    assert ("DATE_OF_BIRTH", "03/02/1980") in by_type(detect_pii("Jane Roe, 03/02/1980, attended."))
    assert not [
        f for f in detect_pii("The board meets on 2025-01-14 at 10:00.") if f.entity_type == "DATE_OF_BIRTH"
    ]


def test_a_short_local_phone_number_is_found_after_a_context_word(analyzer):
    # "call" is a spaCy stop word, which Presidio's context matching skips: "phone" and "ring" are not.
    assert ("PHONE_NUMBER", "555-0142") in by_type(detect_pii("Customer phone 555-0142."))
    assert ("PHONE_NUMBER", "555.0142") in by_type(detect_pii("Please ring 555.0142 tomorrow."))
    assert not detect_pii("See ledger pages 123-4567 for the entries.")


def test_a_company_name_is_not_taken_for_a_person(analyzer):
    found = detect_pii("Revenue at Gamma Inc grew 12% year on year, driven by exports.")
    assert not [f for f in found if f.entity_type in ("PERSON", "LOCATION")]


def test_a_phone_number_that_passes_the_nhs_checksum_stays_a_phone_number(analyzer):
    # 617 674 4938 is a valid NHS number by its mod-11 check, and a Boston phone number.
    assert ("PHONE_NUMBER", "617-674-4938") in by_type(detect_pii("Phone: 617-674-4938"))
    assert ("UK_NHS", "943 476 5919") in by_type(detect_pii("Patient NHS number 943 476 5919"))


def test_uk_national_insurance_numbers_are_found(analyzer):
    assert ("UK_NINO", "AB 12 34 56 C") in by_type(detect_pii("National Insurance number AB 12 34 56 C"))


def _bench_pii():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "pii.py"
    spec = importlib.util.spec_from_file_location("bench_pii", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labelled_set_meets_the_recall_and_precision_targets(analyzer):
    """Issue #18's targets on tests/data/pii/pii_eval.jsonl (bench/pii.py prints the whole table)."""
    bench = _bench_pii()
    rows = [json.loads(line) for line in bench.DATA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 300
    result = bench.score(rows, detect_pii_batch([row["text"] for row in rows]))
    for label, target in bench.RECALL_TARGETS.items():
        assert result["classes"][label]["recall"] >= target, (label, result["classes"][label])
    assert result["overall"]["precision"] >= bench.PRECISION_TARGET, result["overall"]


def test_labelled_set_is_what_its_generator_writes():
    """The committed set is reproducible: rerunning the seeded generator gives the same rows."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "data" / "pii" / "make_pii_set.py"
    spec = importlib.util.spec_from_file_location("make_pii_set", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = [json.loads(line) for line in module.OUT.read_text(encoding="utf-8").splitlines()]
    assert module.build() == committed
    for row in committed:
        for span in row["spans"]:
            assert (
                row["text"][span["start"] : span["end"]].strip() == row["text"][span["start"] : span["end"]]
            )
