"""A corpus of broken files of every kind a user meets, each fed to the command a user would run.

Each case copies the tiny built-in world (a valid data directory in the real formats), breaks one file, runs
the command in-process and checks what a user sees: a non-zero exit, no traceback, one ``error:`` line naming
the broken file and the problem. Valid controls run the same commands on the unbroken files and must pass.
The files are generated here; nothing broken is committed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import envs  # noqa: F401  (registers the envs)
from agents import train
from agents.baselines import main as baselines_main
from envs.checkpoint import load_checkpoint, save_checkpoint
from agents.evaluate import main as evaluate_main
from envs.datadir import DataError
from envs.kernel.navgraph import load_graph
from eval.__main__ import main as eval_main
from eval.replay.__main__ import main as replay_main
from features.convert import main as convert_main
from features.extract import main as extract_main
from features.tsv import write_tsv
from tasks.captioning.__main__ import main as caption_main
from tasks.splits import load_split
from tasks.tokenize import Vocab
from tasks.vl.snli_ve import load_snli_ve
from tasks.vqa.__main__ import main as vqa_main

TINY = ["--batch-size", "4", "--eval-every", "2", "--quiet", "--seed", "3", "--threads", "1"]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base(tiny_world, tmp_path_factory):
    """What the cases break: the val_seen split's first episode (its scan, path), gold results of val_seen, a
    small valid TSV, and a trained run folder (checkpoint.pt, follower_best.pt) with a speaker checkpoint."""
    root = tmp_path_factory.mktemp("corpus")
    episodes = load_split(tiny_world, "r2r", "val_seen")
    first = episodes[0]
    gold = root / "gold.json"
    gold.write_text(json.dumps([{"instr_id": e.instr_id, "trajectory": [[vp, 0.0, 0.0] for vp in e.path]}
                                for e in episodes]))
    rxr = load_split(tiny_world, "rxr", "val_seen")
    rxr_gold = root / "rxr_gold.json"
    rxr_gold.write_text(json.dumps([{"instr_id": e.instr_id, "trajectory": [[vp, 0.0, 0.0] for vp in e.path]}
                                    for e in rxr]))
    rng = np.random.default_rng(0)
    rows = [("scanA", f"vp{i}", rng.normal(size=(36, 8)).astype(np.float32)) for i in range(3)]
    tsv = root / "valid.tsv"
    write_tsv(tsv, rows)
    run = root / "run"
    assert train.main(["r2r", "--data-dir", str(tiny_world), "--out", str(run), "--only", "follower", "--iters", "2",
                       *TINY]) == 0
    speaker = load_checkpoint(run / "follower_best.pt")
    from agents.speaker import Speaker, SpeakerConfig

    cfg = SpeakerConfig(vocab_size=speaker["config"]["vocab_size"], feature_dim=speaker["config"]["feature_dim"])
    save_checkpoint(root / "speaker_best.pt", {"model": Speaker(cfg).state_dict(), "config": cfg.__dict__,
                                               "vocab": speaker["vocab"]}, "speaker")
    graph = load_graph(tiny_world / "connectivity", first.scan)
    excluded = [vp for vp, inc in zip(graph.ids, graph.included) if not inc]
    return {"world": tiny_world, "first": first, "gold": gold, "rxr_gold": rxr_gold, "rxr_first": rxr[0],
            "tsv": tsv, "run": run, "speaker": root / "speaker_best.pt", "excluded": excluded,
            "graph": graph}


def clone(world: Path, root: Path, real: tuple[str, ...] = ()) -> Path:
    """A data directory at ``root``: connectivity/, R2R/, RxR/ and world.json copied (small, to be broken),
    features/ and skyboxes/ linked, except the relative paths in ``real``, which are copied too."""
    root.mkdir(parents=True)
    for part in world.iterdir():
        if part.name in ("connectivity", "R2R", "RxR", "world.json"):
            (shutil.copytree if part.is_dir() else shutil.copy)(part, root / part.name)
        else:
            (root / part.name).symlink_to(part)
    for rel in real:
        link = root / Path(rel).parts[0]
        if link.is_symlink():
            target = link.resolve()
            link.unlink()
            shutil.copytree(target, link)
    return root


class Replace:
    """A change that replaces a file's whole content (other changes edit the parsed content in place)."""

    def __init__(self, content: Callable) -> None:
        self.content = content


def edit_json(path: Path, change: Callable, *extra) -> None:
    data = json.loads(path.read_text())
    if isinstance(change, Replace):
        data = change.content(data, *extra)
    else:
        change(data, *extra)
    path.write_text(json.dumps(data))


def edit_guide(path: Path, change: Callable, *extra) -> None:
    """Edit an RxR guide file's records in place; a str record is written as a raw line."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    change(records, *extra)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


# ------------------------------------------------------------------------------------------------ the cases
@dataclass
class Case:
    kind: str
    name: str
    breaker: Callable  # (data_dir, base, tmp_path) -> the broken file's path
    command: str  # "eval", "eval-rxr", "baselines", "train", "replay", "convert", "extract", "evaluate", "env", ...
    expect: str  # the problem, as the message states it
    real: tuple[str, ...] = ()


def _conn(data, base):
    return data / "connectivity" / f"{base['first'].scan}_connectivity.json"


def _split(data, base):
    return data / "R2R" / "R2R_val_seen.json"


def _guide(data, base):
    return data / "RxR" / "rxr_val_seen_guide.jsonl.gz"


def _json_breaker(file_of: Callable, change, with_base: bool) -> Callable:
    """Break the JSON file ``file_of(data, base)``: ``change`` is its new text, a :class:`Replace`, or an edit of
    its parsed content in place (given ``base`` too when ``with_base``)."""
    def breaker(data, base, tmp):
        path = file_of(data, base)
        if isinstance(change, str):
            path.write_text(change)
        else:
            edit_json(path, change, *([base] if with_base else []))
        return path
    return breaker


def conn_case(name, change, expect, command="eval"):
    return Case("connectivity", name, _json_breaker(_conn, change, False), command, expect)


def scans_case(name, text, expect, command="baselines"):
    def breaker(data, base, tmp):
        path = data / "connectivity" / "scans.txt"
        if text is None:
            path.unlink()
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text(base) if callable(text) else text)
        return path
    return Case("scans list", name, breaker, command, expect)


def split_case(name, change, expect, command="eval"):
    return Case("R2R split", name, _json_breaker(_split, change, True), command, expect)


def guide_case(name, change, expect):
    def breaker(data, base, tmp):
        path = _guide(data, base)
        if isinstance(change, bytes):
            path.write_bytes(change)
        elif change.__code__.co_argcount == 1:  # works on the file itself
            change(path)
        else:
            edit_guide(path, change, base)
        return path
    return Case("RxR split", name, breaker, "eval-rxr", expect)


def results_case(name, change, expect, command="eval"):
    def breaker(data, base, tmp):
        path = tmp / "results.json"
        if isinstance(change, str):
            path.write_text(change)
        else:
            shutil.copy(base["gold"], path)
            edit_json(path, change, base)
        return path
    return Case("results file", name, breaker, command, expect)


def tsv_case(name, change, expect):
    def breaker(data, base, tmp):
        path = tmp / "features.tsv"
        lines = base["tsv"].read_bytes().splitlines(keepends=True)
        path.write_bytes(change(lines) if callable(change) else change)
        return path
    return Case("feature TSV", name, breaker, "convert", expect)


def _feature_row(lines: list[bytes], row: int, values: np.ndarray) -> list[bytes]:
    import base64

    fields = lines[row].rstrip(b"\n").split(b"\t")
    fields[5] = base64.b64encode(values.astype("<f4").tobytes())
    lines[row] = b"\t".join(fields) + b"\n"
    return lines


def _poisoned(value: float) -> Callable[[list[bytes]], bytes]:
    def change(lines):
        values = np.ones((36, 8), dtype=np.float32)
        values[4, 5] = value
        return b"".join(_feature_row(lines, 1, values))
    return change


def h5_case(name, change, expect, command="train"):
    def breaker(data, base, tmp):
        path = data / "features" / "world.h5"
        change(path, base)
        return path
    return Case("feature HDF5", name, breaker, command, expect, real=("features",))


def _h5_dataset(mutate):
    def change(path, base):
        key = f"{base['first'].scan}_{base['first'].path[0]}"
        with h5py.File(path, "r+") as f:
            mutate(f, key)
    return change


def _nan_dataset(f, key):
    values = f[key][()]
    values[2, 3] = np.nan
    f[key][...] = values


def _replace_dataset(values_of):
    def mutate(f, key):
        old = f[key][()]
        del f[key]
        f.create_dataset(key, data=values_of(old))
    return mutate


def _truncate(fraction: float):
    def change(path, base):
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return change


def sky_case(name, change, expect, command="replay"):
    def breaker(data, base, tmp):
        folder = data / "skyboxes" / base["first"].scan / "matterport_skybox_images"
        vp = base["first"].path[0]
        return change(folder, vp)
    return Case("skybox", name, breaker, command, expect, real=("skyboxes",))


def _face(k: int, write: Callable[[Path], None]):
    def change(folder, vp):
        path = folder / f"{vp}_skybox{k}_sami.jpg"
        write(path)
        return path
    return change


def vocab_case(name, text, expect):
    def breaker(data, base, tmp):
        path = tmp / "vocab.txt"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path
    return Case("vocabulary", name, breaker, "vocab", expect)


def ckpt_case(name, make, expect, command):
    def breaker(data, base, tmp):
        return make(base, tmp)
    return Case("checkpoint", name, breaker, command, expect)


def _truncated_checkpoint(base, tmp):
    path = tmp / "run" / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


class Intruder:  # a class torch's weights-only loader refuses
    pass


def _object_pickle(base, tmp):
    path = tmp / "run" / "checkpoint.pt"
    torch.save({"follower": Intruder(), "stage_index": 0}, path)
    return path


def _wrong_kind_resume(base, tmp):
    path = tmp / "run" / "checkpoint.pt"
    shutil.copy(tmp / "run" / "follower_best.pt", path)
    return path


def _text_file(base, tmp):
    path = tmp / "notes.pt"
    path.write_text("these are my notes, not weights\n")
    return path


def _empty_file(base, tmp):
    path = tmp / "empty.pt"
    path.write_bytes(b"")
    return path


def _bare_state_dict(base, tmp):
    path = tmp / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2, 3), "fc.bias": torch.zeros(2)}, path)
    return path


def _plain_pickle(base, tmp):
    path = tmp / "pickled.pt"
    path.write_bytes(pickle.dumps({"model": [1, 2, 3]}, protocol=4))
    return path


def _broken_vocab_checkpoint(base, tmp):
    state = load_checkpoint(base["run"] / "follower_best.pt")
    state["vocab"] = ["the", "<PAD>", "walk"]
    path = tmp / "broken_vocab.pt"
    state.pop("format"), state.pop("kind"), state.pop("rng")
    save_checkpoint(path, state, "follower")
    return path


def _other_model_checkpoint(base, tmp):
    """A follower of another vocabulary and feature size (another task's or data's model)."""
    state = load_checkpoint(base["run"] / "follower_best.pt")
    state["config"] = dict(state["config"], feature_dim=512)
    path = tmp / "other.pt"
    state.pop("format"), state.pop("kind"), state.pop("rng")
    save_checkpoint(path, state, "follower")
    return path


CASES = [
    # connectivity files (through the scorer, the env and the baselines)
    conn_case("empty list", Replace(lambda records: []), "holds no viewpoints"),
    conn_case("not JSON", '[{"image_id": "a", "pose": [1, 0', "not valid JSON"),
    conn_case("NaN in a pose", lambda r: r[1]["pose"].__setitem__(3, float("nan")), "field 'pose'[3] is nan"),
    conn_case("infinite pose", lambda r: r[2]["pose"].__setitem__(7, float("inf")), "field 'pose'[7] is inf"),
    conn_case("pose of 15 numbers", lambda r: r[0]["pose"].pop(), "'pose' has 15 values, expected 16"),
    conn_case("pose number as text", lambda r: r[0]["pose"].__setitem__(0, "1.0"), "field 'pose'[0] is '1.0'"),
    conn_case("duplicate image_id", lambda r: r[1].__setitem__("image_id", r[0]["image_id"]), "repeats record 0"),
    conn_case("short unobstructed", lambda r: r[0]["unobstructed"].pop(), "'unobstructed' has"),
    conn_case("included as text", lambda r: r[0].__setitem__("included", "yes"), "field 'included' is 'yes'"),
    conn_case("an object, not a list", Replace(lambda r: {"viewpoints": r}), "expected a list of viewpoint records"),
    conn_case("no included viewpoint", lambda r: [x.update(included=False) for x in r], "has no included viewpoint"),
    conn_case("infinite height", lambda r: r[0].__setitem__("height", float("inf")), "field 'height' is inf"),
    conn_case("record without pose", lambda r: r[1].pop("pose"), "lacks field(s) ['pose']"),
    conn_case("NaN pose through the env", lambda r: r[0]["pose"].__setitem__(11, float("nan")),
              "field 'pose'[11] is nan", command="env"),
    conn_case("empty list through the baselines", Replace(lambda records: []), "holds no viewpoints",
              command="baselines"),
    # scans.txt (MatterSim loads every scan it lists: through the baselines' simulator and the extraction)
    scans_case("empty", "\n\n", "lists no scans"),
    scans_case("a scan twice", lambda b: f"{b['first'].scan}\n{b['first'].scan}\n", "twice"),
    scans_case("a scan without its file", lambda b: f"{b['first'].scan}\nnoSuchScan\n",
               "lists scan noSuchScan, but noSuchScan_connectivity.json is not beside it"),
    scans_case("a path instead of an id", "connectivity/abc_connectivity.json\n", "not a scan id"),
    scans_case("missing", None, "scans.txt not found"),
    scans_case("not text", b"\xff\xfe\x00\x81scan\n", "is not UTF-8 text"),
    scans_case("empty, through the extraction", "", "lists no scans", command="extract"),
    # R2R split files (through the scorer, the baselines and the training command)
    split_case("empty list", Replace(lambda r, b: []), "holds no paths"),
    split_case("not a list", Replace(lambda r, b: {"paths": r}), "top level is not a list"),
    split_case("truncated", '[{"distance": 1.0, "scan": ', "not valid JSON"),
    split_case("path through an unknown viewpoint", lambda r, b: r[0]["path"].__setitem__(1, "nowhere"),
               "field 'path'[1] is viewpoint nowhere, which is not in scan"),
    split_case("path through an excluded viewpoint", lambda r, b: r[0]["path"].__setitem__(1, b["excluded"][0]),
               "which is excluded ('included': false)"),
    split_case("path jumping over an edge", lambda r, b: r[0].__setitem__("path", [r[0]["path"][0], r[0]["path"][-1]]),
               "which are not joined by an edge"),
    split_case("empty instruction list", lambda r, b: r[0].__setitem__("instructions", []),
               "field 'instructions' is an empty list"),
    split_case("empty instruction", lambda r, b: r[1]["instructions"].__setitem__(0, "   "),
               "field 'instructions'[0] is empty"),
    split_case("duplicate path_id", lambda r, b: r[1].__setitem__("path_id", r[0]["path_id"]), "the same as entry 0"),
    split_case("NaN heading", lambda r, b: r[0].__setitem__("heading", float("nan")), "field 'heading' is nan"),
    split_case("unknown scan", lambda r, b: r[0].__setitem__("scan", "noSuchScan"),
               "field 'scan' is noSuchScan, which has no connectivity file"),
    split_case("unknown viewpoint through the baselines", lambda r, b: r[0]["path"].__setitem__(0, "nowhere"),
               "which is not in scan", command="baselines"),
    split_case("duplicate path_id through training", lambda r, b: r[1].__setitem__("path_id", r[0]["path_id"]),
               "the same as entry 0", command="train"),
    # RxR guide files (through the scorer)
    guide_case("unknown language code", lambda r, b: r[0].__setitem__("language", "fr-FR"),
               "field 'language' is 'fr-FR', not an RxR language code"),
    guide_case("duplicate instruction_id", lambda r, b: r[1].__setitem__("instruction_id", r[0]["instruction_id"]),
               "the same as line 1"),
    guide_case("empty instruction", lambda r, b: r[0].__setitem__("instruction", ""), "field 'instruction' is empty"),
    guide_case("path through an unknown viewpoint", lambda r, b: r[0]["path"].__setitem__(1, "nowhere"),
               "which is not in scan"),
    guide_case("truncated gzip", lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
               "cannot be read (Compressed file ended"),
    guide_case("no lines", gzip.compress(b""), "holds no instructions"),
    guide_case("a line that is not JSON", lambda r, b: r.insert(1, "{not json"), "line 2 is not valid JSON"),
    # results files (through the scorer and the replay)
    results_case("bare viewpoint strings", lambda r, b: r[0].__setitem__("trajectory", b["first"].path),
                 "trajectory step 0 is"),
    results_case("NaN heading in a step", lambda r, b: r[0]["trajectory"][0].__setitem__(1, float("nan")),
                 "trajectory step 0 is"),
    results_case("instr_id as a float", lambda r, b: r[0].__setitem__("instr_id", 1.5), "field 'instr_id' is 1.5"),
    results_case("trajectory not a list", lambda r, b: r[0].__setitem__("trajectory", "A B C"),
                 "'trajectory' must be a non-empty list"),
    results_case("not JSON", "[{\"instr_id\": ", "not valid JSON"),
    results_case("repeated entry", lambda r, b: r.append(r[0]), "repeats entry 0"),
    results_case("step at a viewpoint of another scan", lambda r, b: r[0]["trajectory"].append(["nowhere", 0.0, 0.0]),
                 "which is not in scan"),
    results_case("bare strings through the replay", lambda r, b: r[0].__setitem__("trajectory", b["first"].path),
                 "trajectory step 0 is", command="replay"),
    # feature TSV files (through the converter)
    tsv_case("NaN value", _poisoned(float("nan")), "holds nan at view 4, channel 5"),
    tsv_case("infinite value", _poisoned(float("inf")), "holds inf at view 4, channel 5"),
    tsv_case("absurd value", _poisoned(3e30), "must be finite and within +-10000"),
    tsv_case("duplicate row", lambda lines: b"".join(lines + lines[:1]), "repeats line 1"),
    tsv_case("mixed feature sizes", lambda lines: b"".join(_feature_row(lines, 2, np.ones((36, 4)))),
             "holds [36, 4] features but earlier rows hold [36, 8]"),
    tsv_case("image width as text", lambda lines: b"".join([lines[0].replace(b"\t640\t", b"\tabc\t")] + lines[1:]),
             "column 'image_w' is 'abc'"),
    tsv_case("empty", b"", "holds no feature rows"),
    tsv_case("corrupt base64", lambda lines: b"".join(lines[:1] + [lines[1][:-20] + b"!!!!" + lines[1][-16:]]),
             "corrupt base64"),
    # feature HDF5 files (through the training command, the env and the evaluation)
    h5_case("truncated", _truncate(0.5), "not a readable HDF5 file"),
    h5_case("NaN value", _h5_dataset(_nan_dataset), "holds nan at view 2, channel 3"),
    h5_case("wrong shape", _h5_dataset(_replace_dataset(lambda old: old[:10])), "expected float (36, 640)"),
    h5_case("integer dataset", _h5_dataset(_replace_dataset(lambda old: old.astype(np.int32))), "of int32"),
    h5_case("a viewpoint missing", _h5_dataset(lambda f, key: f.__delitem__(key)), "no features for key"),
    h5_case("not HDF5 at all", lambda path, base: path.write_text("features go here\n"), "not a readable HDF5 file",
            command="env"),
    h5_case("NaN value through the evaluation", _h5_dataset(_nan_dataset), "holds nan at view 2, channel 3",
            command="evaluate"),
    # skyboxes (through the replay's renderer and the extraction)
    sky_case("truncated face", _face(2, lambda p: p.write_bytes(p.read_bytes()[:200])), "cannot be decoded"),
    sky_case("empty face", _face(0, lambda p: p.write_bytes(b"")), "cannot be decoded"),
    sky_case("face not square", _face(3, lambda p: Image.new("RGB", (32, 20)).save(p)), "not equal squares"),
    sky_case("a face missing", _face(4, lambda p: p.unlink()), "has 5 of its 6 skybox faces"),
    sky_case("a face missing, through the extraction", _face(1, lambda p: p.unlink()), "has 5 of its 6 skybox faces",
             command="extract"),
    # vocabularies (the file API, and a checkpoint's vocabulary through the evaluation)
    vocab_case("no special tokens", "the\nwalk\nto\n", "first lines are"),
    vocab_case("a word twice", "<PAD>\n<UNK>\n<EOS>\nwalk\nthe\nwalk\n", "line 6 repeats the word 'walk' of line 4"),
    vocab_case("an empty line", "<PAD>\n<UNK>\n<EOS>\nwalk\n\nthe\n", "line 5 is empty"),
    vocab_case("not UTF-8", b"<PAD>\n<UNK>\n<EOS>\n\xff\xfe\n", "is not UTF-8 text"),
    Case("vocabulary", "a broken vocabulary in a checkpoint", lambda d, b, t: _broken_vocab_checkpoint(b, t),
         "evaluate", "holds a broken vocabulary"),
    # checkpoints (through --resume, --follower-checkpoint, --speaker-checkpoint and agents.evaluate)
    ckpt_case("truncated training state", _truncated_checkpoint, "is cut short or corrupted", "resume"),
    ckpt_case("a pickle of Python objects", _object_pickle, "holds a Python object", "resume"),
    ckpt_case("a follower where the training state belongs", _wrong_kind_resume, "not the training state", "resume"),
    ckpt_case("a text file as the follower", _text_file, "is not a checkpoint", "follower-checkpoint"),
    ckpt_case("a speaker as the follower", lambda b, t: b["speaker"], "is a speaker", "follower-checkpoint"),
    ckpt_case("a follower as the speaker", lambda b, t: b["run"] / "follower_best.pt", "is a follower",
              "speaker-checkpoint"),
    ckpt_case("the training state to evaluate", lambda b, t: b["run"] / "checkpoint.pt", "is the training state",
              "evaluate"),
    ckpt_case("a bare state dict to evaluate", _bare_state_dict, "a bare state dict", "evaluate"),
    ckpt_case("an empty file to evaluate", _empty_file, "is empty or cut short", "evaluate"),
    ckpt_case("a plain pickle to evaluate", _plain_pickle, "is a pickle of Python objects", "evaluate"),
    ckpt_case("another model's follower", _other_model_checkpoint, "640-d features", "evaluate"),
    ckpt_case("another model's follower for back-translation", _other_model_checkpoint, "feature_dim 512 (here 640)",
              "follower-checkpoint"),
]


def test_the_corpus_covers_every_kind():
    kinds = {case.kind for case in CASES}
    assert kinds == {"connectivity", "scans list", "R2R split", "RxR split", "results file", "feature TSV",
                     "feature HDF5", "skybox", "vocabulary", "checkpoint"}
    assert len(CASES) >= 40
    assert len({(c.kind, c.name) for c in CASES}) == len(CASES)
    assert {case.kind for case in VL_CASES} == {"VQA file", "caption file", "SNLI-VE file", "V&L checkpoint"}
    assert len({(c.kind, c.name) for c in VL_CASES}) == len(VL_CASES)


def _command(case: Case, data: Path, broken: Path, base: dict, tmp: Path) -> list[str] | None:
    """The command line a user would run on ``broken`` (None for the API and env cases)."""
    first = base["first"]
    if case.command == "eval":
        results = broken if case.kind == "results file" else base["gold"]
        return ["eval", "r2r", "--results", str(results), "--split", "val_seen", "--data-dir", str(data)]
    if case.command == "eval-rxr":
        return ["eval", "rxr", "--results", str(base["rxr_gold"]), "--split", "val_seen", "--data-dir", str(data)]
    if case.command == "baselines":
        return ["baselines", "stop", "--split", "val_seen", "--data-dir", str(data), "--out", str(tmp / "out.json")]
    if case.command == "train":
        return ["train", "r2r", "--data-dir", str(data), "--out", str(tmp / "new_run"), "--only", "follower",
                "--iters", "2", *TINY]
    if case.command == "replay":
        results = broken if case.kind == "results file" else base["gold"]
        return ["replay", "--results", str(results), "--split", "val_seen", "--data-dir", str(data),
                "--instr-id", first.instr_id, "--out", str(tmp / "replay.html"), "--quiet"]
    if case.command == "convert":
        return ["convert", str(broken), str(tmp / "out.h5"), "--quiet"]
    if case.command == "extract":
        scans = ["--scans", first.scan] if case.kind == "skybox" else []
        return ["extract", "--encoder", "RN50", "--data-dir", str(data), "--out", str(tmp / "out.h5"), *scans,
                "--device", "cpu", "--quiet"]
    if case.command == "evaluate":
        checkpoint = broken if case.kind in ("checkpoint", "vocabulary") else base["run"] / "follower_best.pt"
        return ["evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(data), "--split", "val_seen",
                "--out", str(tmp / "results.json")]
    if case.command == "resume":
        return ["train", "r2r", "--data-dir", str(base["world"]), "--out", str(tmp / "run"), "--only", "follower",
                "--iters", "4", "--resume", *TINY]
    if case.command in ("follower-checkpoint", "speaker-checkpoint"):
        other = {"follower-checkpoint": ("--speaker-checkpoint", str(base["speaker"])),
                 "speaker-checkpoint": ("--follower-checkpoint", str(base["run"] / "follower_best.pt"))}[case.command]
        return ["train", "r2r", "--data-dir", str(base["world"]), "--out", str(tmp / "bt_run"), "--backtranslate",
                f"--{case.command}", str(broken), *other, "--bt-iters", "2", "--aug-paths-per-scan", "3", *TINY]
    return None


MAINS = {"eval": eval_main, "baselines": baselines_main, "train": train.main, "replay": replay_main,
         "convert": convert_main, "extract": extract_main, "evaluate": evaluate_main}


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _one_error_line(main, argv: list[str], capsys, resume_folder: Path | None = None) -> str:
    """Run a command on a broken input: exit 2, no traceback, exactly one ``error:`` line (returned), and a
    failed resume changes nothing in ``resume_folder``."""
    before = _snapshot(resume_folder) if resume_folder is not None else None
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-2000:]
    message = errors[0]
    assert "unexpected" not in message and "bug" not in message
    if before is not None:  # a failed resume changes nothing in the run folder
        assert _snapshot(resume_folder) == before
    return message


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_a_broken_file_is_one_clear_error(case, base, tmp_path, capsys):
    data = clone(base["world"], tmp_path / "data", case.real)
    if case.command == "resume":  # a run folder to resume in (the others read the base run's files)
        shutil.copytree(base["run"], tmp_path / "run")
    broken = case.breaker(data, base, tmp_path)
    argv = _command(case, data, broken, base, tmp_path)
    if argv is None:  # the env (gymnasium.make) and the vocabulary API raise the toolkit's error
        with pytest.raises(DataError) as caught:
            if case.command == "env":
                features = "world" if case.kind == "feature HDF5" else None
                gymnasium.make("VLN-R2R-v0", data_dir=str(data), split="val_seen", features=features)
            else:
                Vocab.load(broken)
        message = str(caught.value)
        assert "\n" not in message
    else:
        message = _one_error_line(MAINS[argv[0]], argv[1:], capsys,
                                  tmp_path / "run" if case.command == "resume" else None)
    assert broken.name in message, message
    assert case.expect in message, message
    assert "weights_only" not in message


# ------------------------------------------------------------------------------------------------ valid controls
def test_valid_files_still_pass(base, tmp_path, capsys):
    """The same commands on the unbroken copies succeed (so every failure above is the broken file's)."""
    data = clone(base["world"], tmp_path / "data", ("skyboxes",))
    first = base["first"]
    assert eval_main(["r2r", "--results", str(base["gold"]), "--split", "val_seen", "--data-dir", str(data)]) == 0
    assert eval_main(["rxr", "--results", str(base["rxr_gold"]), "--split", "val_seen", "--data-dir", str(data)]) == 0
    assert baselines_main(["stop", "--split", "val_seen", "--data-dir", str(data), "--out",
                           str(tmp_path / "stop.json")]) == 0
    assert replay_main(["--results", str(base["gold"]), "--split", "val_seen", "--data-dir", str(data), "--instr-id",
                        first.instr_id, "--out", str(tmp_path / "replay.html"), "--quiet"]) == 0
    assert convert_main([str(base["tsv"]), str(tmp_path / "valid.h5"), "--quiet"]) == 0
    assert evaluate_main(["--checkpoint", str(base["run"] / "follower_best.pt"), "--data-dir", str(data),
                          "--split", "val_seen", "--out", str(tmp_path / "results.json")]) == 0
    env = gymnasium.make("VLN-R2R-v0", data_dir=str(data), split="val_seen")
    env.reset(seed=0)
    env.close()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<PAD>\n<UNK>\n<EOS>\nwalk\n. .\n")  # EnvDrop's vocabulary holds the token ". ."
    assert Vocab.load(vocab).words[-1] == "<BOS>"
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    assert train.main(["r2r", "--data-dir", str(base["world"]), "--out", str(run), "--only", "follower",
                       "--iters", "4", "--resume", *TINY]) == 0
    assert load_checkpoint(run / "checkpoint.pt", kind="training-state")["iteration"] == 0  # the stage finished
    assert "error" not in capsys.readouterr().err


def test_real_vocabulary_and_graphs_pass(shared_data):
    words = Vocab.load(shared_data / "R2R_EnvDrop_vocab" / "train_vocab.txt").words
    assert len(words) == 991 + 1


def test_untagged_checkpoints_of_earlier_versions_still_load(base, tmp_path):
    """Checkpoints written before they carried their kind are recognised by their keys."""
    state = load_checkpoint(base["run"] / "follower_best.pt")
    for key in ("format", "kind"):
        state.pop(key)
    torch.save(state, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt", kind="follower")["config"] == state["config"]
    with pytest.raises(DataError, match="is a follower"):
        load_checkpoint(tmp_path / "old.pt", kind="speaker")


def test_debug_shows_the_traceback(base, tmp_path, monkeypatch):
    argv = ["r2r", "--results", str(tmp_path / "missing.json"), "--split", "val_seen", "--data-dir",
            str(base["world"])]
    assert eval_main(argv) == 2
    with pytest.raises(DataError, match="results file not found"):
        eval_main(argv + ["--debug"])
    monkeypatch.setenv("CLIPVIL_DEBUG", "1")
    with pytest.raises(DataError, match="results file not found"):
        eval_main(argv)


# ------------------------------------------------------------------------------------------------ V&L files
# The V&L commands on the small V&L world's files: VQA questions, annotations and label space through
# ``tasks.vqa eval`` / ``train``, caption files through ``tasks.captioning eval``, SNLI-VE through its loader (no
# command reads it yet), and checkpoints crossing between the navigation and the V&L commands.
VQA_TINY = ["--head", "pythia", "--hidden", "32", "--joint-dim", "32", "--batch-size", "16", "--iters", "2",
            "--eval-every", "2", "--quiet"]


@pytest.fixture(scope="module")
def vl_base(small_vl_world, base, tmp_path_factory):
    """Gold VQA and caption results of the val split (every answer and caption a reference), and a VQA run."""
    root = tmp_path_factory.mktemp("vl_corpus")
    vl = small_vl_world / "vl"
    annotations = json.loads((vl / "vqa" / "val_annotations.json").read_text())["annotations"]
    vqa_gold = root / "vqa_gold.json"
    vqa_gold.write_text(json.dumps([{"question_id": a["question_id"], "answer": a["answers"][0]["answer"]}
                                    for a in annotations]))
    images = json.loads((vl / "captions" / "dataset_world.json").read_text())["images"]
    caption_gold = root / "caption_gold.json"
    caption_gold.write_text(json.dumps([{"image_id": im["cocoid"], "caption": im["sentences"][0]["raw"]}
                                        for im in images if im["split"] == "val"]))
    run = root / "vqa_run"
    assert vqa_main(["train", "--data-dir", str(small_vl_world), "--out", str(run), *VQA_TINY]) == 0
    return {"world": small_vl_world, "vl": vl, "vqa_gold": vqa_gold, "caption_gold": caption_gold, "vqa_run": run,
            "nav_world": base["world"], "nav_run": base["run"]}


@dataclass
class VLCase:
    kind: str
    name: str
    breaker: Callable  # (vl_base, tmp_path) -> the broken file's path
    command: str
    expect: str


def _vl_json(rel: str, change) -> Callable:
    def breaker(vb, tmp):
        path = tmp / Path(rel).name
        shutil.copy(vb["vl"] / rel, path)
        edit_json(path, change)
        return path
    return breaker


def _vl_lines(change) -> Callable:
    def breaker(vb, tmp):
        path = tmp / "snli_ve_dev.jsonl"
        lines = [json.loads(line) for line in (vb["vl"] / "snli_ve" / "snli_ve_dev.jsonl").read_text().splitlines()]
        change(lines)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return path
    return breaker


def _run_folder(key: str) -> Callable:
    """A copy of a run folder of the other kind of task, to --resume in: its checkpoint.pt is the broken file."""
    def breaker(vb, tmp):
        shutil.copytree(vb[key], tmp / "run")
        return tmp / "run" / "checkpoint.pt"
    return breaker


def _set(path: str, value) -> Callable:
    """Set ``data[k1][k2]...`` (a dotted path of keys and list indices) to ``value``."""
    *parents, last = [int(k) if k.lstrip("-").isdigit() else k for k in path.split(".")]

    def change(data):
        for key in parents:
            data = data[key]
        data[last] = value
    return change


VL_CASES = [
    VLCase("VQA file", "no questions", _vl_json("vqa/val_questions.json", _set("questions", [])), "vqa-questions",
           "field 'questions' is an empty list"),
    VLCase("VQA file", "a repeated question_id", _vl_json("vqa/val_questions.json", lambda d: d["questions"][1].update(
        question_id=d["questions"][0]["question_id"])), "vqa-questions", "the same as questions[0]'s"),
    VLCase("VQA file", "a blank question", _vl_json("vqa/val_questions.json", _set("questions.2.question", "  ")),
           "vqa-questions", "field 'question' is empty"),
    VLCase("VQA file", "an annotation without answers", _vl_json("vqa/val_annotations.json",
           _set("annotations.0.answers", [])), "vqa-annotations", "field 'answers' is an empty list"),
    VLCase("VQA file", "a number as an answer", _vl_json("vqa/val_annotations.json",
           _set("annotations.1.answers.0.answer", 3)), "vqa-annotations", "field 'answer' is 3, expected str"),
    VLCase("VQA file", "an answer twice in the label space", _vl_json("vqa/trainval_ans2label.json",
           Replace(lambda d: list(d) + [next(iter(d))])), "vqa-labels", "appears twice"),
    VLCase("caption file", "two images with one id", _vl_json("captions/dataset_world.json", lambda d: d["images"][1]
           .update(cocoid=d["images"][0]["cocoid"])), "karpathy", "the same as images[0]'s"),
    VLCase("caption file", "an image without captions", _vl_json("captions/dataset_world.json",
           _set("images.0.sentences", [])), "karpathy", "field 'sentences' is an empty list"),
    VLCase("caption file", "an unknown split", _vl_json("captions/dataset_world.json",
           _set("images.0.split", "validation")), "karpathy", "field 'split' is 'validation'"),
    VLCase("caption file", "a reference caption of a missing image", _vl_json("captions/captions_val.json",
           _set("annotations.0.image_id", 999999)), "coco-references", "999999, which is not in the file's 'images'"),
    VLCase("SNLI-VE file", "an unknown label", _vl_lines(_set("0.gold_label", "maybe")), "snli",
           "field 'gold_label' is 'maybe'"),
    VLCase("SNLI-VE file", "a repeated pairID", _vl_lines(lambda lines: lines[1].update(pairID=lines[0]["pairID"])),
           "snli", "the same as line 1's"),
    VLCase("SNLI-VE file", "a blank hypothesis", _vl_lines(_set("2.sentence2", "")), "snli",
           "field 'sentence2' is empty"),
    VLCase("V&L checkpoint", "a follower to VQA eval", lambda vb, tmp: vb["nav_run"] / "follower_best.pt",
           "vqa-checkpoint", "is a follower (RUN/follower_best.pt of agents.train), not a VQA head"),
    VLCase("V&L checkpoint", "a VQA head to agents.evaluate", lambda vb, tmp: vb["vqa_run"] / "best.pt",
           "nav-evaluate", "is a VQA head (RUN/best.pt of tasks.vqa train), not a follower"),
    VLCase("V&L checkpoint", "a VQA head to the captioning eval", lambda vb, tmp: vb["vqa_run"] / "best.pt",
           "caption-checkpoint", "is a VQA head (RUN/best.pt of tasks.vqa train), not a captioner"),
    VLCase("V&L checkpoint", "a VQA run to agents.train --resume", _run_folder("vqa_run"), "nav-resume",
           "is the training state of a VQA run"),
    VLCase("V&L checkpoint", "a navigation run to tasks.vqa train --resume", _run_folder("nav_run"), "vqa-resume",
           "is the training state of a navigation run"),
]


def _vl_command(case: VLCase, broken: Path, vb: dict, tmp: Path) -> tuple[Callable, list[str]] | None:
    vl, world = vb["vl"], str(vb["world"])
    if case.command == "vqa-questions":
        return vqa_main, ["eval", "--questions", str(broken), "--annotations", str(vl / "vqa" / "val_annotations.json"),
                          "--results", str(vb["vqa_gold"])]
    if case.command == "vqa-annotations":
        return vqa_main, ["eval", "--questions", str(vl / "vqa" / "val_questions.json"), "--annotations", str(broken),
                          "--results", str(vb["vqa_gold"])]
    if case.command == "vqa-labels":
        return vqa_main, ["train", "--data-dir", world, "--label-space", str(broken), "--out", str(tmp / "new_run"),
                          *VQA_TINY]
    if case.command == "karpathy":
        return caption_main, ["eval", "--karpathy", str(broken), "--results", str(vb["caption_gold"]), "--split", "val"]
    if case.command == "coco-references":
        return caption_main, ["eval", "--karpathy", str(vl / "captions" / "dataset_world.json"), "--references",
                              str(broken), "--results", str(vb["caption_gold"]), "--split", "val"]
    if case.command == "vqa-checkpoint":
        return vqa_main, ["eval", "--data-dir", world, "--checkpoint", str(broken)]
    if case.command == "caption-checkpoint":
        return caption_main, ["eval", "--data-dir", world, "--checkpoint", str(broken), "--split", "val"]
    if case.command == "nav-evaluate":
        return evaluate_main, ["--checkpoint", str(broken), "--data-dir", str(vb["nav_world"]), "--split", "val_seen",
                               "--out", str(tmp / "results.json")]
    if case.command == "nav-resume":
        return train.main, ["r2r", "--data-dir", str(vb["nav_world"]), "--out", str(tmp / "run"), "--only",
                            "follower", "--iters", "4", "--resume", *TINY]
    if case.command == "vqa-resume":
        return vqa_main, ["train", "--data-dir", world, "--out", str(tmp / "run"), "--resume", *VQA_TINY]
    return None


@pytest.mark.parametrize("case", VL_CASES, ids=[f"{c.kind}: {c.name}" for c in VL_CASES])
def test_a_broken_vl_file_is_one_clear_error(case, vl_base, tmp_path, capsys):
    broken = case.breaker(vl_base, tmp_path)
    command = _vl_command(case, broken, vl_base, tmp_path)
    if command is None:  # SNLI-VE: the loader raises the toolkit's error
        with pytest.raises(DataError) as caught:
            load_snli_ve(broken)
        message = str(caught.value)
        assert "\n" not in message
    else:
        message = _one_error_line(*command, capsys, tmp_path / "run" if case.command.endswith("resume") else None)
    assert broken.name in message, message
    assert case.expect in message, message
    assert "weights_only" not in message


def test_valid_vl_files_still_pass(vl_base, tmp_path, capsys):
    """The same V&L commands on the unbroken files succeed, a VQA run resumes, SNLI-VE loads."""
    vl, world = vl_base["vl"], str(vl_base["world"])
    assert vqa_main(["eval", "--questions", str(vl / "vqa" / "val_questions.json"), "--annotations",
                     str(vl / "vqa" / "val_annotations.json"), "--results", str(vl_base["vqa_gold"])]) == 0
    assert caption_main(["eval", "--karpathy", str(vl / "captions" / "dataset_world.json"), "--references",
                         str(vl / "captions" / "captions_val.json"), "--results", str(vl_base["caption_gold"]),
                         "--split", "val"]) == 0
    assert vqa_main(["eval", "--data-dir", world, "--checkpoint", str(vl_base["vqa_run"] / "best.pt")]) == 0
    run = tmp_path / "run"
    shutil.copytree(vl_base["vqa_run"], run)
    assert vqa_main(["train", "--data-dir", world, "--out", str(run), "--resume", *VQA_TINY, "--iters", "4"]) == 0
    assert load_checkpoint(run / "checkpoint.pt", kind="vqa-training-state")["iteration"] == 4
    assert load_snli_ve(vl / "snli_ve" / "snli_ve_dev.jsonl")
    assert "error" not in capsys.readouterr().err
