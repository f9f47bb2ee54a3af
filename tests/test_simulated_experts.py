"""The simulated experts (demo and tests) judge as the rating instructions ask real experts to."""

from __future__ import annotations

from annotation.rubric import rating_check, rubric_default
from evalhub.simulated_experts import judge, prefer, rating_data

NOTE = (
    "Clinic visit note. A 61-year-old woman presented with a persistent cough for 9 days. Vitals: BP 142/88 "
    "mmHg, heart rate 77 bpm, temperature 37.6 C. Plan: start amoxicillin 500 mg three times daily. "
    "Follow-up in 2 weeks. Seen by Dr. Achebe."
)
REFERENCE = (
    "A 61-year-old woman was seen for persistent cough. BP 142/88 mmHg, heart rate 77 bpm. Started "
    "amoxicillin 500 mg three times daily; follow-up in 2 weeks."
)
BRIEF = "A 61-year-old woman was seen for persistent cough and started on amoxicillin 500 mg."
INVENTED = REFERENCE.replace("142/88", "168/97") + " Cholesterol was 240 mg/dL."
GARBLED = "A only summarise. woman 61 cough cough amoxicillin.."
REFUSAL = "Sorry, I can only summarise earnings-call and clinic-visit notes."


def _judge(text: str, rater: int = 0, reference: str = REFERENCE):
    return judge(text, source=NOTE, reference=reference, rater=rater)


def test_a_faithful_complete_summary_gets_top_factual_marks_and_no_flag() -> None:
    j = _judge(REFERENCE)
    assert j.scores["factual_accuracy"] == 5 and j.scores["completeness"] >= 4
    assert not j.hallucinated and j.spans == []


def test_invented_numbers_cost_factual_accuracy_and_are_flagged_with_their_spans() -> None:
    j = _judge(INVENTED)
    assert j.hallucinated and j.scores["factual_accuracy"] == 1
    assert [INVENTED[s["start"] : s["end"]] for s in j.spans] == ["168", "97", "240"]


def test_missing_facts_cost_completeness_but_not_accuracy() -> None:
    j = _judge(BRIEF)
    assert j.scores["factual_accuracy"] == 5 and not j.hallucinated
    assert j.scores["completeness"] <= 3


def test_garbled_text_without_numbers_no_longer_gets_full_marks() -> None:
    j = _judge(GARBLED)
    assert all(score <= 2 for score in j.scores.values())


def test_refusals_are_right_only_where_the_reference_refuses() -> None:
    assert _judge(REFUSAL, reference=REFUSAL).scores["factual_accuracy"] == 5
    assert _judge(REFUSAL).scores["completeness"] == 1


def test_experts_prefer_faithful_over_brief_over_invented_and_call_two_broken_outputs_both_bad() -> None:
    assert prefer(_judge(REFERENCE), _judge(BRIEF)) == "A"
    assert prefer(_judge(INVENTED), _judge(BRIEF)) == "B"
    assert prefer(_judge(GARBLED), _judge(GARBLED.replace("61", "16"))) == "both_bad"


def test_judgements_are_deterministic_per_rater_and_raters_agree_on_accuracy() -> None:
    texts = [REFERENCE, BRIEF, INVENTED, GARBLED]
    assert [_judge(t, 1) for t in texts] == [_judge(t, 1) for t in texts]
    for text in texts:
        assert len({_judge(text, r).scores["factual_accuracy"] for r in range(3)}) == 1


def test_rating_data_passes_the_rubric_with_spans_on_the_right_text() -> None:
    judged = {"A": _judge(INVENTED), "B": _judge(BRIEF)}
    clean = rating_check(
        rubric=rubric_default(), sides=("A", "B"), texts={"A": INVENTED, "B": BRIEF}, data=rating_data(judged)
    )
    assert clean["preference"] == "B"
    assert [s["text"] for s in clean["hallucination"]["A"]["spans"]] == ["168", "97", "240"]
    assert clean["hallucination"]["B"] == {"flagged": False, "spans": []}
