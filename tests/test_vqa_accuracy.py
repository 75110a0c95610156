"""The official VQA accuracy and answer normalisation, against values computed by hand."""

from __future__ import annotations

import pytest

from tasks.vqa.accuracy import (answer_scores, infer_answer_type, normalize_answer, process_punctuation,
                                summarize, vqa_accuracy)
from tasks.vqa.data import load_vqa


@pytest.mark.parametrize("raw, expected", [
    ("The net.", "net"),  # full stop deleted, article dropped, lower-cased
    ("Pitcher!", "pitcher"),  # a mark not next to a space becomes a space, then split away
    ("two", "2"), ("None", "0"), ("Ten", "10"),  # number words
    ("an apple", "apple"), ("a  red   ball", "red ball"),  # articles, spacing
    ("dont know", "don't know"), ("isnt", "isn't"),  # contractions restored
    ("1,000", "1000"),  # digit-comma-digit: every mark is deleted, not spaced
    ("3.5", "3.5"),  # a full stop before a digit stays
    ("yes/no", "yes no"), ("t-shirt", "t shirt"),
    ("\tRed \n", "red"),
])
def test_normalisation_cases(raw, expected):
    assert normalize_answer(raw) == expected


def test_punctuation_next_to_a_space_is_deleted():
    assert process_punctuation("hot dog , bun") == "hot dog  bun"
    assert process_punctuation("hot dog,bun") == "hot dog bun"


def test_accuracy_on_the_real_sample_by_hand(shared_data):
    """The real VQA v2 sample's three questions: the ten answers, and predictions that need normalising."""
    questions = load_vqa(shared_data / "vqa_v2_sample" / "questions.json",
                         shared_data / "vqa_v2_sample" / "annotations.json")
    by_id = {q.question_id: q for q in questions}
    net, pitcher, orange = by_id[458752000], by_id[458752001], by_id[458752002]
    assert net.answers.count("net") == 6 and len(net.answers) == 10
    # net: 6 of 10 humans. Leaving out one of the 6 leaves 5 (>= 3): 1; leaving out another leaves 6: 1.
    assert vqa_accuracy("net", net.answers) == 1.0
    assert vqa_accuracy("The net.", net.answers) == 1.0
    # netting, mesh, pitcher, orange: 1 human each. 9 of the 10 leave-one-out sets hold it once: 9/10 * 1/3.
    for answer in ("netting", "mesh", "pitcher", "orange", "Netting"):
        assert vqa_accuracy(answer, net.answers) == pytest.approx(0.3)
    assert vqa_accuracy("nets", net.answers) == 0.0
    # pitcher: 9 of 10 -> 1; catcher: 1 of 10 -> 0.3
    assert vqa_accuracy("A pitcher!", pitcher.answers) == 1.0
    assert vqa_accuracy("catcher", pitcher.answers) == pytest.approx(0.3)
    # orange: all ten agree, so the official code leaves the humans' answers as they are (the prediction is
    # still normalised): "Orange." matches, "red" does not
    assert vqa_accuracy("Orange.", orange.answers) == 1.0
    assert vqa_accuracy("red", orange.answers) == 0.0
    # the trimmed sample has no answer types: they come from the majority answer
    assert {q.answer_type for q in questions} == {"other"}
    summary = summarize([(vqa_accuracy(a, q.answers), q.answer_type, q.question_type)
                         for q, a in zip(questions, ["netting", "pitcher", "orange"])])
    assert summary["overall"] == pytest.approx(round(100 * (0.3 + 1 + 1) / 3, 2))


def test_numbers_articles_and_the_official_quirks():
    answers = ["2"] * 4 + ["two"] * 3 + ["3"] * 3
    # humans' answers only get punctuation processing, so the three "two"s never match a prediction (which is
    # normalised to "2"): "two" scores as "2" with 4 humans -> 1.0
    assert vqa_accuracy("two", answers) == 1.0
    # 3 humans: 3 leave-one-out sets hold 2 of them (2/3), 7 hold all 3 (1): (3 * 2/3 + 7) / 10
    assert vqa_accuracy("three", answers) == pytest.approx(0.9)
    # a prediction keeps no article, while "the dog" humans keep theirs: only the 5 "dog"s match
    answers = ["the dog"] * 5 + ["dog"] * 2 + ["cat"] * 3
    assert vqa_accuracy("The dog", answers) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)
    assert vqa_accuracy("don't know", ["dont know"] * 5 + ["don't know"] * 5) == 1.0
    assert vqa_accuracy("1,000", ["1000"] * 2 + ["1,000"] * 8) == 1.0  # the humans lose their comma too


def test_soft_scores_follow_the_count_table():
    scores = answer_scores(["x"] * 4 + ["b"] * 3 + ["c"] * 2 + ["Two"])
    assert scores == pytest.approx({"x": 1.0, "b": 0.9, "c": 0.6, "2": 0.3})


def test_answer_types_from_answers():
    assert infer_answer_type(["Yes"] * 6 + ["no"] * 4) == "yes/no"
    assert infer_answer_type(["two"] * 6 + ["3"] * 4) == "number"
    assert infer_answer_type(["red"] * 10) == "other"
