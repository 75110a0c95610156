"""VQA accuracy exactly as the official evaluation computes it (GT-Vision-Lab/VQA, ``vqaEval.py``).

For a predicted answer and the ten human answers of a question::

    acc = mean over the 10 leave-one-out sets of 9 humans of min(#humans in the set who gave the answer / 3, 1)

Normalisation, as the official code applies it (quirks kept, so numbers match the evaluation server):

* the prediction: newlines and tabs become spaces, then strip, then :func:`process_punctuation` and
  :func:`process_digit_article` (lower-case, number words to digits, articles dropped, contractions
  restored: ``"The Two."`` -> ``"2"``);
* the human answers: only when they are not all identical, and then only :func:`process_punctuation`
  (they are not lower-cased nor have articles dropped: VQA's answers were normalised when collected).

:func:`process_punctuation` keeps the official regular expressions, including ``periodStrip``'s
``(?!<=\\d)`` (a typo for a look-behind, so it is a plain look-ahead) and the ``re.UNICODE`` passed as the
``count`` argument (at most 32 full stops removed).

Answer types: ``yes/no``, ``number``, ``other`` from the annotation's ``answer_type``; annotations that lack it
(the trimmed real sample) get it from the majority answer (:func:`infer_answer_type`, VQA's own rule).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
ANSWER_TYPES = ("yes/no", "number", "other")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``: a mark next to a space (or any mark in a text with a digit-comma-
    digit) is deleted, other marks become spaces; full stops not before a digit are deleted."""
    out = text
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, re.UNICODE)  # the official code passes re.UNICODE as count (32)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case words, number words to digits, articles dropped,
    contractions restored."""
    words = [MANUAL_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """A predicted answer as the official evaluation compares it (also the form of label-space answers)."""
    return process_digit_article(process_punctuation(_clean(answer)))


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """The official accuracy of one prediction against the (ten) human answers, in [0, 1]."""
    if not answers:
        raise ValueError("a question needs human answers to be scored")
    result = normalize_answer(prediction)
    humans = [_clean(a) for a in answers]
    if len(set(humans)) > 1:
        humans = [process_punctuation(a) for a in humans]
    return _leave_one_out(sum(h == result for h in humans), len(humans))


def _leave_one_out(matches: int, total: int) -> float:
    """Mean over the ``total`` leave-one-out sets of min(matches in the set / 3, 1), for an answer that
    ``matches`` of the ``total`` humans gave."""
    if total == 1:  # one human answer (GQA-style data): exact match
        return float(matches > 0)
    return (matches * min((matches - 1) / 3, 1.0) + (total - matches) * min(matches / 3, 1.0)) / total


def answer_scores(answers: list[str]) -> dict[str, float]:
    """Soft targets: the accuracy each distinct (normalised) human answer would score, e.g. an answer given by
    1, 2, 3 or 4+ of ten humans scores 0.3, 0.6, 0.9, 1 (bottom-up attention's ``get_score`` table)."""
    counts = Counter(normalize_answer(a) for a in answers)
    return {answer: _leave_one_out(n, len(answers)) for answer, n in counts.items()}


def infer_answer_type(answers: list[str]) -> str:
    """VQA's answer type from the answers: ``yes/no`` if the majority answer is yes or no, ``number`` if it is
    a number, else ``other`` (for annotations without an ``answer_type`` field)."""
    majority = Counter(normalize_answer(a) for a in answers).most_common(1)[0][0] if answers else ""
    if majority in ("yes", "no"):
        return "yes/no"
    return "number" if majority.replace(".", "", 1).isdigit() else "other"


def summarize(per_question: Iterable[tuple[float, str, str]]) -> dict:
    """Overall, per-answer-type and per-question-type accuracy in percent (rounded to 2 decimals, as the
    official code) from ``(accuracy, answer_type, question_type)`` per question."""
    overall: list[float] = []
    by_answer: dict[str, list[float]] = defaultdict(list)
    by_question: dict[str, list[float]] = defaultdict(list)
    for acc, answer_type, question_type in per_question:
        overall.append(acc)
        by_answer[answer_type].append(acc)
        by_question[question_type].append(acc)

    def pct(values: list[float]) -> float:
        return round(100 * sum(values) / len(values), 2) if values else 0.0

    return {"overall": pct(overall), "count": len(overall),
            "perAnswerType": {k: pct(v) for k, v in sorted(by_answer.items())},
            "perQuestionType": {k: pct(v) for k, v in sorted(by_question.items())}}
