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
from envs.validate import check_field, check_text, shown
from tasks.vl.results import read_results

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


@dataclass
class CaptionedImage:
    """An image with its reference captions."""

    image_id: str
    file_name: str
    split: str
    captions: list[str]


KARPATHY_FIX = "Each image is {filename, cocoid, split, sentences: [{raw, tokens}, ...]} (Karpathy's dataset_coco.json)"


def load_karpathy(path: str | os.PathLike) -> list[CaptionedImage]:
    """Every image of a Karpathy-style split file.

    Checked as read: a non-empty ``images`` list; each image with a file name, a split among train, restval,
    val and test, an id (``cocoid`` or ``imgid``, an int or a string) no other image has, and at least one
    non-empty caption. A malformed file is one :class:`DataError` naming the file, the image and the field.
    """
    path = Path(path)
    data = read_json(path, "Karpathy caption split file", "Give dataset_coco.json (Karpathy's split) or the "
                     "built-in world's vl/captions/dataset_world.json")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise data_error(path, "has no 'images' list", "Give a Karpathy-style split file (dataset_coco.json)")
    if not images:
        raise data_error(path, "field 'images' is an empty list", KARPATHY_FIX)
    splits = sorted({s for names in KARPATHY_SPLITS.values() for s in names})
    out = []
    first_of: dict[str, int] = {}
    for k, entry in enumerate(images):
        where = f"images[{k}]"
        if not isinstance(entry, dict):
            raise data_error(path, f"{where} is not an object", KARPATHY_FIX)
        id_field = "cocoid" if "cocoid" in entry else "imgid"
        if id_field not in entry:
            raise data_error(path, f"{where} has neither 'cocoid' nor 'imgid'", f"Give each image its id. {KARPATHY_FIX}")
        image_id = str(check_field(path, where, entry, id_field, (int, str), fix=KARPATHY_FIX))
        if image_id in first_of:
            raise data_error(path, f"{where} field {id_field!r} is {image_id}, the same as images[{first_of[image_id]}]'s",
                             f"Each image needs its own id (its captions would be mixed up). {KARPATHY_FIX}")
        first_of[image_id] = k
        where = f"images[{k}] (image {image_id})"
        filename = check_text(path, where, entry, "filename", KARPATHY_FIX)
        split = check_text(path, where, entry, "split", KARPATHY_FIX)
        if split not in splits:
            raise data_error(path, f"{where} field 'split' is {split!r}", f"Splits are {', '.join(splits)}")
        sentences = check_field(path, where, entry, "sentences", list, fix=KARPATHY_FIX)
        if not sentences:
            raise data_error(path, f"{where} field 'sentences' is an empty list", f"Every image needs its reference "
                             f"captions. {KARPATHY_FIX}")
        captions = [check_text(path, f"images[{k}].sentences[{j}]", sentence, "raw", KARPATHY_FIX)
                    for j, sentence in enumerate(sentences)]
        out.append(CaptionedImage(image_id, filename, split, captions))
    return out


def split_images(images: list[CaptionedImage], split: str) -> list[CaptionedImage]:
    """The images of ``train`` (train + restval), ``val`` or ``test``."""
    return [im for im in images if im.split in KARPATHY_SPLITS.get(split, (split,))]


def load_coco_references(path: str | os.PathLike) -> dict[str, list[str]]:
    """Image id -> reference captions of a COCO-format caption file (a caption of an image its ``images`` list
    does not hold, or an empty caption, is a :class:`DataError` naming the annotation)."""
    path = Path(path)
    fix = "Each annotation is {image_id, caption} about an image of the file's 'images' (captions_{split}.json)"
    data = read_json(path, "COCO caption file", "Give a COCO captions file (captions_{split}.json)")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise data_error(path, "has no 'annotations' list", "Give a COCO captions file (captions_{split}.json)")
    if not data["annotations"]:
        raise data_error(path, "field 'annotations' is an empty list", fix)
    images = data.get("images", [])
    if not isinstance(images, list):
        raise data_error(path, f"field 'images' is {shown(images)}, not a list", fix)
    refs: dict[str, list[str]] = defaultdict(list)
    for k, image in enumerate(images):
        refs[str(check_field(path, f"images[{k}]", image, "id", (int, str), fix=fix))]  # an image without captions
    for k, entry in enumerate(data["annotations"]):
        where = f"annotations[{k}]"
        image_id = str(check_field(path, where, entry, "image_id", (int, str), fix=fix))
        if images and image_id not in refs:
            raise data_error(path, f"{where} field 'image_id' is {image_id}, which is not in the file's 'images'", fix)
        refs[image_id].append(check_text(path, f"{where} (image {image_id})", entry, "caption", fix))
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
