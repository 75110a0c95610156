"""Results files of the V&L tasks: a JSON list with one ``{ID_FIELD: id, TEXT_FIELD: text}`` per item (VQA's
``{question_id, answer}``, COCO captions' ``{image_id, caption}``), read with one clear error per bad entry."""

from __future__ import annotations

import os
from pathlib import Path

from envs.datadir import data_error, read_json


def read_results(path: str | os.PathLike, id_field: str, text_field: str, what: str) -> dict:
    """``{id: text}`` of a results file; an entry without the id or a string text is a :class:`DataError`."""
    path = Path(path)
    shape = f'{{"{id_field}": ID, "{text_field}": TEXT}}'
    data = read_json(path, what, f"Give a list of {shape} entries")
    if not isinstance(data, list):
        raise data_error(path, "is not a list of results", f"Give a list of {shape} entries")
    results = {}
    for k, entry in enumerate(data):
        if not isinstance(entry, dict) or id_field not in entry or not isinstance(entry.get(text_field), str):
            raise data_error(path, f"entry {k} lacks '{id_field}' or a string '{text_field}': {entry!r}",
                             f"Each entry is {shape}")
        results[entry[id_field]] = entry[text_field]
    return results
