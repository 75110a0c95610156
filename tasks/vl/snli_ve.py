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

LABELS = ("entailment", "neutral", "contradiction")


@dataclass
class EntailmentPair:
    pair_id: str
    image_id: str
    hypothesis: str
    label: str
    premise: str = ""


def load_snli_ve(path: str | os.PathLike) -> list[EntailmentPair]:
    """Every pair of an SNLI-VE jsonl file; a malformed line is a :class:`DataError` naming the line and field."""
    path = Path(path)
    if not path.exists():
        raise data_error(path, "SNLI-VE file not found", "Give snli_ve_{train,dev,test}.jsonl")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise data_error(path, f"line {number} is not JSON ({exc.msg})", "One JSON object a line") from None
        for name in ("Flickr30K_ID", "sentence2", "gold_label"):
            if not isinstance(entry, dict) or not isinstance(entry.get(name), str):
                raise data_error(path, f"line {number} has no string field {name!r}", "Use the snli_ve_*.jsonl schema")
        if entry["gold_label"] not in LABELS:
            raise data_error(path, f"line {number} field 'gold_label' is {entry['gold_label']!r}",
                             f"Labels are {', '.join(LABELS)}")
        pairs.append(EntailmentPair(str(entry.get("pairID", number)), entry["Flickr30K_ID"], entry["sentence2"],
                                    entry["gold_label"], entry.get("sentence1", "")))
    return pairs
