"""``python -m tasks.captioning train``: a transformer captioner on CLIP grid features, cross-entropy then
(optionally) self-critical training, selected by validation CIDEr-D under beam search.

Stage 1 (``--iters``): teacher-forced cross-entropy on (image, reference caption) pairs. Stage 2
(``--scst-iters``, Luo 2020's variant of self-critical sequence training): ``--scst-samples`` captions sampled
per image, reward CIDEr-D against the references (document frequencies of the training references), each
sample's baseline the mean reward of the other samples of its image. Validation every ``--eval-every``
iterations: beam search (``--beam``, 5 as in the paper), BLEU-4 and CIDEr-D; the best checkpoint by CIDEr-D.
Without file options it trains on the built-in world's captions (its grid features extracted on first use).
The run folder is laid out as :mod:`tasks.vl.run` says, with ``results/val.json`` in COCO results format and
the nearest-neighbour caption baseline in ``scores.json``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from envs.atomic import write_json
from envs.cli import command, parse_config
from envs.datadir import DataError
from tasks.captioning.data import CaptionedImage, load_karpathy, split_images
from tasks.captioning.metrics import CiderD, coco_scores, tokenize
from tasks.captioning.model import Captioner, CaptionerConfig
from tasks.tokenize import Vocab
from tasks.vl.run import Run, RunOptions, batch_indices, default_run_folder, optimizer_step, seed_everything
from tasks.vl.sources import open_grid_features, vl_dir

EVAL_METRICS = ("BLEU-4", "CIDEr-D")  # during training; tasks.captioning eval reports all of them


@dataclass
class CaptionTrainConfig(RunOptions):
    """Options of ``python -m tasks.captioning train``."""

    data_dir: Path | None = None
    """data directory whose vl/captions/ holds the captions (default: the built-in world)"""
    karpathy: Path | None = None
    """Karpathy-style split file (dataset_coco.json; default DATA/vl/captions/dataset_world.json)"""
    features: Path | None = None
    """grid features of the images (default DATA/vl/grid-{encoder}.h5, extracted on first use)"""
    encoder: str = "RN50"
    """CLIP variant of the default features"""
    weights: str | None = None
    """weights of --encoder for a first extraction (default random init)"""
    iters: int = 2000
    """cross-entropy iterations"""
    scst_iters: int = 0
    """self-critical iterations after cross-entropy (0: none)"""
    batch_size: int = 64
    """(image, caption) pairs per cross-entropy batch"""
    scst_images: int = 16
    """images per self-critical batch"""
    scst_samples: int = 5
    """captions sampled per image in self-critical training"""
    lr: float = 5e-4
    """Adam learning rate of cross-entropy training (linear warm-up over its first 5%)"""
    scst_lr: float = 2e-5
    """Adam learning rate of self-critical training (Luo 2020)"""
    d: int = 512
    """model size"""
    layers: int = 6
    """encoder and decoder layers each"""
    max_len: int = 16
    """longest caption in words (longer references are cut)"""
    min_count: int = 5
    """words seen fewer times in the training captions become <UNK> (Karpathy's threshold)"""
    beam: int = 5
    """beam size of validation decoding"""
    eval_images: int = 0
    """validate on the first N validation images only (0: all)"""


def caption_words(vocab: Vocab, ids: torch.Tensor) -> list[str]:
    """Captions ``[B, T]`` of word ids (no ``<BOS>``) as text."""
    return [vocab.decode(row.tolist()) for row in ids]


def decode_images(model: Captioner, vocab: Vocab, features: torch.Tensor, beam: int, device: torch.device,
                  batch: int = 50) -> list[str]:
    """Beam-search captions of every image of ``features [I, N, C]`` (greedy for ``beam`` 1)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(features), batch):
            grid = features[i : i + batch].to(device)
            ids = model.sample(grid, greedy=True)[0] if beam == 1 else model.beam_search(grid, beam)
            out += caption_words(vocab, ids)
    model.train()
    return out


def nearest_neighbour_captions(train: list[CaptionedImage], train_features: torch.Tensor,
                               images: list[CaptionedImage], features: torch.Tensor) -> list[str]:
    """The nearest-neighbour baseline (Devlin et al. 2015, k = 1): each image takes a caption of the training
    image whose mean grid feature is closest (cosine); of that image's references, the consensus one (highest
    CIDEr-D against the other references)."""
    def pooled(x: torch.Tensor) -> torch.Tensor:
        x = x.float().mean(1)
        return F.normalize(x - x.mean(0, keepdim=True), dim=-1)

    reference = pooled(train_features)
    out = []
    cider = CiderD([im.captions for im in train])
    for chunk in range(0, len(images), 256):
        nearest = (pooled(features[chunk : chunk + 256]) @ reference.T).argmax(1).tolist()
        for j in nearest:
            caps = [c.lower() for c in train[j].captions]
            out.append(max(caps, key=lambda c: cider.score(c, [o for o in caps if o is not c] or [c])))
    return out


def train(cfg: CaptionTrainConfig) -> Run:
    """Run the training described by ``cfg`` (resuming when asked); returns the finished run."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    vl = None if cfg.karpathy is not None and cfg.features is not None else vl_dir(cfg.data_dir)
    karpathy = cfg.karpathy or vl / "captions" / "dataset_world.json"
    images = load_karpathy(karpathy)
    train_images, val_images = split_images(images, "train"), split_images(images, "val")
    if cfg.eval_images:
        val_images = val_images[: cfg.eval_images]
    if not train_images or not val_images:
        raise DataError(f"{karpathy}: needs train and val images (found {len(train_images)} and {len(val_images)})")
    vocab = Vocab.build((c for im in train_images for c in im.captions), min_count=cfg.min_count)
    grid = open_grid_features(cfg.features, vl, cfg.encoder, cfg.weights, quiet=cfg.quiet)
    train_features = grid.stack([im.image_id for im in train_images], f"an image of {karpathy}")  # [I, N, C]
    val_features = grid.stack([im.image_id for im in val_images], f"an image of {karpathy}")
    pairs = [(i, c) for i, im in enumerate(train_images) for c in im.captions]
    pair_image = torch.tensor([i for i, _ in pairs])
    pair_words = torch.from_numpy(np.stack([vocab.encode(c, cfg.max_len + 2) for _, c in pairs]))  # [P, T]
    model_cfg = CaptionerConfig(vocab_size=len(vocab), feature_dim=grid.dim, d=cfg.d, layers=cfg.layers,
                                max_len=cfg.max_len + 2, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
                                eos_id=vocab.eos_id, unk_id=vocab.unk_id)
    model = Captioner(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warmup = max(1, cfg.iters // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warmup))
    val_refs = {im.image_id: im.captions for im in val_images}
    out = Path(cfg.out) if cfg.out else default_run_folder("caption", f"{cfg.layers}x{cfg.d}")
    run = Run(out, cfg, cfg.resume, {"features_file": str(grid.path), "vocabulary": len(vocab)}, task="captioning")
    iteration = 0
    state = run.restore()
    if state is not None:
        with run.fitting():
            model.load_state_dict(state["model"])
            iteration = state["iteration"]
            if iteration > cfg.iters:  # in the self-critical stage: its optimiser
                optimizer = torch.optim.Adam(model.parameters(), lr=cfg.scst_lr)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
    total = cfg.iters + cfg.scst_iters
    if not cfg.quiet:
        print(f"training the captioner on {len(train_images)} images ({len(pairs)} captions, {len(vocab)} words), "
              f"validating on {len(val_images)}; outputs in {run.out}", flush=True)
    cider = None
    train_refs: list[list[str]] = []
    if cfg.scst_iters:
        tokenized = tokenize({im.image_id: im.captions for im in train_images})
        train_refs = [tokenized[im.image_id] for im in train_images]
        cider = CiderD(train_refs)

    def state() -> dict:
        return {"model": model.state_dict(), "captioner": dataclasses.asdict(model_cfg), "vocab": vocab.words,
                "iteration": iteration, "beam": cfg.beam}

    from tqdm import tqdm

    bar = tqdm(total=total, initial=iteration, desc="captioner", disable=cfg.quiet, file=sys.stdout)
    model.train()
    while iteration < total:
        if iteration < cfg.iters:
            idx = batch_indices(len(pairs), cfg.batch_size, cfg.seed, iteration)
            words = pair_words[idx].to(device)  # [B, T]
            logits = model(train_features[pair_image[idx]].to(device), words[:, :-1])  # [B, T-1, V]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), words[:, 1:].reshape(-1),
                                   ignore_index=vocab.pad_id)
            stats = {"xe": loss.item()}
        else:
            if iteration == cfg.iters:  # self-critical stage: a fresh optimiser at its own rate
                optimizer = torch.optim.Adam(model.parameters(), lr=cfg.scst_lr)
                scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
            idx = batch_indices(len(train_images), cfg.scst_images, cfg.seed + 1, iteration - cfg.iters)
            k = cfg.scst_samples
            ids, logp = model.sample(train_features[idx].to(device), n=k)  # [b*k, T], [b*k]
            captions = caption_words(vocab, ids)
            rewards = torch.tensor([cider.score(c, train_refs[int(idx[j // k])]) for j, c in enumerate(captions)],
                                   device=device).reshape(-1, k)  # [b, k]
            baseline = (rewards.sum(1, keepdim=True) - rewards) / max(k - 1, 1)  # mean of the other samples
            loss = -((rewards - baseline).reshape(-1) * logp).mean()
            stats = {"scst": loss.item(), "reward": rewards.mean().item()}
        optimizer_step(loss, optimizer, scheduler, model.parameters(), 1.0)
        iteration += 1
        bar.update(1)
        run.scalars("losses", stats, iteration)
        if iteration % cfg.eval_every == 0 or iteration in (cfg.iters, total):
            captions = decode_images(model, vocab, val_features, cfg.beam, device)
            scores, _ = coco_scores(val_refs, dict(zip(val_refs, captions)), EVAL_METRICS, quiet=True)
            run.scalars("eval", scores, iteration)
            if run.record({"iteration": iteration, "val": scores}, scores["CIDEr-D"], state()):
                write_json(run.out / "results" / "val.json",
                           [{"image_id": int(i) if i.isdigit() else i, "caption": c} for i, c in zip(val_refs, captions)])
            run.save(state() | {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            bar.set_postfix_str(f"CIDEr-D {scores['CIDEr-D']:.3f}")
    bar.close()
    nn_captions = nearest_neighbour_captions(train_images, train_features, val_images, val_features)
    baseline, _ = coco_scores(val_refs, dict(zip(val_refs, nn_captions)), EVAL_METRICS, quiet=True)
    write_json(run.out / "scores.json", {"best": run.best, "history": run.history, "nearest_neighbour": baseline},
               indent=2)
    run.close()
    return run


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(CaptionTrainConfig, argv, prog="python -m tasks.captioning train",
                       description=__doc__.splitlines()[0])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = train(cfg)
    if not cfg.quiet:
        print(f"done. best val {run.best.get('val')} (iteration {run.best.get('iteration')})\noutputs: {run.out}")
    return 0
