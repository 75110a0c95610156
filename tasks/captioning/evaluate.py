"""``python -m tasks.captioning eval``: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and SPICE of a trained captioner
(beam search, beam 5) or of a COCO-format results file, on a split of the Karpathy file (or against a COCO
captions file). ``--baseline nn`` scores the nearest-neighbour caption baseline instead. A metric that cannot
run here (METEOR and SPICE without Java, SPICE without its CoreNLP jars) is skipped with one message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from envs.atomic import write_json
from envs.checkpoint import load_checkpoint
from envs.cli import command, parse_config
from envs.datadir import DataError
from tasks.captioning.data import load_coco_references, load_karpathy, load_results, split_images
from tasks.captioning.metrics import METRICS, coco_scores
from tasks.captioning.model import Captioner, CaptionerConfig
from tasks.captioning.train import decode_images, nearest_neighbour_captions
from tasks.tokenize import Vocab
from tasks.vl.sources import open_grid_features, vl_dir


@dataclass
class CaptionEvalConfig:
    """Options of ``python -m tasks.captioning eval``."""

    checkpoint: Path | None = None
    """a trained captioner (best.pt of a tasks.captioning train run)"""
    results: Path | None = None
    """a COCO-format results file ([{image_id, caption}]) to score instead"""
    baseline: Literal["nn"] | None = None
    """score the nearest-neighbour caption baseline (captions of the closest training image)"""
    data_dir: Path | None = None
    """data directory whose vl/ holds the captions (default: the built-in world)"""
    karpathy: Path | None = None
    """Karpathy-style split file (default DATA/vl/captions/dataset_world.json)"""
    split: str = "test"
    """Karpathy split to evaluate (val or test)"""
    references: Path | None = None
    """score against this COCO captions file instead of the Karpathy split's references"""
    features: Path | None = None
    """grid features of the images (default DATA/vl/grid-{encoder}.h5)"""
    encoder: str = "RN50"
    """CLIP variant of the default features"""
    beam: int = 5
    """beam size"""
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    """metrics to compute (BLEU-1..4 METEOR ROUGE-L CIDEr-D SPICE)"""
    out: Path | None = None
    """write the captions here in COCO results format"""
    json: bool = False
    """print the scores as JSON"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device"""


def evaluate(cfg: CaptionEvalConfig) -> dict:
    """Scores (and skipped metrics) of a captioner, a results file or the baseline on one split."""
    if sum(x is not None for x in (cfg.checkpoint, cfg.results, cfg.baseline)) != 1:
        raise DataError("give exactly one of --checkpoint, --results or --baseline nn")
    vl = None
    if cfg.karpathy is None or (cfg.results is None and cfg.features is None):
        vl = vl_dir(cfg.data_dir)
    karpathy = cfg.karpathy or vl / "captions" / "dataset_world.json"
    images = split_images(load_karpathy(karpathy), cfg.split)
    if cfg.references is not None:
        refs, source = load_coco_references(cfg.references), str(cfg.references)
    else:
        refs, source = {im.image_id: im.captions for im in images}, f"of the {cfg.split} split of {karpathy}"
    if cfg.results is not None:
        predictions = load_results(cfg.results, refs, source)
    else:
        order = [im for im in images if im.image_id in refs]
        grid = open_grid_features(cfg.features, vl, cfg.encoder)
        features = grid.stack([im.image_id for im in order], f"an image of {karpathy}")
        if cfg.baseline == "nn":
            train = split_images(load_karpathy(karpathy), "train")
            captions = nearest_neighbour_captions(train, grid.stack([im.image_id for im in train]), order, features)
        else:
            state = load_checkpoint(cfg.checkpoint, map_location=cfg.device,
                                    kind=("captioner", "captioning-training-state"))
            model = Captioner(CaptionerConfig(**state["captioner"])).to(cfg.device)
            model.load_state_dict(state["model"])
            captions = decode_images(model, Vocab(state["vocab"]), features, cfg.beam, torch.device(cfg.device))
        predictions = {im.image_id: c for im, c in zip(order, captions)}
        if cfg.out is not None:
            write_json(cfg.out, [{"image_id": int(i) if i.isdigit() else i, "caption": c} for i, c in predictions.items()])
    unknown = [m for m in cfg.metrics if m not in METRICS]
    if unknown:
        raise DataError(f"--metrics: unknown metric {unknown[0]!r}; choose from {' '.join(METRICS)}")
    scores, skipped = coco_scores({i: refs[i] for i in predictions}, predictions, tuple(cfg.metrics))
    return {"scores": scores, "skipped": skipped, "images": len(predictions)}


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(CaptionEvalConfig, argv, prog="python -m tasks.captioning eval",
                       description=__doc__.splitlines()[0])
    report = evaluate(cfg)
    if cfg.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['images']} images: " + ", ".join(f"{k} {v:.4f}" for k, v in report["scores"].items()))
        for metric, why in report["skipped"].items():
            print(f"{metric}: skipped ({why})")
    return 0
