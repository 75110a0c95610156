"""SNLI-VE (visual entailment) files: ``snli_ve_{train,dev,test}.jsonl``, one pair a line with
``Flickr30K_ID`` (the image), ``sentence2`` (the hypothesis), ``gold_label`` (entailment, neutral,
contradiction), ``sentence1`` (the Flickr30k caption it came from), ``pairID``, ``captionID``. The built-in world
writes the same schema (``vl/snli_ve/``); models of the task come with V&L pretraining.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from envs.datadir import data_error
from envs.validate import check_field, check_text, shown

LABELS = ("entailment", "neutral", "contradiction")


@dataclass
class EntailmentPair:
    pair_id: str
    image_id: str
    hypothesis: str
    label: str
    premise: str = ""


SNLI_FIX = ("One JSON object a line with Flickr30K_ID, sentence2, gold_label (and pairID, sentence1), as in "
            "snli_ve_{train,dev,test}.jsonl")


def load_snli_ve(path: str | os.PathLike) -> list[EntailmentPair]:
    """Every pair of an SNLI-VE jsonl file.

    Checked as read: at least one pair; each line an object with a non-empty image id and hypothesis, a label
    among :data:`LABELS` and a ``pairID`` no other line has. A malformed line is one :class:`DataError` naming the
    file, the line and the field.
    """
    path = Path(path)
    if not path.exists():
        raise data_error(path, "SNLI-VE file not found", "Give snli_ve_{train,dev,test}.jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise data_error(path, f"is not UTF-8 text (byte {exc.start})", SNLI_FIX) from None
    pairs = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise data_error(path, f"{where} is not JSON ({exc.msg})", SNLI_FIX) from None
        image = str(check_field(path, where, entry, "Flickr30K_ID", (str, int), fix=SNLI_FIX))
        if not image.strip():
            raise data_error(path, f"{where} field 'Flickr30K_ID' is empty", SNLI_FIX)
        hypothesis = check_text(path, where, entry, "sentence2", SNLI_FIX)
        label = check_field(path, where, entry, "gold_label", str, fix=SNLI_FIX)
        if label not in LABELS:
            raise data_error(path, f"{where} field 'gold_label' is {shown(label)}", f"Labels are {', '.join(LABELS)}")
        pair_id = str(entry.get("pairID", number))
        if pair_id in first_line:
            raise data_error(path, f"{where} field 'pairID' is {pair_id}, the same as line {first_line[pair_id]}'s",
                             f"Each pair needs its own pairID. {SNLI_FIX}")
        first_line[pair_id] = number
        premise = entry.get("sentence1", "")
        pairs.append(EntailmentPair(pair_id, image, hypothesis, label, premise if isinstance(premise, str) else ""))
    if not pairs:
        raise data_error(path, "holds no pairs (an empty file)", SNLI_FIX)
    return pairs
