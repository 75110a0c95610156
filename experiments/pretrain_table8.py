"""Does V&L pretraining help on the built-in world? The paper's Table 8 comparison, reproducible with one command.

Builds a world with ``--images`` V&L images (RN50 at random init: its grid features are extracted once), then

1. pretrains the V&L transformer (MLM + ITM + QA, frozen backbone) for ``--pretrain-iters``;
2. fine-tunes VQA, SNLI-VE and GQA-style (the world's VQA questions in GQA's form) for ``--finetune-iters``
   each, from that checkpoint and from random init, same seed and budget;
3. SNLI-VE references: chance (33.3), the majority label, the hypothesis-only model (``--blind``, same budget);
4. frozen against fine-tuned backbone (``--finetune-encoder``, through the CLIP tower) on ``--e2e-task`` from the
   pretrained checkpoint, both for ``--e2e-iters`` at ``--e2e-batch`` (training through RN50 is slow on a CPU).

    python experiments/pretrain_table8.py --out runs/table8

Every model is a normal run folder under ``--out`` (a finished one is read back, not rerun); the table goes to
``--out/table.md`` and ``--out/table.json``.

Recorded run (issue 14, this 2-core machine shared with other jobs, load about 9; about 45 min in all), with the
defaults above: 540 images (378 train / 120 val / 42 test), transformer 128 wide x 2 layers, batch 32, lr 2e-4,
25 of 49 cells sampled in pretraining, 300 pretraining iterations (val MLM 28.4, ITM 75.1, QA 17.3), 60
fine-tuning iterations per model. Accuracy val / test:

    task       without pretraining   with pretraining
    VQA        12.88 / 13.44         29.17 / 30.44
    SNLI-VE    34.66 / 35.71         76.72 / 78.57   (chance 33.33, majority 33.33, hypothesis-only 70.90 / 65.87)
    GQA-style  12.23 / 13.11         12.23 / 13.11

    VQA from the pretrained checkpoint, 6 iterations of 8: frozen backbone 2.68 (15 s), fine-tuned 2.68 (576 s)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.atomic import write_json  # noqa: E402
from envs.world import WorldConfig, build_world  # noqa: E402
from envs.world.vl import VLConfig  # noqa: E402
from features.encoders import load_encoder  # noqa: E402
from features.grid import extract_grid, list_images  # noqa: E402
from tasks.pretrain.__main__ import main as pretrain_main  # noqa: E402
from tasks.vl.snli_ve import load_snli_ve  # noqa: E402

TASKS = ("vqa", "snli-ve", "gqa")


def world(out: Path, images: int, seed: int) -> Path:
    path = out / "world"
    if not (path / "vl" / "grid-rn50.h5").exists():
        houses = max(3, images // 60)
        build_world(path, WorldConfig(seed=seed, houses_seen=houses, houses_unseen=max(1, houses // 3), houses_test=1,
                                      paths_per_house=4, eval_paths_per_house=2, image_size=32, workers=1,
                                      feature_dim=64), vl=VLConfig(vl_max_images=images))
        torch.manual_seed(0)
        extract_grid(load_encoder("RN50"), list_images(path / "vl" / "images"), path / "vl" / "grid-rn50.h5",
                     {"encoder": "RN50", "weights": "random", "seed": 0}, quiet=True)
    return path


def run(out: Path, argv: list[str]) -> dict:
    """A command's run folder's scores.json (the command runs first unless it finished before), with its time."""
    if not (out / "scores.json").exists() or not (out / "done").exists():
        resume = ["--resume"] if (out / "checkpoint.pt").exists() else []
        started = time.perf_counter()
        assert pretrain_main([*argv, "--out", str(out), "--quiet", *resume]) == 0, argv
        (out / "done").write_text(f"{time.perf_counter() - started:.1f}\n")
    scores = json.loads((out / "scores.json").read_text())
    return scores | {"seconds": float((out / "done").read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=540)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-iters", type=int, default=300)
    parser.add_argument("--finetune-iters", type=int, default=60)
    parser.add_argument("--e2e-task", default="vqa", choices=TASKS)
    parser.add_argument("--e2e-iters", type=int, default=6)
    parser.add_argument("--e2e-batch", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--patches", type=int, default=25, help="grid cells sampled per example in pretraining")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = world(args.out, args.images, args.seed)
    common = ["--data-dir", str(data), "--seed", str(args.seed), "--threads", str(args.threads)]
    size = ["--hidden", str(args.hidden), "--layers", str(args.layers), "--batch-size", str(args.batch_size),
            "--lr", str(args.lr)]
    table: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    table["pretrain"] = run(args.out / "pretrain", ["pretrain", *common, *size, "--patches", str(args.patches),
                                                    "--iters", str(args.pretrain_iters),
                                                    "--eval-every", str(max(1, args.pretrain_iters // 5))])
    checkpoint = args.out / "pretrain" / "best.pt"
    finetune = [*common, *size, "--iters", str(args.finetune_iters), "--eval-every", str(args.finetune_iters)]
    for task in TASKS:
        for name, extra in (("scratch", []), ("pretrained", ["--pretrained", str(checkpoint)])):
            table[f"{task}/{name}"] = run(args.out / f"{task}-{name}", ["finetune", "--task", task, *finetune, *extra])
    table["snli-ve/hypothesis-only"] = run(args.out / "snli-ve-blind", ["finetune", "--task", "snli-ve", "--blind",
                                                                       *finetune])
    dev = load_snli_ve(data / "vl" / "snli_ve" / "snli_ve_dev.jsonl")
    top, n = Counter(p.label for p in dev).most_common(1)[0]
    table["snli-ve/majority"] = {"label": top, "val": round(100 * n / len(dev), 2), "chance": 33.33}
    if not args.skip_e2e:
        e2e = [*common, "--iters", str(args.e2e_iters), "--batch-size", str(args.e2e_batch), "--eval-every",
               str(args.e2e_iters), "--pretrained", str(checkpoint), "--task", args.e2e_task]
        table["e2e/frozen"] = run(args.out / "e2e-frozen", ["finetune", *e2e])
        table["e2e/finetuned"] = run(args.out / "e2e-finetuned", ["finetune", *e2e, "--finetune-encoder"])
    write_json(args.out / "table.json", table, indent=2)
    (args.out / "table.md").write_text(markdown(table))
    print(markdown(table))
    return 0


def markdown(table: dict) -> str:
    def best(key: str, split: str = "val") -> str:
        entry = table.get(key)
        return f"{entry['best'][split]['overall']:.2f}" if entry else "-"

    lines = ["| task | without pretraining (val / test) | with pretraining (val / test) |", "| --- | --- | --- |"]
    for task in TASKS:
        lines.append(f"| {task} | {best(f'{task}/scratch')} / {best(f'{task}/scratch', 'test')} | "
                     f"{best(f'{task}/pretrained')} / {best(f'{task}/pretrained', 'test')} |")
    majority = table["snli-ve/majority"]
    lines += ["", f"SNLI-VE dev: chance 33.33, majority label ({majority['label']}) {majority['val']:.2f}, "
                  f"hypothesis-only {best('snli-ve/hypothesis-only')}",
              "", f"pretraining val (best): {table['pretrain']['best'].get('val')}"]
    if "e2e/frozen" in table:
        lines += ["", f"{table['args']['e2e_task']} from the pretrained checkpoint, {table['args']['e2e_iters']} "
                      f"iterations of {table['args']['e2e_batch']}: frozen backbone {best('e2e/frozen')} "
                      f"({table['e2e/frozen']['seconds']:.0f} s), fine-tuned backbone {best('e2e/finetuned')} "
                      f"({table['e2e/finetuned']['seconds']:.0f} s)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
