"""Which RxR recipe serves nDTW: the table of issue #12, reproducible with one command.

On the built-in world (one seed per run of this script), trains follower-only RxR models through
``python -m agents.train`` and scores val_unseen per language (en, hi, te) and on average:

- recipes: the shortest-path teacher with EnvDrop's goal reward (CLIP-ViL's), and the path teacher with the
  fidelity reward (the gain in nDTW per step + a success bonus);
- models: one per language (CLIP-ViL) and one joint multilingual model;
- references: R2R's shortest-path agent and Random baseline, and a blind joint model (zero features).

    python experiments/rxr_recipes.py --seed 0 --out runs/rxr-recipes

Each model is a normal run folder under ``--out`` (resumable: rerun the same command after a kill), and the
table goes to ``--out/table.md`` and ``--out/table.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents import baselines  # noqa: E402
from envs.atomic import write_json  # noqa: E402
from envs.cli import add_debug_option, command  # noqa: E402
from envs.world import WorldConfig, build_world, default_world_dir  # noqa: E402
from envs.kernel.navgraph import load_graphs  # noqa: E402
from eval.score import load_references, read_results, score_results  # noqa: E402
from experiments.runs import train_run  # noqa: E402

GROUPS = ("en", "hi", "te")
RECIPES = {"shortest+goal": ["--teacher", "shortest", "--reward", "goal"],
           "path+ndtw": ["--teacher", "path", "--reward", "ndtw"]}


def world_for(seed: int, out: Path) -> Path:
    if seed == 0:
        return default_world_dir()
    path = out / f"world-seed{seed}"
    if not (path / "world.json").exists():
        build_world(path, WorldConfig(seed=seed), force=path.exists())
    return path


def follower(out: Path, data: Path, args: argparse.Namespace, *extra: str) -> None:
    """Train one follower-only RxR run folder (resumable; a finished one is kept)."""
    train_run(out, ["rxr", "--data-dir", str(data), "--only", "follower", "--iters", str(args.iters),
                    "--eval-every", str(args.eval_every), "--batch-size", str(args.batch_size),
                    "--seed", str(args.seed), "--lr", str(args.lr), "--threads", str(args.threads), "--quiet",
                    *extra],
              resume_from="checkpoint.pt" if "--joint" in extra else "config.json")


def per_language_scores(results: dict[str, Path], data: Path) -> dict[str, dict]:
    """val_unseen scores per language group of results files (one per group, or one 'all' for every group)."""
    scores = {}
    for group in GROUPS:
        references = load_references("rxr", data, "val_unseen", [group])
        wanted = {r.instr_id for r in references}
        entries = [e for e in read_results(results.get(group, results.get("all"))) if str(e["instr_id"]) in wanted]
        graphs = load_graphs(data / "connectivity", sorted({r.scan for r in references}))
        summary = score_results(entries, references, graphs).summary
        scores[group] = {k: summary[k] for k in ("success", "spl", "ndtw", "sdtw", "cls")}
    scores["average"] = {k: float(np.mean([scores[g][k] for g in GROUPS])) for k in scores["en"]}
    return scores


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_debug_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="world and training seed")
    parser.add_argument("--out", type=Path, default=Path("runs/rxr-recipes"), help="output folder")
    parser.add_argument("--iters", type=int, default=300, help="follower iterations per model")
    parser.add_argument("--eval-every", type=int, default=100, help="iterations between evaluations")
    parser.add_argument("--batch-size", type=int, default=32, help="episodes per rollout")
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="learning rate (the built-in world's; a --data-dir run would otherwise take the paper's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = parser.parse_args(argv)
    out = args.out / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    data = world_for(args.seed, args.out)
    table: dict[str, dict] = {}
    for name, agent in (("shortest-path agent", "shortest"), ("Random", "random")):
        path = out / f"{agent}.json"
        if baselines.main([agent, "--task", "rxr", "--split", "val_unseen", "--data-dir", str(data),
                           "--out", str(path), "--seed", str(args.seed + 1)]) != 0:
            raise SystemExit(f"baseline {agent} failed")
        table[name] = per_language_scores({"all": path}, data)
    for recipe, flags in RECIPES.items():
        run = out / f"{recipe}-per-language"
        follower(run, data, args, "--languages", ",".join(GROUPS), *flags)
        table[f"{recipe}, one model per language"] = per_language_scores(
            {g: run / g / "results" / "val_unseen.json" for g in GROUPS}, data)
        run = out / f"{recipe}-joint"
        follower(run, data, args, "--languages", ",".join(GROUPS), "--joint", *flags)
        table[f"{recipe}, joint model"] = per_language_scores({"all": run / "results" / "val_unseen.json"}, data)
    run = out / "blind-joint"
    follower(run, data, args, "--languages", ",".join(GROUPS), "--joint", "--features", "none", *RECIPES["path+ndtw"])
    table["blind joint model (path+ndtw)"] = per_language_scores({"all": run / "results" / "val_unseen.json"}, data)
    write_json(out / "table.json", table, indent=2)
    lines = [f"RxR val_unseen on the built-in world, seed {args.seed} ({args.iters} iterations, batch "
             f"{args.batch_size}, lr {args.lr:g}): SR / nDTW in %", "",
             "| agent | en | hi | te | average |", "| --- | --- | --- | --- | --- |"]
    for name, scores in table.items():
        cells = [f"{100 * scores[g]['success']:.1f} / {100 * scores[g]['ndtw']:.1f}" for g in (*GROUPS, "average")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
