"""Caption data: Karpathy's split file (``dataset_coco.json``; the built-in world's ``dataset_world.json``),
COCO-format reference files (``captions_{split}.json``) and COCO-format results files.

* Karpathy: ``{"images": [{"filename", "cocoid" (or "imgid"), "split": train|restval|val|test,
  "sentences": [{"raw", "tokens"}, ...]}, ...]}``; ``restval`` counts as training data, as everyone does.
* COCO references: ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``.
* Results: ``[{"image_id", "caption"}, ...]``, one per image (the COCO evaluation server's format).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from envs.datadir import data_error, read_json
from tasks.vl.results import read_results

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


@dataclass
class CaptionedImage:
    """An image with its reference captions."""

    image_id: str
    file_name: str
    split: str
    captions: list[str]


def load_karpathy(path: str | os.PathLike) -> list[CaptionedImage]:
    """Every image of a Karpathy-style split file (malformed entries are a :class:`DataError` naming the entry)."""
    path = Path(path)
    data = read_json(path, "Karpathy caption split file", "Give dataset_coco.json (Karpathy's split) or the "
                     "built-in world's vl/captions/dataset_world.json")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise data_error(path, "has no 'images' list", "Give a Karpathy-style split file (dataset_coco.json)")
    out = []
    for k, entry in enumerate(images):
        where = f"images[{k}]"
        if not isinstance(entry, dict):
            raise data_error(path, f"{where} is not an object", "Each image is {filename, cocoid, split, sentences}")
        for name in ("filename", "split", "sentences"):
            if name not in entry:
                raise data_error(path, f"{where} has no field {name!r}", "Each image is {filename, cocoid, split, sentences}")
        image_id = entry.get("cocoid", entry.get("imgid"))
        if image_id is None:
            raise data_error(path, f"{where} has neither 'cocoid' nor 'imgid'", "Give each image its id")
        captions = []
        for j, sentence in enumerate(entry["sentences"]):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(raw, str):
                raise data_error(path, f"{where}.sentences[{j}] has no string field 'raw'", "Each sentence is {raw, tokens}")
            captions.append(raw)
        out.append(CaptionedImage(str(image_id), entry["filename"], entry["split"], captions))
    return out


def split_images(images: list[CaptionedImage], split: str) -> list[CaptionedImage]:
    """The images of ``train`` (train + restval), ``val`` or ``test``."""
    return [im for im in images if im.split in KARPATHY_SPLITS.get(split, (split,))]


def load_coco_references(path: str | os.PathLike) -> dict[str, list[str]]:
    """Image id -> reference captions of a COCO-format caption file."""
    path = Path(path)
    data = read_json(path, "COCO caption file", "Give a COCO captions file (captions_{split}.json)")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise data_error(path, "has no 'annotations' list", "Give a COCO captions file (captions_{split}.json)")
    refs: dict[str, list[str]] = defaultdict(list)
    for image in data.get("images", []):
        refs[str(image["id"])]  # images without captions still count as images of the split
    for k, entry in enumerate(data["annotations"]):
        if not isinstance(entry, dict) or "image_id" not in entry or not isinstance(entry.get("caption"), str):
            raise data_error(path, f"annotations[{k}] lacks 'image_id' or a string 'caption'",
                             "Each annotation is {image_id, caption}")
        refs[str(entry["image_id"])].append(entry["caption"])
    return dict(refs)


def load_results(path: str | os.PathLike, references: dict[str, list[str]], source: str = "") -> dict[str, str]:
    """Image id -> caption of a COCO-format results file, checked against the references: a results file for
    other images (or one that misses some) is a :class:`DataError` naming the file and an image."""
    path = Path(path)
    results = {str(k): v for k, v in read_results(path, "image_id", "caption", "caption results file").items()}
    other = [i for i in results if i not in references]
    if other:
        raise data_error(path, f"entry for image {other[0]} field 'image_id': the references {source} have no such "
                         f"image ({len(other)} of {len(results)} results are for other images)",
                         "Score a results file against the references of the images it captions")
    missing = [i for i in references if i not in results]
    if missing:
        raise data_error(path, f"has no caption for image {missing[0]} of the references {source} "
                         f"({len(missing)} missing)", "Caption every image of the split")
    return results
