"""The built-in world's vision-and-language data: views rendered from its skyboxes, with VQA v2 questions,
COCO captions and SNLI-VE hypotheses about what each view shows.

Images are perspective views rendered from the world's own skyboxes through the project's renderer
(:func:`envs.kernel.skybox.render_views`, MatterSim's geometry), looking 15 degrees down where coloured objects
stand. What a view shows is found by casting the same camera rays into the house (:mod:`envs.world.raycast`),
so every answer and caption is true of the rendered pixels: the room is the viewpoint's room, an object is
*visible* when it covers at least ``VISIBLE_SHARE`` of the view, left / right come from the mean column of its
pixels. A view is kept only when each object in it is clearly visible or absent (no slivers at the edges).

Written under ``DATA/vl/`` (the navigation files are untouched), in the real formats::

    vl/images/{image_id:012d}.jpg
    vl/vqa/{split}_questions.json, {split}_annotations.json   # VQA v2 (10 answers per question)
    vl/vqa/trainval_ans2label.json, trainval_label2ans.json   # the answer label space (LXMERT's layout)
    vl/captions/dataset_world.json                             # Karpathy-style split, 5 sentences per image
    vl/captions/captions_{split}.json                          # COCO-format references per split
    vl/snli_ve/snli_ve_{train,dev,test}.jsonl                  # SNLI-VE schema
    vl/vl.json                                                 # manifest: config, counts

Splits follow the houses: seen houses give ``train``, unseen ones ``val`` and test houses ``test`` (SNLI-VE's
``dev`` is ``val``). Questions carry VQA's ``question_type`` (the first words) and ``answer_type``
(``yes/no``, ``number``, ``other``) and a deliberate answer prior (more yes than no, colours asked about in
proportion to ``COLOUR_PRIOR``), so that a question-only model is a real baseline; of the ten answers about
one in ten is a different plausible answer and a few are written differently (``two``, ``Yes.``), which the
official answer normalisation must handle.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from envs.atomic import write_json, write_jsonl
from envs.kernel.skybox import camera_rays, has_skybox, load_skybox, render_views
from envs.world.layout import COLOURS, ROOM_TYPES, House, generate_house, pose_matrix
from envs.world.raycast import cast, render_skybox, surfaces

VL_VERSION = 1  # bumped when the generated V&L content changes
SPLIT_OF_ROLE = {"seen": "train", "unseen": "val", "test": "test"}
SNLI_SPLIT = {"train": "train", "val": "dev", "test": "test"}
ELEVATION = -math.radians(15)  # objects stand on the floor, below the camera
VFOV = math.radians(75)
RAY_GRID = 24  # rays per side cast to find what a view shows
VISIBLE_SHARE = 0.02  # share of the view an object must cover to be visible (and to be asked about)
SLIVER_SHARE = 0.004  # a view with an object between this and VISIBLE_SHARE is ambiguous and dropped
COLOUR_PRIOR = {"white": 4.0, "brown": 3.0, "black": 2.5, "grey": 2.0}  # others 1: the colour answers' prior
YES_SHARE = 0.62  # share of presence questions answered yes
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@dataclass
class VLConfig:
    """Size of the built-in V&L data (``python -m envs.world`` options)."""

    vl: bool = True
    """also write the V&L data (views, VQA, captions, SNLI-VE) under vl/"""
    vl_views_per_viewpoint: int = 4
    """at most this many views (images) per included viewpoint"""
    vl_image_size: int = 96
    """side of the square V&L images in pixels (CLIP resizes them to its input)"""
    vl_max_images: int = 0
    """stop after this many images (0: no limit; smaller data for tests)"""


# ---------------------------------------------------------------------------------------------- views


def _view_objects(house: House, labels: np.ndarray) -> list[dict] | None:
    """What one view shows, from its ray labels ``[G, G]``: visible objects (largest first), or None when an
    object is only partly in the picture."""
    n_rooms = len(house.rooms)
    found = []
    for label in np.unique(labels[labels >= 3 * n_rooms]):
        obj = house.objects[label - 3 * n_rooms]
        rows, cols = np.nonzero(labels == label)
        share = len(rows) / labels.size
        if obj.kind == "stairs":
            continue
        if share < VISIBLE_SHARE:
            if share >= SLIVER_SHARE:
                return None
            continue
        found.append({"kind": obj.kind, "colour": obj.colour, "share": round(share, 4),
                      "column": round(float(cols.mean() + 0.5) / labels.shape[1], 4)})
    # one object per kind: two sofas would make "the sofa" ambiguous
    if len({o["kind"] for o in found}) != len(found):
        return None
    return sorted(found, key=lambda o: -o["share"])


def _house_views(args: tuple) -> list[dict]:
    """Render the V&L views of one house (runs in a worker process); returns one record per image."""
    seed, second_floor_prob, index, role, skyboxes, face_size, config, limit = args
    torch.set_num_threads(1)
    house = generate_house(seed, index, second_floor_prob)
    s = surfaces(house)
    rng = np.random.default_rng([seed, index, 5151])
    records = []
    for v in house.viewpoints:
        if not v.included:
            continue
        headings = (np.arange(12) * 30.0 + rng.uniform(0.0, 30.0)) * math.pi / 180
        elevations = np.full(12, ELEVATION)
        rays = camera_rays(torch.from_numpy(headings), torch.from_numpy(elevations), RAY_GRID, RAY_GRID,
                           VFOV).numpy().reshape(-1, 3)  # [12 * G * G, 3]
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        labels, _, _, _ = cast(s, np.full(len(rays), v.room), np.broadcast_to(v.position, rays.shape), rays)
        labels = labels.reshape(12, RAY_GRID, RAY_GRID)
        views = [(k, objs) for k in range(12) if (objs := _view_objects(house, labels[k]))]
        if not views:
            continue
        chosen = sorted(rng.choice(len(views), size=min(config.vl_views_per_viewpoint, len(views)), replace=False))
        rotation = pose_matrix(v.position, v.yaw)[:3, :3]
        if has_skybox(skyboxes, house.scan, v.id):
            faces = load_skybox(skyboxes, house.scan, v.id)  # [6, 3, S, S]
        else:  # a world built without skyboxes: the same faces, in memory
            faces = torch.from_numpy(render_skybox(s, v.room, v.position, rotation, face_size)).permute(0, 3, 1, 2)
        picked = [views[i] for i in chosen]
        h = torch.tensor([headings[k] for k, _ in picked])
        size = config.vl_image_size
        images = render_views(faces[None], h, torch.full_like(h, ELEVATION), torch.from_numpy(rotation)[None],
                              size, size, VFOV)[0]  # [k, 3, size, size] uint8
        for (k, objs), image in zip(picked, images):
            records.append({"scan": house.scan, "viewpoint": v.id, "heading": round(float(headings[k]), 4),
                            "elevation": round(ELEVATION, 4), "room": house.rooms[v.room].kind,
                            "split": SPLIT_OF_ROLE[role], "objects": objs,
                            "pixels": image.permute(1, 2, 0).contiguous().numpy()})
        if limit and len(records) >= limit:
            return records[:limit]
    return records


# ------------------------------------------------------------------------------------------- language


def _name(obj: dict) -> str:
    return f"{obj['colour']} {obj['kind']}"


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("sh", "ch", "s", "x")) else "s")


def _questions(image: dict, rng: np.random.Generator) -> list[tuple[str, str, str, str, list[str]]]:
    """``(question, question_type, answer_type, answer, alternatives)`` about one image."""
    objs, room = image["objects"], image["room"]
    out = [("What room is this?", "what room is", "other", room, [r for r in ROOM_TYPES if r != room])]
    weights = np.array([COLOUR_PRIOR.get(o["colour"], 1.0) for o in objs])
    asked = objs[int(rng.choice(len(objs), p=weights / weights.sum()))]
    out.append((f"What color is the {asked['kind']}?", "what color is the", "other", asked["colour"],
                [c for c in COLOURS if c != asked["colour"]]))
    n = len(objs)
    out.append(("How many objects are there?", "how many", "number", str(n),
                [str(k) for k in range(1, 6) if k != n]))
    # presence: yes with YES_SHARE; a no changes the colour of a visible object (so only the picture tells) or
    # names a kind that is not in view
    if rng.random() < YES_SHARE:
        obj = objs[int(rng.integers(n))]
        out.append((f"Is there a {_name(obj)}?", "is there a", "yes/no", "yes", ["no"]))
    else:
        obj = objs[int(rng.integers(n))]
        colour = str(rng.choice([c for c in COLOURS if c != obj["colour"]]))
        out.append((f"Is there a {colour} {obj['kind']}?", "is there a", "yes/no", "no", ["yes"]))
    pairs = [(a, b) for a in objs for b in objs if a is not b and abs(a["column"] - b["column"]) > 0.2]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        side = "left" if a["column"] < b["column"] else "right"
        out.append((f"Is the {a['kind']} to the left or to the right of the {b['kind']}?", "is the", "other",
                    side, ["right" if side == "left" else "left"]))
    return out


def _answers(answer: str, answer_type: str, alternatives: list[str], rng: np.random.Generator) -> list[dict]:
    """Ten annotators: mostly the answer, about one in ten a plausible other one, a few written differently."""
    out = []
    for k in range(10):
        draw = rng.random()
        if draw < 0.1:
            text, confidence = str(rng.choice(alternatives)), "maybe"
        elif draw < 0.16 and answer_type == "number":
            text, confidence = NUMBER_WORDS[int(answer)], "yes"
        elif draw < 0.16:
            text, confidence = answer.capitalize() + ".", "yes"
        else:
            text, confidence = answer, "yes"
        out.append({"answer": text, "answer_confidence": confidence, "answer_id": k + 1})
    return out


CAPTIONS = [
    "a {room} with a {a}", "a {a} in a {room}", "there is a {a} in the {room}", "a view of a {room}",
    "a {a} next to a {b}", "the {room} has a {a} and a {b}", "a {a} on the {aside} and a {b} on the {bside}",
    "a {room} with a {a} and a {b}", "a picture of a {a}", "a {a} stands in the {room}",
]


def _captions(image: dict, rng: np.random.Generator) -> list[str]:
    objs = image["objects"]
    a = objs[0]
    b = objs[1] if len(objs) > 1 else None
    usable = [t for t in CAPTIONS if b is not None or "{b}" not in t]
    picked = rng.choice(len(usable), size=5, replace=False)
    fill = {"room": image["room"], "a": _name(a), "b": _name(b) if b else "",
            "aside": "left" if b and a["column"] < b["column"] else "right",
            "bside": "right" if b and a["column"] < b["column"] else "left"}
    return [usable[i].format(**fill) for i in picked]


def _hypotheses(image: dict, rng: np.random.Generator) -> list[tuple[str, str]]:
    """One entailed, one neutral and one contradicted statement about the image."""
    objs, room = image["objects"], image["room"]
    obj = objs[int(rng.integers(len(objs)))]
    other_colour = str(rng.choice([c for c in COLOURS if c != obj["colour"]]))
    other_room = str(rng.choice([r for r in ROOM_TYPES if r != room]))
    entail = str(rng.choice([f"There is a {_name(obj)}.", f"The room is a {room}.",
                             f"The {obj['kind']} is {obj['colour']}."]))
    neutral = str(rng.choice([f"The {obj['kind']} was bought last year.", f"Someone will walk into the {room} soon.",
                              f"The {_name(obj)} is expensive."]))
    contra = str(rng.choice([f"The {obj['kind']} is {other_colour}.", f"The room is a {other_room}.",
                             f"There is no {obj['kind']} in the room."]))
    return [(entail, "entailment"), (neutral, "neutral"), (contra, "contradiction")]


# ---------------------------------------------------------------------------------------------- build

VQA_HEADER = {"info": {"description": "VQA v2 format, the built-in world's V&L data", "version": "2.0"},
              "task_type": "Open-Ended", "data_type": "world",
              "license": {"name": "generated data, no licence restrictions"}}


def majority_answer(answers: list[dict]) -> str:
    """The most frequent of the ten answers (VQA's ``multiple_choice_answer``; ties keep the first seen)."""
    return Counter(a["answer"] for a in answers).most_common(1)[0][0]


def build_vl(root: Path, roles: list[str], seed: int, second_floor_prob: float, face_size: int,
             config: VLConfig, workers: int = 1) -> dict:
    """Write ``root/vl`` (atomically: built beside it and renamed) for the houses of a world; returns the
    manifest. ``roles`` gives each house's role (``seen``, ``unseen``, ``test``) in index order."""
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".vl.", dir=root))
    try:
        manifest = _build_vl_into(tmp, root, roles, seed, second_floor_prob, face_size, config, workers)
        write_json(tmp / "vl.json", manifest, indent=1)  # a pure function of the config (no timing)
        target = root / "vl"
        if target.exists():  # a rebuild: the old data goes
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "vl.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process published the same data first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest | {"seconds": round(time.perf_counter() - started, 1)}


def _build_vl_into(out: Path, root: Path, roles: list[str], seed: int, second_floor_prob: float,
                   face_size: int, config: VLConfig, workers: int) -> dict:
    from PIL import Image

    limit = -(-config.vl_max_images // len(roles)) if config.vl_max_images else 0  # per house
    jobs = [(seed, second_floor_prob, i, role, root / "skyboxes", face_size, config, limit)
            for i, role in enumerate(roles)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            per_house = list(pool.map(_house_views, jobs))
    else:
        per_house = [_house_views(job) for job in jobs]
    images = [record for house in per_house for record in house]
    (out / "images").mkdir(parents=True)
    splits = ("train", "val", "test")
    questions = {s: [] for s in splits}
    annotations = {s: [] for s in splits}
    karpathy, coco = [], {s: {"images": [], "annotations": []} for s in splits}
    snli = {s: [] for s in splits}
    sentence_id = 0
    for image_id, image in enumerate(images, start=1):
        split = image["split"]
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(image.pop("pixels")).save(out / "images" / file_name, quality=92)
        rng = np.random.default_rng([seed, image_id, 6262])
        for k, (question, qtype, atype, answer, alternatives) in enumerate(_questions(image, rng)):
            qid = image_id * 10 + k
            answers = _answers(answer, atype, alternatives, rng)
            questions[split].append({"image_id": image_id, "question": question, "question_id": qid})
            annotations[split].append({"question_id": qid, "image_id": image_id, "question_type": qtype,
                                       "answer_type": atype, "multiple_choice_answer": majority_answer(answers),
                                       "answers": answers})
        captions = _captions(image, rng)
        size = config.vl_image_size
        karpathy.append({"filepath": "images", "filename": file_name, "imgid": image_id - 1, "cocoid": image_id,
                         "split": split, "sentids": list(range(sentence_id, sentence_id + 5)),
                         "sentences": [{"raw": c, "tokens": c.split(), "imgid": image_id - 1, "sentid": sentence_id + j}
                                       for j, c in enumerate(captions)],
                         "scan": image["scan"], "viewpoint": image["viewpoint"], "heading": image["heading"],
                         "elevation": image["elevation"], "room": image["room"], "objects": image["objects"]})
        coco[split]["images"].append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        coco[split]["annotations"] += [{"id": sentence_id + j, "image_id": image_id, "caption": c}
                                       for j, c in enumerate(captions)]
        sentence_id += 5
        for j, (hypothesis, label) in enumerate(_hypotheses(image, rng)):
            snli[split].append({"Flickr30K_ID": str(image_id), "captionID": f"{file_name}#0",
                                "pairID": f"{file_name}#0r{j}{label[0]}", "gold_label": label,
                                "annotator_labels": [label], "sentence1": captions[0], "sentence2": hypothesis})
    for split in splits:
        write_json(out / "vqa" / f"{split}_questions.json", VQA_HEADER | {"data_subtype": split,
                                                                         "questions": questions[split]})
        write_json(out / "vqa" / f"{split}_annotations.json", VQA_HEADER | {"data_subtype": split,
                                                                           "annotations": annotations[split]})
        write_json(out / "captions" / f"captions_{split}.json",
                   {"info": {"description": "COCO captions format, the built-in world"}, "licenses": [],
                    "type": "captions"} | coco[split])
        write_jsonl(out / "snli_ve" / f"snli_ve_{SNLI_SPLIT[split]}.jsonl", snli[split])
    write_json(out / "captions" / "dataset_world.json", {"dataset": "world", "images": karpathy})
    # the label space: every majority answer of train and val (as LXMERT's trainval_ans2label), sorted
    labels = sorted({a["multiple_choice_answer"] for s in ("train", "val") for a in annotations[s]})
    write_json(out / "vqa" / "trainval_label2ans.json", labels)
    write_json(out / "vqa" / "trainval_ans2label.json", {a: i for i, a in enumerate(labels)})
    return {"vl_version": VL_VERSION, "config": asdict(config),
            "images": {s: len(coco[s]["images"]) for s in splits},
            "questions": {s: len(questions[s]) for s in splits},
            "question_types": dict(Counter(a["question_type"] for s in splits for a in annotations[s])),
            "captions": sentence_id, "snli_ve_pairs": {SNLI_SPLIT[s]: len(snli[s]) for s in splits},
            "answers": len(labels), "elevation_degrees": round(math.degrees(ELEVATION), 1),
            "vfov_degrees": round(math.degrees(VFOV), 1)}


def read_manifest(root: Path) -> dict | None:
    """``root/vl/vl.json`` if the V&L data is there, else None."""
    path = Path(root) / "vl" / "vl.json"
    return json.loads(path.read_text()) if path.exists() else None
