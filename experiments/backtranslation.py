"""Does back-translation help? Issue #16's comparison on the built-in world, reproducible with one command.

Per training seed, on the built-in R2R world: a speaker and a follower are trained (stage 1, to the budget
given), then the follower is fine-tuned two ways from the same weights, with the same number of updates, the
same learning rate (``--bt-lr``) and fresh optimisers:

- back-translation: every update a real batch and a batch of speaker-written instructions on sampled paths
  (with environment dropout), as EnvDrop;
- plain: every update a real batch only (continued ordinary training).

``--arms`` adds two controls that tell the speaker's part from the extra pass's: the augmented pass on the
training paths with the speaker's instructions (``bt-train-speaker``) or with their human ones
(``bt-train-human``), environmental dropout and weights as back-translation. The table ends with how well the
stage-1 follower follows the speaker's instructions on the validation paths, against the human ones.

    python experiments/backtranslation.py --seeds 0 1 2 --out runs/backtranslation [--shared-stage1]

With ``--shared-stage1`` the speaker and the stage-1 follower are the first seed's, and only the arms change
with the seed (their batches, dropout and sampling): the spread of the comparison itself, at a third of the cost.

Each model is a normal run folder under ``--out`` (rerun the command after a kill to resume), and the table
(val_unseen SR and SPL of stage 1 and of both arms, per seed, mean and spread) goes to ``--out/table.md`` and
``--out/table.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.atomic import write_json  # noqa: E402
from envs.world import default_world_dir  # noqa: E402
from experiments.runs import train_run  # noqa: E402

METRICS = ("success", "spl")
# arm -> what back-translation's augmented pass plays (agents.train --aug-source); "plain" adds no pass
ARMS = {"backtranslation": "sampled", "bt-train-speaker": "train-speaker", "bt-train-human": "train-human",
        "plain": None}


def val_unseen(run: Path, which: str) -> dict[str, float]:
    """val_unseen SR and SPL (and val_seen SR, ``seen_success``) of a run: its best evaluation (by the run's
    own selection) or its last one."""
    scores = json.loads((run / "scores.json").read_text())
    record = scores["best"]["follower"]["scores"] if which == "best" else scores["history"][-1]
    unseen = {m: float(record[f"val_unseen/{m}"]) for m in METRICS}
    return unseen | {"seen_success": float(record["val_seen/success"])}


def executability(follower_path: Path, speaker_path: Path, data: Path) -> dict[str, dict[str, float]]:
    """SR of a follower on each validation split's paths with their human instructions and with the speaker's:
    how well the instructions back-translation trains on can be followed."""
    from agents.evaluate import load_follower, read_checkpoint
    from agents.rollout import evaluate_follower
    from agents.speaker import Speaker, SpeakerConfig
    from envs.checkpoint import load_checkpoint, load_model
    from envs.gym.vector_env import VLNVectorEnv
    from eval.score import score_episode_results

    envs = {split: VLNVectorEnv(data, split, num_envs=64, shuffle=False, metrics_in_info=False)
            for split in ("val_seen", "val_unseen")}
    vocab, dim = envs["val_seen"].vocab.words, envs["val_seen"].feature_dim  # one vocabulary for every split
    follower = load_follower(read_checkpoint(follower_path, "cpu"), follower_path, vocab, dim, "cpu")
    state = load_checkpoint(speaker_path, kind="speaker")
    speaker = Speaker(SpeakerConfig(**state["config"]))
    load_model(speaker, state, speaker_path, list(vocab))
    table: dict[str, dict[str, float]] = {"human instructions": {}, "speaker's instructions": {}}
    for split, env in envs.items():
        for row, source in (("human instructions", None), ("speaker's instructions", speaker)):
            results = evaluate_follower(follower, env, speaker=source)
            table[row][split] = score_episode_results("r2r", env.episodes, env.graphs, results).summary["success"]
    return table


def stage1_seed(seed: int, args: argparse.Namespace) -> int:
    """The seed whose speaker and stage-1 follower ``seed``'s arms start from (the first one with
    ``--shared-stage1``)."""
    return args.seeds[0] if args.shared_stage1 else seed


def one_seed(seed: int, data: Path, args: argparse.Namespace) -> dict[str, dict]:
    def flags(run_seed: int) -> list[str]:
        return ["r2r", "--data-dir", str(data), "--seed", str(run_seed), "--threads", str(args.threads), "--quiet",
                "--batch-size", str(args.batch_size)]

    out, first = args.out / f"seed{seed}", stage1_seed(seed, args)
    common = flags(seed)
    # --data-dir is explicit, so agents.train would default to the paper's lr (1e-4): give the world's own
    stage1 = [*flags(first), "--lr", str(args.lr)]
    speaker = train_run(args.out / f"seed{first}" / "speaker",
                        [*stage1, "--only", "speaker", "--speaker-iters", str(args.speaker_iters),
                         "--eval-every", str(args.speaker_iters)])
    base = train_run(args.out / f"seed{first}" / "follower", [*stage1, "--only", "follower", "--iters", str(args.iters),
                                                            "--eval-every", str(args.eval_every)])
    start = ["--follower-checkpoint", str(base / "follower_best.pt"), "--eval-every", str(args.eval_every)]
    runs = {}
    for arm in args.arms:
        if arm == "plain":
            runs[arm] = train_run(out / "plain", [*common, "--only", "follower", *start, "--iters", str(args.more),
                                                  "--lr", str(args.bt_lr)])
        else:
            runs[arm] = train_run(out / arm, [*common, "--backtranslate", *start, "--bt-iters", str(args.more),
                                              "--speaker-checkpoint", str(speaker / "speaker_best.pt"),
                                              "--bt-lr", str(args.bt_lr), "--aug-source", ARMS[arm]])
    table = {"stage 1 (best)": val_unseen(base, "best")}
    table.update({f"{arm}, last": val_unseen(run, "last") for arm, run in runs.items()})
    table.update({f"{arm}, best": val_unseen(run, "best") for arm, run in runs.items()})
    return table


def seed_table(title: str, table: dict[int, dict[str, dict]], key: str, cell) -> list[str]:
    """Markdown lines: ``title``, then one row per follower of ``table`` (seed -> row -> scores), a ``cell(scores)``
    per seed and the mean ± sd of ``key`` (in %) over the seeds."""
    lines = [title, "", "| follower | " + " | ".join(f"seed {s}" for s in table) + " | mean ± sd |",
             "| --- |" + " --- |" * (len(table) + 1)]
    for row in next(iter(table.values())):
        values = np.array([100 * table[s][row][key] for s in table])
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        lines.append(f"| {row} | " + " | ".join(cell(table[s][row]) for s in table)
                     + f" | {values.mean():.1f} ± {spread:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--out", type=Path, default=Path("runs/backtranslation"), help="output folder")
    parser.add_argument("--speaker-iters", type=int, default=150, help="speaker iterations")
    parser.add_argument("--iters", type=int, default=400, help="follower stage-1 iterations")
    parser.add_argument("--more", type=int, default=200, help="updates of each arm after stage 1")
    parser.add_argument("--eval-every", type=int, default=100, help="iterations between evaluations")
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="learning rate of the speaker and of stage 1 (the built-in world's default)")
    parser.add_argument("--bt-lr", type=float, default=1e-4, help="learning rate of both arms (EnvDrop's)")
    parser.add_argument("--batch-size", type=int, default=64, help="episodes per rollout")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=["backtranslation", "plain"],
                        help="the arms: back-translation as EnvDrop (sampled paths, speaker), plain training, and two "
                             "controls: the augmented pass on training paths with the speaker's instructions "
                             "(bt-train-speaker) or with their human ones (bt-train-human)")
    parser.add_argument("--shared-stage1", action="store_true",
                        help="train the speaker and the stage-1 follower once (first seed) and vary only the arms' "
                             "seed: the spread of the comparison itself, at a third of the cost")
    args = parser.parse_args(argv)
    data = default_world_dir()
    table = {seed: one_seed(seed, data, args) for seed in args.seeds}
    write_json(args.out / "table.json", {str(k): v for k, v in table.items()}, indent=2)
    title = (f"R2R val_unseen on the built-in world: SR / SPL in % (speaker {args.speaker_iters}, follower "
             f"{args.iters}, then {args.more} updates per arm at lr {args.bt_lr:g}, batch {args.batch_size}"
             f"{f'; stage 1 of seed {args.seeds[0]} shared by every seed' if args.shared_stage1 else ''})")
    lines = seed_table(title, table, "success", lambda r: f"{100 * r['success']:.1f} / {100 * r['spl']:.1f}")
    lines += [""] + seed_table("val_seen SR in % (the training houses)", table, "seen_success",
                               lambda r: f"{100 * r['seen_success']:.1f}")
    deltas = {arm: np.array([100 * (table[s][f"{arm}, last"]["success"] - table[s]["plain, last"]["success"])
                             for s in table]) for arm in args.arms if arm != "plain" and "plain" in args.arms}
    bleu = [json.loads((args.out / f"seed{stage1_seed(s, args)}" / "speaker" / "scores.json").read_text())
            ["best"]["speaker"]["key"] for s in table]
    lines += [""] + [f"{arm} minus plain (last evaluation), SR points: "
                     f"{', '.join(f'{d:+.1f}' for d in delta)} (mean {delta.mean():+.1f})"
                     for arm, delta in deltas.items()]
    lines += [f"speaker val_unseen BLEU (the instructions back-translation trains on): "
              f"{', '.join(f'{b:.3f}' for b in bleu)}"]
    first = args.out / f"seed{args.seeds[0]}"
    followed = executability(first / "follower" / "follower_best.pt", first / "speaker" / "speaker_best.pt", data)
    lines += ["", f"the stage-1 follower (seed {args.seeds[0]}) on the validation paths, SR in %", "",
              "| instructions | val_seen | val_unseen |", "| --- | --- | --- |"]
    lines += [f"| {row} | {100 * v['val_seen']:.1f} | {100 * v['val_unseen']:.1f} |" for row, v in followed.items()]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
