"""``python -m tasks.pretrain finetune --task vqa|snli-ve|gqa``: fine-tune the V&L transformer on a task.

It starts from a pretraining checkpoint (``--pretrained``) or from random init (the paper's Table 8 comparison).

* ``vqa``: the pooled state through an answer head, binary cross-entropy on soft scores over the answer space
  (``DATA/vl/vqa/trainval_ans2label.json`` on the built-in data; ``--label-space`` or the training answers
  otherwise), scored with the official VQA accuracy.
* ``snli-ve``: three-way entailment (cross-entropy), accuracy per gold label.
* ``gqa``: answer classification, exact match. Real GQA balanced files with ``--train-file`` / ``--val-file``;
  the built-in world has no GQA files, so its VQA questions are used in GQA's form (one answer: the majority
  of the ten).

Every grid cell is read (sampling is for pretraining). ``--blind`` is the text-only baseline of the same model
(no visual tokens: the hypothesis-only baseline of SNLI-VE, question-only of VQA). The backbone is frozen (stored
grid features) or, with ``--finetune-encoder``, trained through the CLIP tower at ``--encoder-lr`` (a tower
fine-tuned in pretraining is taken from the checkpoint). Each evaluation scores every split (built-in data:
``val`` and ``test``; the first chooses ``best.pt``) and writes the best model's answers to ``results/``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from envs.atomic import write_json
from envs.cli import parse_config
from envs.datadir import DataError
from tasks.pretrain.common import (PRETRAINED, ViLOptions, all_cells, inputs, model_config, open_images,
                                   optimizer_for, per_image, read_checkpoint, restore, wrap)
from tasks.pretrain.data import Texts, load_task, score, task_classes
from tasks.pretrain.model import Classifier, ViLConfig
from tasks.pretrain.text import encode, load_tokenizer, train_tokenizer
from tasks.vl.run import Run, batch_indices, default_run_folder, optimizer_step, seed_everything
from tasks.vl.sources import vl_dir
from tasks.vqa.data import LabelSpace


def finetune_kind(task: str) -> str:
    return f"tasks.pretrain/finetune-{task}"


@dataclass
class FinetuneConfig(ViLOptions):
    """Options of ``python -m tasks.pretrain finetune``."""

    task: Literal["vqa", "snli-ve", "gqa"] = "vqa"
    """the task: vqa (soft scores), snli-ve (3-way entailment) or gqa (answer classification)"""
    pretrained: Path | None = None
    """a pretraining checkpoint (best.pt of python -m tasks.pretrain pretrain); without it, random init"""
    train_file: Path | None = None
    """training split: VQA v2 questions, GQA balanced questions or an SNLI-VE jsonl (default: DATA/vl's)"""
    train_annotations: Path | None = None
    """VQA annotations of --train-file"""
    val_file: Path | None = None
    """validation split, in --train-file's format (default: DATA/vl's val and test splits)"""
    val_annotations: Path | None = None
    """VQA annotations of --val-file"""
    label_space: Path | None = None
    """answer space of vqa / gqa, trainval_ans2label.json or trainval_label2ans.json (default: DATA/vl/vqa/'s on
    the built-in data, else the training answers)"""
    blind: bool = False
    """the text-only baseline: no visual tokens (hypothesis-only for snli-ve, question-only for vqa / gqa)"""
    vocab_size: int = 2000
    """without --pretrained: most word pieces of the tokenizer learnt from the training texts"""
    hidden: int = 256
    """without --pretrained: transformer width"""
    layers: int = 4
    """without --pretrained: transformer layers"""
    heads: int = 4
    """without --pretrained: attention heads"""
    max_text: int = 32
    """without --pretrained: most word pieces of a text"""


def _splits(cfg: FinetuneConfig) -> tuple[dict[str, tuple[Path, Path | None]], Path | None, Path | None, bool]:
    """``{split: (file, annotations)}`` (training first), the data's V&L folder, the label space file, and whether
    GQA is read from VQA files (the built-in data)."""
    if cfg.train_file is not None:
        if cfg.val_file is None:
            raise DataError("--train-file without --val-file: give the validation split in the same format")
        vl = vl_dir(cfg.data_dir) if cfg.features is None and cfg.images is None else None
        return ({"train": (cfg.train_file, cfg.train_annotations), "val": (cfg.val_file, cfg.val_annotations)},
                vl, cfg.label_space, False)
    vl = vl_dir(cfg.data_dir)
    if cfg.task == "snli-ve":
        files = {s: (vl / "snli_ve" / f"snli_ve_{f}.jsonl", None) for s, f in
                 (("train", "train"), ("val", "dev"), ("test", "test"))}
    else:
        files = {s: (vl / "vqa" / f"{s}_questions.json", vl / "vqa" / f"{s}_annotations.json")
                 for s in ("train", "val", "test")}
    labels = cfg.label_space or (vl / "vqa" / "trainval_ans2label.json" if cfg.task == "vqa" else None)
    return files, vl, labels, cfg.task == "gqa"


@torch.no_grad()
def predict(model: torch.nn.Module, visual: torch.Tensor, split: Texts, ids: torch.Tensor, cells: int, blind: bool,
            device: torch.device, batch: int = 128) -> list[int]:
    """The predicted class of every text of ``split``."""
    model.eval()
    reader, visual = per_image(model, visual, device)
    out = []
    for start in range(0, len(split), batch):
        idx = torch.arange(start, min(start + batch, len(split)))
        logits = reader(*inputs(visual, split.rows[idx], all_cells(len(idx), cells, blind), ids[idx], device))
        out += logits.argmax(1).tolist()
    model.train()
    return out


def results(task: str, split: Texts, classes: list[str], predicted: list[int]) -> list[dict]:
    """A results file: ``{question_id, answer}`` (VQA's official format) or ``{pairID, gold_label}`` per item."""
    if task == "snli-ve":
        return [{"pairID": p.pair_id, "gold_label": classes[k]} for p, k in zip(split.items, predicted)]
    return [{"question_id": q.question_id, "answer": classes[k]} for q, k in zip(split.items, predicted)]


def finetune(cfg: FinetuneConfig) -> Run:
    """Run the fine-tuning described by ``cfg`` (resuming when asked); returns the finished run."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    files, vl, labels_file, gqa_from_vqa = _splits(cfg)
    pretrained = read_checkpoint(cfg.pretrained, PRETRAINED) if cfg.pretrained else None
    out = Path(cfg.out) if cfg.out else default_run_folder(f"finetune-{cfg.task}",
                                                           "pretrained" if pretrained else "scratch")
    state = read_checkpoint(out / "checkpoint.pt", finetune_kind(cfg.task)) if cfg.resume else None
    encoder, images = open_images(cfg, vl, device, (pretrained or {}).get("encoder") or None)
    if pretrained and pretrained["model_config"]["feature_dim"] != images.dim:
        raise DataError(f"{cfg.pretrained}: pretrained on {pretrained['model_config']['feature_dim']}-d grid features, "
                        f"but {images.attrs.get('encoder', 'these')} features are {images.dim}-d; use the same encoder")
    if cfg.task != "snli-ve":  # the answer space needs the training questions first
        from tasks.vqa.data import load_gqa, load_vqa

        path, annotations = files["train"]
        train_items = load_gqa(path) if cfg.task == "gqa" and not gqa_from_vqa else load_vqa(path, annotations)
        classes = task_classes(cfg.task, train_items, labels_file)
    else:
        classes = task_classes(cfg.task, [], None)
    labels = LabelSpace(classes) if cfg.task != "snli-ve" else None
    splits = {name: load_task(cfg.task, path, ann, labels, gqa_from_vqa) for name, (path, ann) in files.items()}
    train = splits.pop("train")
    source = state or pretrained
    tokenizer = load_tokenizer(source["tokenizer"]) if source else train_tokenizer(train.texts, cfg.vocab_size)
    vil = (dataclasses.replace(model_config(source), dropout=cfg.dropout) if source else
           ViLConfig(vocab_size=tokenizer.get_vocab_size(), feature_dim=images.dim, hidden=cfg.hidden,
                     layers=cfg.layers, heads=cfg.heads, max_text=cfg.max_text, dropout=cfg.dropout))
    ids = {name: encode(tokenizer, split.texts, vil.max_text) for name, split in [("train", train), *splits.items()]}
    torch.manual_seed(cfg.seed)
    net = Classifier(vil, len(classes)).to(device)
    if pretrained is not None:
        net.backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in pretrained["model"].items()
                                      if k.startswith("backbone.")})
        if encoder is not None and pretrained["visual"]:
            encoder.visual.load_state_dict(pretrained["visual"])
    model = wrap(net, encoder).to(device)
    visual = {name: images.stack(split.image_ids, what=f"an item of {split.source}")
              for name, split in [("train", train), *splits.items()]}
    optimizer, scheduler = optimizer_for(cfg, net, encoder)
    run = Run(out, cfg, cfg.resume, {"features_attrs": images.attrs, "classes": len(classes),
                                     "items": {"train": len(train)} | {k: len(v) for k, v in splits.items()},
                                     "gqa_from_vqa": gqa_from_vqa}, task=f"finetune-{cfg.task}")
    iteration = 0
    if state is not None:
        run.restore()
        iteration = restore(state, net, encoder, optimizer, scheduler)
    usable = (train.targets.sum(1) > 0).nonzero().flatten()  # items with an answer in the answer space
    if not cfg.quiet:
        print(f"fine-tuning on {cfg.task} ({'pretrained: ' + str(cfg.pretrained) if pretrained else 'random init'}"
              f"{', blind' if cfg.blind else ''}): {len(usable)} training items, {len(classes)} classes, "
              f"evaluated on {', '.join(f'{k} ({len(v)})' for k, v in splits.items())}; outputs in {run.out}",
              flush=True)

    def checkpoint_state() -> dict:
        return {"kind": finetune_kind(cfg.task), "task": cfg.task, "model_config": dataclasses.asdict(vil),
                "model": net.state_dict(), "visual": encoder.visual.state_dict() if encoder is not None else {},
                "encoder": encoder.name if encoder is not None else "", "tokenizer": tokenizer.to_str(),
                "classes": classes, "blind": cfg.blind, "iteration": iteration,
                "pretrained": str(cfg.pretrained or "")}

    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=iteration, desc=f"finetune {cfg.task}", disable=cfg.quiet, file=sys.stdout)
    model.train()
    while iteration < cfg.iters:
        idx = usable[batch_indices(len(usable), cfg.batch_size, cfg.seed, iteration)]
        logits = model(*inputs(visual["train"], train.rows[idx], all_cells(len(idx), images.cells, cfg.blind),
                               ids["train"][idx], device))  # [B, K]
        target = train.targets[idx].to(device)
        if cfg.task == "snli-ve":
            loss = F.cross_entropy(logits, target.argmax(1))
        else:  # soft scores, summed over answers (bottom-up attention's scaling, as tasks.vqa trains)
            loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(idx)
        optimizer_step(loss, optimizer, scheduler, model.parameters(), 5.0)
        iteration += 1
        bar.update(1)
        run.scalars("losses", {"loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, iteration)
        if iteration % cfg.eval_every == 0 or iteration == cfg.iters:
            predicted = {name: predict(model, visual[name], split, ids[name], images.cells, cfg.blind, device)
                         for name, split in splits.items()}
            summary = {name: score(cfg.task, splits[name], classes, p) for name, p in predicted.items()}
            for name, s in summary.items():
                run.scalars(f"eval/{name}", {"overall": s["overall"]}, iteration)
            first = next(iter(summary))
            if run.record({"iteration": iteration} | summary, summary[first]["overall"], checkpoint_state()):
                for name, p in predicted.items():
                    write_json(run.out / "results" / f"{name}.json", results(cfg.task, splits[name], classes, p))
            run.save(checkpoint_state() | {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            bar.set_postfix_str(f"{first} {summary[first]['overall']:.2f}")
    bar.close()
    run.close()
    return run


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(FinetuneConfig, argv, prog="python -m tasks.pretrain finetune",
                       description=__doc__.splitlines()[0], required=["task"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        run = finetune(cfg)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not cfg.quiet:
        best = {k: v["overall"] for k, v in run.best.items() if isinstance(v, dict) and "overall" in v}
        print(f"done. best {best} (iteration {run.best.get('iteration')})\noutputs: {run.out}")
    return 0
