"""What ``pretrain`` and ``finetune`` share: their common options, the image side (stored grid features, or the
CLIP tower trained end to end), the transformer's inputs for a batch, and the checkpoint check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from envs.checkpoint import load_checkpoint
from envs.datadir import DataError
from features.encoders import Encoder, load_encoder
from features.grid import grid_tokens
from tasks.pretrain.model import ViLConfig
from tasks.pretrain.text import trim
from tasks.vl.run import RunOptions
from tasks.vl.sources import ImageStore, open_grid_features
from tasks.vqa.models import EndToEnd

PRETRAINED = "tasks.pretrain/pretrain"  # the ``kind`` of a pretraining checkpoint; fine-tuning: ".../finetune-{task}"


@dataclass
class ViLOptions(RunOptions):
    """Options of both commands of ``python -m tasks.pretrain``."""

    data_dir: Path | None = None
    """data directory whose vl/ folder holds the V&L data (default: the built-in world)"""
    features: Path | None = None
    """grid feature file of the images (features.extract --grid); default DATA/vl/grid-{encoder}.h5, extracted on
    first use"""
    encoder: str = "RN50"
    """CLIP variant of the grid features / the image tower"""
    weights: str | None = None
    """weights of --encoder (open_clip tag or file; default random init)"""
    finetune_encoder: bool = False
    """train end to end through the CLIP image tower on the images of --images (the paper's choice) instead of
    reading stored grid features (a frozen backbone)"""
    images: Path | None = None
    """with --finetune-encoder: the image folder (default DATA/vl/images)"""
    encoder_lr: float = 1e-5
    """with --finetune-encoder: AdamW learning rate of the image tower"""
    iters: int = 1000
    """training iterations (batches)"""
    batch_size: int = 64
    """examples per (global) batch"""
    lr: float = 1e-4
    """AdamW learning rate of the transformer and its heads"""
    dropout: float = 0.1
    """dropout of the transformer (0 makes a run independent of how many processes share the batch)"""


def open_images(cfg: ViLOptions, vl: Path | None, device: torch.device,
                encoder_name: str | None = None) -> tuple[Encoder | None, object]:
    """The image side: ``(None, stored grid features)`` or, with ``--finetune-encoder``, ``(the CLIP tower, its
    preprocessed images)``. Both serve ``stack(image_ids)`` rows and ``dim`` / ``cells``."""
    if not cfg.finetune_encoder:
        return None, open_grid_features(cfg.features, vl, cfg.encoder, cfg.weights, quiet=cfg.quiet)
    torch.manual_seed(cfg.seed)
    encoder = load_encoder(encoder_name or cfg.encoder, cfg.weights, device)
    if cfg.images is None and vl is None:
        raise DataError("--finetune-encoder without a data directory: pass --images, the folder of the images")
    return encoder, ImageStore(cfg.images or vl / "images", encoder)


def wrap(net: torch.nn.Module, encoder: Encoder | None) -> torch.nn.Module:
    """The model a batch goes through: ``net`` on grid features, or the tower then ``net`` on images."""
    return net if encoder is None else EndToEnd(encoder, net)


def optimizer_for(cfg: ViLOptions, net: torch.nn.Module, encoder: Encoder | None):
    """AdamW over the transformer (``--lr``) and the image tower when it trains (``--encoder-lr``), with BERT's
    schedule: linear warm-up over the first 5% of iterations, then linear decay to 0."""
    groups = [{"params": net.parameters(), "lr": cfg.lr}]
    if encoder is not None:
        groups.append({"params": encoder.visual.parameters(), "lr": cfg.encoder_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    warmup = max(1, cfg.iters // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min((i + 1) / warmup, max(0.0, (cfg.iters - i) / max(1, cfg.iters - warmup))))
    return optimizer, scheduler


def restore(state: dict, net: torch.nn.Module, encoder: Encoder | None, optimizer, scheduler) -> int:
    """Load a run's latest state (``checkpoint.pt``) into its parts; returns the iteration it reached."""
    net.load_state_dict(state["model"])
    if encoder is not None:
        encoder.visual.load_state_dict(state["visual"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["iteration"]


@torch.no_grad()
def per_image(model: torch.nn.Module, visual: torch.Tensor, device: torch.device,
              batch: int = 16) -> tuple[torch.nn.Module, torch.Tensor]:
    """What an evaluation runs: a model trained through the tower reads each image's grid computed once (a split
    has several texts per image), so ``(the transformer, grids [I, M, C])``; any other model ``(model, visual)``."""
    if not isinstance(model, EndToEnd):
        return model, visual
    encoder = model.encoder
    grids = [grid_tokens(encoder.forward(visual[k : k + batch].to(device, encoder.dtype))[1]).float().cpu()
             for k in range(0, len(visual), batch)]  # [b, M, C] each
    return model.head, torch.cat(grids)


def inputs(visual: torch.Tensor, rows: torch.Tensor, cells: torch.Tensor, ids: torch.Tensor,
           device: torch.device) -> tuple[torch.Tensor, ...]:
    """A batch's model inputs: its images' grid (or pixels), the cells to read, word pieces trimmed to the
    batch's longest text and their mask."""
    ids, mask = trim(ids)
    return visual[rows].to(device), cells.to(device), ids.to(device), mask.to(device)


def all_cells(batch: int, cells: int, blind: bool = False) -> torch.Tensor:
    """Every cell of the grid for each example (``[B, M]``), or none (``[B, 0]``) for a blind model."""
    return torch.arange(0 if blind else cells).expand(batch, -1)


def read_checkpoint(path: Path, kind: str, device: str = "cpu") -> dict:
    """A checkpoint of this package of the given ``kind``; any other file is one :class:`DataError` saying what it
    is and what to pass instead (:func:`envs.checkpoint.load_checkpoint`)."""
    return load_checkpoint(path, map_location=device, kind=kind)


def model_config(state: dict) -> ViLConfig:
    return ViLConfig(**state["model_config"])
