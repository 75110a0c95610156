"""R2R episodes and EnvDrop's tokenizer / vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs.datadir import DataError
from tasks.r2r import build_r2r_vocab, encode_episodes, load_r2r
from tasks.tokenize import Vocab, split_sentence

VOCAB_DIR = "R2R_EnvDrop_vocab"


def write_split(root: Path, split: str, records: list) -> Path:
    path = root / "R2R" / f"R2R_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path


RECORD = {"distance": 7.5, "scan": "s1", "path_id": 12, "path": ["a", "b", "c"], "heading": 1.5,
          "instructions": ["Walk to the sofa.", "Go left, stop.", "Turn around!"]}


def test_episodes_expand_instructions(tmp_path):
    test_record = {k: v for k, v in RECORD.items() if k not in ("distance", "path")} | {"path": ["a"], "path_id": 3}
    write_split(tmp_path, "train", [RECORD, dict(RECORD, path_id=13, instructions=RECORD["instructions"] + ["x"])])
    write_split(tmp_path, "test", [test_record])
    episodes = load_r2r(tmp_path, "train")
    assert [e.instr_id for e in episodes] == ["12_0", "12_1", "12_2", "13_0", "13_1", "13_2", "13_3"]
    first = episodes[0]
    assert (first.scan, first.path, first.heading, first.distance, first.language) == ("s1", ["a", "b", "c"], 1.5, 7.5, "en")
    assert (first.start, first.goal, first.instruction) == ("a", "c", "Walk to the sofa.")
    (test,) = load_r2r(tmp_path / "R2R" / "R2R_test.json", "ignored")[:1]
    assert test.distance is None and test.path == ["a"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"path": []}, r"entry 1 \(path_id 13\) field 'path' is an empty list, expected viewpoint ids"),
        ({"heading": "north"}, r"entry 1 \(path_id 13\) field 'heading' is 'north', expected int or float"),
        ({"heading": float("nan")}, r"entry 1 \(path_id 13\) field 'heading' is nan, expected a finite number"),
        ({"instructions": ["ok", 5]}, r"entry 1 \(path_id 13\) field 'instructions'\[1\] is 5, not a string"),
        ({"instructions": []}, r"entry 1 \(path_id 13\) field 'instructions' is an empty list"),
        ({"instructions": ["ok", " "]}, r"entry 1 \(path_id 13\) field 'instructions'\[1\] is empty"),
        ({"instructions": ["", ""]}, r"entry 1 \(path_id 13\) field 'instructions'\[0\] is empty"),
        ({"distance": -1}, r"entry 1 \(path_id 13\) field 'distance' is -1, expected at least 0"),
        ({"path_id": None}, r"entry 1 field 'path_id' is None, expected int"),
        ({"path_id": 12}, r"entry 1 field 'path_id' is 12, the same as entry 0's"),
    ],
)
def test_malformed_split_names_file_entry_field(tmp_path, bad, message):
    write_split(tmp_path, "val_seen", [RECORD, dict(RECORD, path_id=13, **bad) if "path_id" not in bad
                                       else dict(RECORD, **bad)])
    with pytest.raises(DataError, match=r"R2R_val_seen\.json: " + message):
        load_r2r(tmp_path, "val_seen")


def test_augmentation_paths_load_without_instructions(tmp_path):
    """A path-only entry (``instructions: [""]``, as agents.augment and EnvDrop's aug_paths.json write them)
    loads: its instruction is written by the speaker."""
    write_split(tmp_path, "aug_paths", [dict(RECORD, instructions=[""])])
    (episode,) = load_r2r(tmp_path, "aug_paths")
    assert episode.instr_id == "12_0" and episode.instruction == ""


def test_missing_split_and_field(tmp_path):
    with pytest.raises(DataError, match=r"R2R_val_unseen\.json: R2R val_unseen split not found"):
        load_r2r(tmp_path, "val_unseen")
    write_split(tmp_path, "train", [{k: v for k, v in RECORD.items() if k != "scan"}])
    with pytest.raises(DataError, match=r"entry 0 \(path_id 12\) has no field 'scan'"):
        load_r2r(tmp_path, "train")


def test_split_sentence_follows_envdrop():
    assert split_sentence("  Walk past the Sofa... then turn LEFT,(into) the room's door!? ") == [
        "walk", "past", "the", "sofa", "...", "then", "turn", "left", ",", "(", "into", ")", "the", "room", "'", "s",
        "door", "!", "?",
    ]
    # EnvDrop keeps a separator that mixes punctuation and space as one token
    assert split_sentence("stop. (there), go") == ["stop", ". (", "there", ")", ",", "go"]


def test_vocab_encode_decode_layout():
    vocab = Vocab.build(["walk to the sofa", "walk to the door", "the the"], min_count=2)
    assert vocab.words == ["<PAD>", "<UNK>", "<EOS>", "the", "walk", "to", "<BOS>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.eos_id, vocab.bos_id) == (0, 1, 2, 6)
    ids = vocab.encode("Walk to the kitchen", max_len=8)
    assert ids.dtype == np.int64
    assert ids.tolist() == [6, 4, 5, 3, 1, 2, 0, 0]
    assert vocab.decode(ids) == "walk to the <UNK>"
    cut = vocab.encode("the walk the to the walk", max_len=5)
    assert cut.tolist() == [6, 3, 4, 3, 2]  # max_len - 2 words, then <EOS> over the last slot
    assert vocab.encode("", max_len=4).tolist() == [6, 2, 0, 0]


def test_vocab_save_load_roundtrip(tmp_path):
    vocab = Vocab.build(["a b a b c"], min_count=1)
    vocab.save(tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_text().splitlines()[-1] != "<BOS>"  # EnvDrop files leave <BOS> out
    assert Vocab.load(tmp_path / "v.txt").words == vocab.words
    (tmp_path / "bad.txt").write_text("the\nwalk\n")
    with pytest.raises(DataError, match=r"bad\.txt: first lines are"):
        Vocab.load(tmp_path / "bad.txt")


@pytest.mark.parametrize(
    "split, paths, instructions", [("train", 4675, 14039), ("val_seen", 340, 1021), ("val_unseen", 783, 2349), ("test", 1391, 4173)]
)
def test_real_splits_load(shared_data, split, paths, instructions):
    episodes = load_r2r(shared_data, split)
    assert len(episodes) == instructions
    assert len({e.path_id for e in episodes}) == paths
    assert len({e.instr_id for e in episodes}) == instructions
    if split == "test":
        assert all(e.distance is None and len(e.path) == 1 for e in episodes)
    else:
        assert all(e.distance > 0 and len(e.path) >= 2 for e in episodes)


def test_real_vocab_reproduces_envdrop_file(shared_data):
    """EnvDrop's rules rebuild its train_vocab.txt exactly (word order via Python 2 dict order for ties)."""
    released = Vocab.load(shared_data / VOCAB_DIR / "train_vocab.txt")
    assert len(released) == 992 and released.bos_id == 991
    built = build_r2r_vocab(shared_data, "train")
    assert built.words == released.words
    # Python 3's first-seen order for ties gives the same words in a different order
    plain = build_r2r_vocab(shared_data, "train", legacy_order=False)
    assert set(plain.words) == set(released.words) and plain.words != released.words


def test_real_trainval_vocab_uses_both_val_splits(shared_data):
    released = Vocab.load(shared_data / VOCAB_DIR / "trainval_vocab.txt")
    sentences = [e.instruction for split in ("train", "val_seen", "val_unseen") for e in load_r2r(shared_data, split)]
    assert Vocab.build(sentences, legacy_order=True).words == released.words


def test_real_encoding(shared_data):
    vocab = Vocab.load(shared_data / VOCAB_DIR / "train_vocab.txt")
    episodes = load_r2r(shared_data, "val_seen")[:50]
    encode_episodes(episodes, vocab)
    for episode in episodes:
        ids = episode.instr_encoding
        assert ids.shape == (80,) and ids[0] == vocab.bos_id
        n = len(episode.instr_tokens)
        if n <= 78:
            assert ids[n + 1] == vocab.eos_id and not ids[n + 2 :].any()
        assert vocab.decode(ids).split() == [t if t in vocab else "<UNK>" for t in episode.instr_tokens][:78]
