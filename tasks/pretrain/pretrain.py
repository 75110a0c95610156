"""``python -m tasks.pretrain pretrain``: pretrain the single-stream V&L transformer (CLIP-ViL_p) on image-text pairs.

Every example is a sentence about an image: a caption or a VQA question of ``DATA/vl``'s training split (the
paper pretrains on COCO / VG captions and the VQA / GQA questions of the same images). Objectives, each
switchable with ``--objectives``, as LXMERT (whose recipe CLIP-ViL_p follows) computes them:

* ``itm``: with probability ``--mismatch-prob`` the sentence is replaced by a caption of another image; the
  pooled state says whether text and image match (2-way cross-entropy over every example).
* ``mlm``: 15% of the word pieces of matched sentences are predicted (of them 80% shown as ``[MASK]``, 10% as a
  random piece, 10% unchanged).
* ``qa``: matched questions are answered over the answer space (binary cross-entropy on soft scores, summed
  over answers as the VQA heads do).

``--patches`` grid cells are sampled per example. The backbone is the stored grid features (frozen) or, with
``--finetune-encoder``, the CLIP tower trained end to end at its own learning rate. Each evaluation reports
per-split (``val``) MLM accuracy, ITM accuracy and QA accuracy (official VQA accuracy on matched questions).
The run folder (:mod:`tasks.vl.run`) holds ``best.pt`` and ``checkpoint.pt``, whose weights, tokenizer and
answer space ``python -m tasks.pretrain finetune --pretrained`` reads.

Under ``torchrun --nproc_per_node=N`` every process draws the same global batch (its sampling, masking and
mismatches are a function of ``--seed`` and the iteration) and plays its slice; gradients are averaged across
processes before the update (:mod:`agents.distributed`, what DistributedDataParallel does), and each loss is
divided by the global batch's count, so with ``--dropout 0`` the run follows the one-process run.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from agents import distributed
from envs.cli import parse_config
from envs.datadir import DataError
from tasks.pretrain.common import (PRETRAINED, ViLOptions, inputs, open_images, optimizer_for, per_image,
                                   read_checkpoint, restore, wrap)
from tasks.pretrain.data import Texts, load_corpus
from tasks.pretrain.model import Pretrainer, ViLConfig
from tasks.pretrain.text import MASK, encode, load_tokenizer, train_tokenizer
from tasks.vl.run import Run, batch_indices, default_run_folder, optimizer_step, seed_everything
from tasks.vl.sources import vl_dir
from tasks.vqa.accuracy import vqa_accuracy
from tasks.vqa.data import LabelSpace

OBJECTIVES = ("mlm", "itm", "qa")
EVAL_SEED = 7  # the evaluation's masks, mismatches and patches: the same at every evaluation


@dataclass
class PretrainConfig(ViLOptions):
    """Options of ``python -m tasks.pretrain pretrain``."""

    objectives: list[Literal["mlm", "itm", "qa"]] = field(default_factory=lambda: list(OBJECTIVES))
    """pretraining objectives: mlm (masked word pieces), itm (image-text match), qa (VQA questions answered)"""
    patches: int = 100
    """grid cells sampled at random per example (every cell when the grid has fewer: RN50's has 49)"""
    mask_prob: float = 0.15
    """share of word pieces masked for mlm"""
    mismatch_prob: float = 0.5
    """share of sentences replaced by another image's caption for itm"""
    vocab_size: int = 2000
    """most word pieces of the WordPiece tokenizer learnt from the training sentences"""
    hidden: int = 256
    """transformer width"""
    layers: int = 4
    """transformer layers"""
    heads: int = 4
    """attention heads"""
    max_text: int = 32
    """most word pieces of a sentence ([CLS] and [SEP] included)"""


@dataclass
class Batch:
    """One global batch of pretraining examples (every tensor's first dimension is the example)."""

    rows: torch.Tensor  # [B] image rows
    ids: torch.Tensor  # [B, T] word pieces after masking / mismatching
    labels: torch.Tensor  # [B, T] the masked pieces, -100 elsewhere
    matched: torch.Tensor  # [B] bool
    qa: torch.Tensor  # [B] bool: a matched question, answered
    targets: torch.Tensor  # [B, A] soft scores
    cells: torch.Tensor  # [B, N] sampled grid cells

    def shard(self, rank: int, world: int) -> Batch:
        """This process's contiguous slice."""
        part = torch.tensor_split(torch.arange(len(self.rows)), world)[rank]
        return Batch(*(getattr(self, f.name)[part] for f in dataclasses.fields(self)))


def make_batch(corpus: Texts, ids: torch.Tensor, idx: torch.Tensor, cells: int, cfg: PretrainConfig,
               vocab: int, generator: torch.Generator) -> Batch:
    """The examples ``idx`` of ``corpus`` (encoded as ``ids [S, T]``) with their mismatches, masks and patches,
    all drawn from ``generator``."""
    b = len(idx)
    rows, text = corpus.rows[idx], ids[idx].clone()
    matched = torch.ones(b, dtype=torch.bool)
    if "itm" in cfg.objectives:
        captions = (~corpus.is_question).nonzero().flatten()
        pick = captions[torch.randint(len(captions), (b,), generator=generator)]
        for _ in range(10):  # redraw the captions of the example's own image
            same = corpus.rows[pick] == rows
            if not same.any():
                break
            pick[same] = captions[torch.randint(len(captions), (int(same.sum()),), generator=generator)]
        flip = (torch.rand(b, generator=generator) < cfg.mismatch_prob) & (corpus.rows[pick] != rows)
        text[flip] = ids[pick[flip]]
        matched = ~flip
    labels = torch.full_like(text, -100)
    if "mlm" in cfg.objectives:  # LXMERT masks matched sentences only: a mismatched one says nothing of the image
        chosen = (torch.rand(text.shape, generator=generator) < cfg.mask_prob) & (text > MASK) & matched[:, None]
        labels[chosen] = text[chosen]
        action = torch.rand(text.shape, generator=generator)
        noise = torch.randint(MASK + 1, vocab, text.shape, generator=generator)
        text = torch.where(chosen & (action < 0.8), MASK, torch.where(chosen & (action < 0.9), noise, text))
    qa = corpus.is_question[idx] & matched if "qa" in cfg.objectives else torch.zeros(b, dtype=torch.bool)
    order = torch.rand(b, cells, generator=generator).argsort(1)[:, : min(cfg.patches, cells)]  # [B, N]
    return Batch(rows, text, labels, matched, qa, corpus.targets[idx], order)


def forward(net: Pretrainer, model: torch.nn.Module, visual: torch.Tensor, batch: Batch, objectives: list[str],
            device: torch.device) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]:
    """Each objective's ``(loss summed over the batch, count it averages over)`` and its head's outputs."""
    x = inputs(visual, batch.rows, batch.cells, batch.ids, device)
    states, pooled = model(*x)  # [b, L + N, D], [b, D]
    length = x[2].shape[1]
    sums, outputs = {}, {}
    if "mlm" in objectives:
        labels = batch.labels[:, :length].to(device)
        outputs["mlm"] = net.mlm(states[:, :length])  # [b, L, V]
        sums["mlm"] = (F.cross_entropy(outputs["mlm"].flatten(0, 1), labels.flatten(), ignore_index=-100,
                                       reduction="sum"), (labels != -100).sum())
    if "itm" in objectives:
        outputs["itm"] = net.itm(pooled)  # [b, 2]
        sums["itm"] = (F.cross_entropy(outputs["itm"], batch.matched.long().to(device), reduction="sum"),
                       torch.tensor(len(batch.rows)))
    if "qa" in objectives:
        qa = batch.qa.to(device)
        outputs["qa"] = net.qa(pooled)  # [b, A]
        sums["qa"] = (F.binary_cross_entropy_with_logits(outputs["qa"][qa], batch.targets.to(device)[qa],
                                                         reduction="sum"), qa.sum())  # summed over answers
    return sums, outputs


def global_loss(sums: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, float]]:
    """This process's loss, each term its sum over the global count (:func:`agents.distributed.share`), so that
    the gradients averaged across processes are the whole batch's; and each term's value on the whole batch."""
    total, logged = torch.zeros(()), {}
    world = distributed.group().world_size
    for name, (loss_sum, count) in sums.items():
        divisor = distributed.share(count)
        term = loss_sum / divisor if divisor > 0 else loss_sum * 0  # no masked piece / question in the batch
        total = total + term
        logged[name] = float(distributed.global_sum(term.detach())) / world
    return total, logged | {"total": sum(logged.values())}


@torch.no_grad()
def evaluate(net: Pretrainer, model: torch.nn.Module, visual: torch.Tensor, corpus: Texts, ids: torch.Tensor,
             cfg: PretrainConfig, cells: int, labels: LabelSpace, device: torch.device, batch: int = 128) -> dict:
    """MLM accuracy (masked pieces), ITM accuracy and QA accuracy (official VQA accuracy of matched questions) in
    percent, on masks and mismatches drawn the same way at every evaluation."""
    model.eval()
    reader, visual = per_image(model, visual, device)
    generator = torch.Generator().manual_seed(EVAL_SEED)
    hits = {"mlm": [0, 0], "itm": [0, 0], "qa": [0.0, 0]}
    for start in range(0, len(corpus), batch):
        idx = torch.arange(start, min(start + batch, len(corpus)))
        b = make_batch(corpus, ids, idx, cells, cfg, net.backbone.cfg.vocab_size, generator)
        _, out = forward(net, reader, visual, b, cfg.objectives, device)
        if "mlm" in out:
            gold = b.labels[:, : out["mlm"].shape[1]]
            hits["mlm"][0] += int(((out["mlm"].argmax(-1).cpu() == gold) & (gold != -100)).sum())
            hits["mlm"][1] += int((gold != -100).sum())
        if "itm" in out:
            hits["itm"][0] += int((out["itm"].argmax(-1).cpu() == b.matched.long()).sum())
            hits["itm"][1] += len(idx)
        if "qa" in out:
            for k in b.qa.nonzero().flatten().tolist():
                hits["qa"][0] += vqa_accuracy(labels.answers[int(out["qa"][k].argmax())],
                                              corpus.items[int(idx[k])].answers)
                hits["qa"][1] += 1
    model.train()
    return {name: round(100 * h / n, 2) for name, (h, n) in hits.items() if n}


def pretrain(cfg: PretrainConfig) -> Run | None:
    """Run the pretraining described by ``cfg`` (resuming when asked); rank 0 returns the finished run."""
    unknown = set(cfg.objectives) - set(OBJECTIVES)
    if not cfg.objectives or unknown:
        raise DataError(f"--objectives: choose one or more of {', '.join(OBJECTIVES)} (got {cfg.objectives})")
    group = distributed.group()
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    if group.is_main:  # rank 0 builds the world and extracts the grid features if needed; the others follow
        vl = vl_dir(cfg.data_dir)
        encoder, images = open_images(cfg, vl, device)
    distributed.barrier()
    if not group.is_main:
        vl = vl_dir(cfg.data_dir)
        encoder, images = open_images(cfg, vl, device)
    labels = LabelSpace.load(vl / "vqa" / "trainval_ans2label.json")
    train, val = load_corpus(vl, "train", labels), load_corpus(vl, "val", labels)
    out = Path(cfg.out) if cfg.out else default_run_folder("pretrain", "-".join(cfg.objectives))
    state = None
    if cfg.resume:
        state = read_checkpoint(out / "checkpoint.pt", PRETRAINED)
    tokenizer = load_tokenizer(state["tokenizer"]) if state else train_tokenizer(train.texts, cfg.vocab_size)
    train_ids, val_ids = encode(tokenizer, train.texts, cfg.max_text), encode(tokenizer, val.texts, cfg.max_text)
    vil = ViLConfig(vocab_size=tokenizer.get_vocab_size(), feature_dim=images.dim, hidden=cfg.hidden,
                    layers=cfg.layers, heads=cfg.heads, max_text=cfg.max_text, dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)
    net = Pretrainer(vil, len(labels)).to(device)
    model = wrap(net, encoder).to(device)
    visual = images.stack(train.image_ids, what=f"a sentence of {train.source}")  # [I, M, C] or [I, 3, S, S]
    val_visual = images.stack(val.image_ids, what=f"a sentence of {val.source}")
    optimizer, scheduler = optimizer_for(cfg, net, encoder)
    run = Run(out, cfg, cfg.resume, {"features_attrs": images.attrs, "answers": len(labels),
                                     "sentences": {"train": len(train), "val": len(val)},
                                     "processes": group.world_size}, task="pretrain") if group.is_main else None
    iteration = 0
    if state is not None:
        if group.is_main:
            run.restore()
        iteration = restore(state, net, encoder, optimizer, scheduler)
    distributed.broadcast_parameters(model)
    if group.is_main and not cfg.quiet:
        print(f"pretraining ({', '.join(cfg.objectives)}) on {len(train)} sentences about {len(train.image_ids)} "
              f"images, {min(cfg.patches, images.cells)} of {images.cells} grid cells each, "
              f"{group.world_size} process(es); outputs in {out}", flush=True)

    def checkpoint_state() -> dict:
        return {"kind": PRETRAINED, "model_config": dataclasses.asdict(vil), "model": net.state_dict(),
                "visual": encoder.visual.state_dict() if encoder is not None else {},
                "encoder": encoder.name if encoder is not None else "", "tokenizer": tokenizer.to_str(),
                "answers": labels.answers, "objectives": list(cfg.objectives), "iteration": iteration,
                "features_attrs": {k: v for k, v in images.attrs.items() if isinstance(v, (str, int, float))}}

    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=iteration, desc="pretrain", disable=cfg.quiet or not group.is_main,
               file=sys.stdout)
    model.train()
    while iteration < cfg.iters:
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
        idx = batch_indices(len(train), cfg.batch_size, cfg.seed, iteration)
        batch = make_batch(train, train_ids, idx, images.cells, cfg, vil.vocab_size, generator)
        loss, logged = global_loss(forward(net, model, visual, batch.shard(*group.shard()), cfg.objectives, device)[0])
        optimizer_step(loss, optimizer, scheduler, model.parameters(), 5.0,
                       reduce=lambda: distributed.average_gradients(model))
        iteration += 1
        bar.update(1)
        if run is not None:
            run.scalars("losses", logged | {"lr": scheduler.get_last_lr()[0]}, iteration)
        if iteration % cfg.eval_every == 0 or iteration == cfg.iters:
            if run is not None:
                scores = evaluate(net, model, val_visual, val, val_ids, cfg, images.cells, labels, device)
                run.scalars("eval/val", scores, iteration)
                run.record({"iteration": iteration, "val": scores}, sum(scores.values()), checkpoint_state())
                run.save(checkpoint_state() | {"optimizer": optimizer.state_dict(),
                                               "scheduler": scheduler.state_dict()})
                bar.set_postfix_str(" ".join(f"{k} {v:.1f}" for k, v in scores.items()))
            distributed.barrier()  # the other ranks wait while rank 0 evaluates and saves
    bar.close()
    if run is not None:
        run.close()
    return run


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PretrainConfig, argv, prog="python -m tasks.pretrain pretrain",
                       description=__doc__.splitlines()[0])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        group, device = distributed.setup(cfg.device)  # under torchrun: join the other ranks
        if group.world_size > 1 and (cfg.out is None or cfg.batch_size % group.world_size):
            raise DataError(f"under torchrun give --out (one run folder for every process) and a --batch-size "
                            f"divisible by the {group.world_size} processes")
        run = pretrain(dataclasses.replace(cfg, device=device))
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    if run is not None and not cfg.quiet:
        print(f"done. best val {run.best.get('val')} (iteration {run.best.get('iteration')})\noutputs: {run.out}")
    return 0
