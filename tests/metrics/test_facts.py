"""Facts of a summary (numbers, names, periods) against its note and reference."""

from __future__ import annotations

from metrics.facts import fact_check, facts, garbled_reasons, numbers

NOTE = (
    "Notes from the Emberly Foods earnings call for Q2 2024. Quarterly revenue was $318.4 million, which is "
    "up 7.2% compared with a year ago. The operating margin reached 14.60% this quarter. Guidance for next "
    "quarter is roughly $1,330 million in revenue. Chief executive Zara Demir described the quarter as solid."
)
REFERENCE = (
    "Emberly Foods: Q2 2024 revenue $318.4 million, up 7.2%; operating margin 14.6%; next-quarter guidance "
    "about $1330 million. CEO: Zara Demir."
)


def test_numbers_are_normalised_and_periods_are_not_numbers() -> None:
    assert numbers("Q3 revenue $1,200.50 million, 07 days, 14.60% and 142/88 mmHg") == [
        "1200.5",
        "7",
        "14.6",
        "142",
        "88",
    ]


def test_names_skip_sentence_openers_and_labels() -> None:
    found = [(f.kind, f.value) for f in facts(REFERENCE)]
    assert ("name", "Emberly Foods") in found and ("name", "Zara Demir") in found
    assert ("period", "Q2") in found
    assert not any(value in {"CEO", "The", "Chief"} for _, value in found)
    assert [(f.kind, f.value) for f in facts("The patient was seen. Plan: rest.")] == []


def test_the_reference_itself_keeps_every_fact_and_invents_none() -> None:
    check = fact_check(REFERENCE, source=NOTE, reference=REFERENCE)
    assert check.recall == 1.0 and not check.invented and not check.garbled and not check.missing


def test_a_wrong_number_and_a_wrong_name_are_invented_and_their_originals_missing() -> None:
    output = REFERENCE.replace("318.4", "381.4").replace("Zara Demir", "Zara Dimer")
    check = fact_check(output, source=NOTE, reference=REFERENCE)
    assert [f.value for f in check.invented] == ["381.4", "Zara Dimer"]
    assert [output[f.start : f.end] for f in check.invented] == ["381.4", "Zara Dimer"]
    assert set(check.missing) == {("number", "318.4"), ("name", "Zara Demir")}
    assert 0.7 < check.recall < 0.8


def test_an_omission_lowers_recall_without_inventing() -> None:
    check = fact_check(
        "Emberly Foods reported Q2 2024 revenue of $318.4 million.", source=NOTE, reference=REFERENCE
    )
    assert not check.invented
    assert check.missing == (
        ("name", "Zara Demir"),
        ("number", "1330"),
        ("number", "14.6"),
        ("number", "7.2"),
    )


def test_a_shorter_form_of_a_name_in_the_note_is_not_invented() -> None:
    assert not fact_check("Emberly grew.", source=NOTE, reference=REFERENCE).invented


def test_garbled_text_is_recognised_and_finished_prose_is_not() -> None:
    assert garbled_reasons(REFERENCE) == []
    assert garbled_reasons("Revenue was up 1.1% year over year.") == []
    assert garbled_reasons("") == ["empty"]
    assert "broken punctuation" in garbled_reasons("A only summarise. reported Q3 revenue of $127..")
    assert "a sentence starts in lower case" in garbled_reasons("A only summarise. reported Q3 revenue.")
    assert "repeated words" in garbled_reasons("Revenue of the the company rose.")
    assert "unfinished" in garbled_reasons("Emberly Foods reported Q2 2024 revenue of")
