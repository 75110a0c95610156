"""R2R-EnvDrop's own code timed on this machine: the references of ``bench_train.py`` (its ``ENVDROP`` table).

A ratio against a time measured on another machine says nothing, so on a new kind of CPU time EnvDrop here and
add the figures to ``bench_train.ENVDROP``. EnvDrop's code is not part of this toolkit: point ``--envdrop`` at a
checkout of https://github.com/airsplay/R2R-EnvDrop (its ``r2r_src/``)::

    python benchmarks/envdrop_reference.py --envdrop ~/R2R-EnvDrop --what follower|speaker|bt [--warmup 5]
        [--iters 20 (bt: 10)] [--threads 2] [--prewarm-candidates] [--json FILE]

Each kind in its own process, never two at once, on a quiet machine. ``r2r_src`` is copied into a scratch folder
and patched there, only where a CPU and today's torch need it (``PATCHES``): ``mask.byte()`` -> ``bool()`` for
``masked_fill``, and back-translation's ``assert len(noise) == batch_size`` and ``noise = noise[perm_idx]``
removed (the noise is one 640-channel mask for the whole batch, so the assert can never hold, and the indexing
would keep 64 of its channels). At run time ``.cuda()`` is a no-op and ``.cpu()`` copies, as it does from a GPU
(EnvDrop writes into the numpy views of ``.cpu()`` results, which on a CPU are the tensors autograd saved). This
toolkit's simulator stands in for MatterSim behind its old one-episode API (64 batch-1 simulators, as EnvDrop
uses it), and the time spent inside it is reported apart: MatterSim's C++ takes less, so ``bench_train.py``
compares with the time without it. The features are random (640-d, every viewpoint); the data are the real R2R
train split, graphs and EnvDrop's vocabulary from ``--data-dir`` (default ``$CLIPVIL_SHARED_DATA``).

Per iteration, as EnvDrop's train.py and run scripts (run/agent.bash, speaker.bash, bt_envdrop.bash) do it, batch
64, untrained models:

- follower: ``listner.train(1, feedback='sample')``: a teacher-forced IL rollout and a sampled A2C rollout;
- speaker: ``speaker.train(1)``;
- bt: one body of train.py's augmentation loop with ``--accumulateGrad``: a real pass, then a pass on the
  augmentation env with the speaker's instructions, one optimiser step. The augmentation paths are not public
  with the code, so a second train-split env stands in (the same houses and path lengths).

Prints each iteration's wall time and the time inside the simulator, then their means over the timed iterations
and the peak RSS.
"""

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")  # as train.py does

MAIN = str(Path(__file__).resolve().parents[1])  # this toolkit, for its simulator
sys.path.insert(0, MAIN)

from envs.atomic import write_json  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402
from envs.kernel.navgraph import read_scans_txt  # noqa: E402

# EnvDrop's run scripts' flags (without their checkpoint and augmentation paths); --feature_size is param.py's own
FLAGS = {
    "follower": "--attn soft --train listener --featdropout 0.3 --angleFeatSize 128 --feedback sample --mlWeight 0.2 "
                "--subout max --dropout 0.5 --optim rms --lr 1e-4 --iters 1000000 --maxAction 35",
    "speaker": "--attn soft --angleFeatSize 128 --train speaker "
               "--subout max --dropout 0.6 --optim adam --lr 1e-4 --iters 1000000 --maxAction 35",
    "bt": "--attn soft --train auglistener --selfTrain --angleFeatSize 128 --accumulateGrad --featdropout 0.4 "
          "--subout max --optim rms --lr 1e-4 --iters 200000 --maxAction 35",
}
FEATURE_SIZE = 640
VIEWS = 36

# (file, EnvDrop's text, what runs instead): each must match once, or the checkout is another version
PATCHES = [
    ("agent.py", "mask.byte().cuda()", "mask.bool().cuda()"),
    ("agent.py", "            assert len(noise) == batch_size\n            noise = noise[perm_idx]\n",
     "            pass  # patched: one noise mask for the whole batch\n"),
]


def prepare(envdrop: Path, data: Path, work: Path) -> None:
    """``work``: a patched copy of ``envdrop/r2r_src`` and the data where EnvDrop looks for it (cwd-relative)."""
    source = envdrop / "r2r_src"
    if not (source / "agent.py").is_file():
        raise SystemExit(f"--envdrop {envdrop}: no r2r_src/agent.py there; pass a checkout of airsplay/R2R-EnvDrop")
    shutil.copytree(source, work / "r2r_src", ignore=shutil.ignore_patterns("__pycache__"))
    for name, old, new in PATCHES:
        path = work / "r2r_src" / name
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{source / name}: expected {old!r} once, found it {text.count(old)} times: this is not "
                             "the EnvDrop version these patches were written for")
        path.write_text(text.replace(old, new))
    r2r = work / "tasks" / "R2R" / "data"
    r2r.mkdir(parents=True)
    for split in ("train", "val_seen", "val_unseen"):
        (r2r / f"R2R_{split}.json").symlink_to(data / "R2R" / f"R2R_{split}.json")
    (r2r / "train_vocab.txt").symlink_to(data / "R2R_EnvDrop_vocab" / "train_vocab.txt")
    (work / "connectivity").symlink_to(data / "connectivity")


SIM_SECONDS = [0.0]  # wall time spent inside the MatterSim stand-in's methods


def install_mattersim():
    """A module named MatterSim whose Simulator is ours, behind MatterSim v0.1's scalar API (the one EnvDrop calls:
    one batch-1 simulator per episode, init(), newEpisode(scan, vp, heading, elevation), makeAction(i, h, e),
    getState() -> one state), timing every call."""
    from envs.kernel.simulator import Simulator as Ours

    depth = [0]  # count only the outermost call (newEpisode may call initialize)

    def timed(fn):
        def wrapper(*a, **k):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    SIM_SECONDS[0] += time.perf_counter() - t0
        wrapper.__name__ = fn.__name__
        return wrapper

    class Simulator(Ours):
        @timed
        def init(self):
            return Ours.initialize(self)

        initialize = init

        @timed
        def newEpisode(self, scanId, viewpointId, heading, elevation):  # noqa: N802, N803
            return Ours.newEpisode(self, [str(scanId)], [str(viewpointId)], [float(heading)], [float(elevation)])

        @timed
        def makeAction(self, index, heading, elevation):  # noqa: N802
            return Ours.makeAction(self, [int(index)], [float(heading)], [float(elevation)])

        @timed
        def getState(self):  # noqa: N802
            return Ours.getState(self)[0]

    for name in ("setRenderingEnabled", "setDiscretizedViewingAngles", "setCameraResolution", "setCameraVFOV",
                 "setNavGraphPath", "setElevationLimits", "setBatchSize"):
        setattr(Simulator, name, timed(getattr(Ours, name)))

    mod = types.ModuleType("MatterSim")
    mod.Simulator = Simulator
    sys.modules["MatterSim"] = mod


def cuda_noop():
    """.cuda() is a no-op: EnvDrop moves every tensor and module to the GPU. And .cpu() copies, as it does from a
    GPU: EnvDrop writes into the numpy views of `.cpu()` results (agent.rollout: cpu_a_t[i] = -1 on the sampled or
    teacher actions that autograd saved for backward; speaker.infer_batch: cpu_word[ended] = <PAD>); on a CPU
    `.cpu()` returns the tensor itself, so those writes would corrupt the graph (backward fails: index -1)."""
    import torch
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cpu = lambda self, *a, **k: self.clone()


def random_features(feature_store=None):
    """Stands in for utils.read_img_features: {"scan_viewpoint": float32 [36, 640]} for every viewpoint of every scan
    in connectivity/ (standard normal, rounded through float16), and args.views = 36 as the TSV reader sets it."""
    import numpy as np
    from param import args
    print("Random image features instead of %s" % feature_store, flush=True)
    start = time.time()
    args.views = VIEWS
    conn = "connectivity"  # in the scratch folder, the cwd
    keys = []
    for scan in read_scans_txt(conn):
        with open(os.path.join(conn, "%s_connectivity.json" % scan)) as f:
            keys += ["%s_%s" % (scan, item["image_id"]) for item in json.load(f)]
    rng = np.random.default_rng(0)
    bank = np.empty((len(keys), VIEWS, FEATURE_SIZE), np.float32)  # one block, as big as the TSV reader's arrays
    for lo in range(0, len(keys), 1024):
        block = bank[lo:lo + 1024]
        block[...] = rng.standard_normal(block.shape, dtype=np.float32).astype(np.float16).astype(np.float32)
    features = {key: bank[i] for i, key in enumerate(keys)}
    print("%d viewpoints x [%d, %d] in %.1f s" % (len(keys), VIEWS, FEATURE_SIZE, time.time() - start), flush=True)
    return features


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envdrop", type=Path, required=True, help="a checkout of airsplay/R2R-EnvDrop")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="R2R/, R2R_EnvDrop_vocab/ and connectivity/ (default: $CLIPVIL_SHARED_DATA)")
    p.add_argument("--what", choices=["follower", "speaker", "bt"], required=True)
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 20; bt 10)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--bt-mode", choices=["accumulate", "train"], default="accumulate",
                   help="accumulate: run/bt_envdrop.bash's --accumulateGrad branch of train.py (default); "
                        "train: the other branch (two listner.train(1) calls)")
    p.add_argument("--bt-ml-weights", default="0.1,0.4",
                   help="args.ml_weight for the GT and the back-translation halves (train.py hard-codes 0.1,0.4)")
    p.add_argument("--val-envs", action="store_true",
                   help="also build the validation envs train.py holds (memory only; never run)")
    p.add_argument("--prewarm-candidates", action="store_true",
                   help="before timing, fill each env's make_candidate cache (buffered_state_dict) for every viewpoint "
                        "of its scans, as a long training run has it (steady state); off by default")
    p.add_argument("--json", type=Path, default=None, help="write the summary here")
    opts = p.parse_args()
    opts.json = opts.json and opts.json.resolve()  # EnvDrop runs in a scratch folder, removed at the end
    iters = opts.iters if opts.iters is not None else (10 if opts.what == "bt" else 20)

    work = Path(tempfile.mkdtemp(prefix="envdrop-"))
    atexit.register(shutil.rmtree, work, True)
    prepare(opts.envdrop.resolve(), (opts.data_dir or shared_data_dir()).resolve(), work)
    os.chdir(work)  # EnvDrop reads tasks/R2R/data/..., connectivity/ and writes snap/<name>/ relative to the cwd
    sys.path.insert(0, str(work / "r2r_src"))
    import torch
    torch.set_num_threads(opts.threads)
    cuda_noop()
    install_mattersim()

    sys.argv = ["r2r_src/train.py"] + FLAGS[opts.what].split() + [
        "--feature_size", str(FEATURE_SIZE), "--name", "bench_%s" % opts.what]
    import param  # parses sys.argv, as when train.py runs
    args = param.args
    # names the code reads that this param.py lacks (EnvDrop's later param.py has them with these defaults)
    args.elmo = False          # model.EncoderLSTM
    args.aug_feedback = "sample"  # train.py's aug loop (--augFeedback, default sample)

    import utils
    utils.read_img_features = random_features
    from utils import read_vocab, Tokenizer
    from env import R2RBatch
    from agent import Seq2SeqAgent
    from speaker import Speaker

    t_setup = time.time()
    # train.py setup()
    torch.manual_seed(1)
    torch.cuda.manual_seed(1)
    vocab = read_vocab("tasks/R2R/data/train_vocab.txt")
    tok = Tokenizer(vocab=vocab, encoding_length=args.maxInput)
    feat_dict = utils.read_img_features("img_features/ResNet-152-imagenet.tsv")
    train_env = R2RBatch(feat_dict, batch_size=args.batchSize, splits=["train"], tokenizer=tok)
    aug_env = None
    if opts.what == "bt":  # stands for R2RBatch(..., splits=[args.aug], name='aug'): same houses and path lengths
        aug_env = R2RBatch(feat_dict, batch_size=args.batchSize, splits=["train"], tokenizer=tok, name="aug", seed=1)
    val_envs = []
    if opts.val_envs:
        names = ["train", "val_seen", "val_unseen"] if opts.what == "bt" else ["val_unseen", "val_seen", "train"]
        val_envs = [R2RBatch(feat_dict, batch_size=args.batchSize, splits=[s], tokenizer=tok) for s in names]

    listner = Seq2SeqAgent(train_env, "", tok, args.maxAction)
    speaker = None
    if opts.what in ("speaker", "bt"):
        speaker = Speaker(train_env, listner, tok)

    if opts.what == "follower":
        def step():
            listner.env = train_env
            listner.train(1, feedback=args.feedback)
    elif opts.what == "speaker":
        def step():
            speaker.env = train_env
            speaker.train(1)
    else:
        w_gt, w_bt = (float(x) for x in opts.bt_ml_weights.split(","))
        if opts.bt_mode == "accumulate":
            def step():
                listner.zero_grad()
                listner.env = train_env
                args.ml_weight = w_gt
                listner.accumulate_gradient(args.feedback)
                listner.env = aug_env
                args.ml_weight = w_bt
                listner.accumulate_gradient(args.aug_feedback, speaker=speaker)
                listner.optim_step()
        else:
            def step():
                listner.env = train_env
                args.ml_weight = w_gt
                listner.train(1, feedback=args.feedback)
                listner.env = aug_env
                args.ml_weight = w_bt
                listner.train(1, feedback=args.aug_feedback, speaker=speaker)

    if opts.prewarm_candidates:
        t0 = time.time()
        for env in [e for e in (train_env, aug_env) if e is not None]:
            for scan in sorted(env.scans):
                for vp in env.graphs[scan].nodes:
                    env.make_candidate(feat_dict["%s_%s" % (scan, vp)], scan, vp, 0)
        print("make_candidate cache filled: %s viewpoints in %.1f s"
              % ([len(e.buffered_state_dict) for e in (train_env, aug_env) if e is not None], time.time() - t0),
              flush=True)

    setup_s = time.time() - t_setup
    print("EnvDrop %s: batch %d, %d-d features, %d threads, %d warm-up + %d timed iterations, set-up %.1f s%s"
          % (opts.what, args.batchSize, FEATURE_SIZE, torch.get_num_threads(), opts.warmup, iters, setup_s,
             (", bt mode %s, ml weights %s" % (opts.bt_mode, opts.bt_ml_weights)) if opts.what == "bt" else ""),
          flush=True)

    walls, sims, cpus = [], [], []
    for i in range(opts.warmup + iters):
        sim0 = SIM_SECONDS[0]
        c0 = time.process_time()
        t0 = time.perf_counter()
        step()
        wall = (time.perf_counter() - t0) * 1000
        cpu = (time.process_time() - c0) * 1000
        sim = (SIM_SECONDS[0] - sim0) * 1000
        timed_it = i >= opts.warmup
        if timed_it:
            walls.append(wall)
            sims.append(sim)
            cpus.append(cpu)
        print("iter %3d %s wall %9.1f ms  simulator %8.1f ms  without %9.1f ms  (process CPU %9.1f ms)"
              % (i + 1, "timed " if timed_it else "warmup", wall, sim, wall - sim, cpu), flush=True)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mean, mean_sim, mean_cpu = (statistics.fmean(v) if v else float("nan") for v in (walls, sims, cpus))
    summary = {"what": opts.what, "warmup": opts.warmup, "iters": iters, "threads": opts.threads,
               "mean_ms": mean, "mean_sim_ms": mean_sim, "mean_without_sim_ms": mean - mean_sim,
               "peak_rss_mb": peak, "setup_s": setup_s, "per_iter_ms": walls, "per_iter_sim_ms": sims,
               "mean_process_cpu_ms": mean_cpu, "per_iter_process_cpu_ms": cpus,
               "val_envs": opts.val_envs, "prewarm_candidates": opts.prewarm_candidates}
    if opts.what == "bt":
        summary.update(bt_mode=opts.bt_mode, bt_ml_weights=opts.bt_ml_weights)
    print("RESULT %s: mean %.1f ms/iter over %d timed iterations; inside the simulator %.1f ms; without it %.1f ms; "
          "peak RSS %.0f MB (process CPU %.1f ms/iter)" % (opts.what, mean, len(walls), mean_sim, mean - mean_sim,
                                                            peak, mean_cpu), flush=True)
    if opts.json:
        write_json(opts.json, summary, indent=1)
    del val_envs


if __name__ == "__main__":
    main()
