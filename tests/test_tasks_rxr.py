"""RxR guide files, language filters and the Unicode-aware tokenizer for Hindi and Telugu."""

from __future__ import annotations

import gzip
import json
import unicodedata
from pathlib import Path

import pytest

from envs.datadir import DataError
from tasks.rxr import build_rxr_vocab, expand_languages, load_rxr, splitter_for
from tasks.tokenize import RXR_MAX_LEN, split_multilingual, split_sentence

SAMPLE = "RxR_samples/KarelGans/rxr_guide_sample_from_test.jsonl"
TELUGU = "వంటగది దాటి కుడి వైపు తిరగండి, తర్వాత మెట్లు ఎక్కి ముందుకు నడవండి. పెద్ద సోఫా దగ్గర ఆగండి!"


def record(i: int, language: str, instruction: str = "Walk ahead and stop.") -> dict:
    return {"instruction_id": i, "path_id": 100 + i, "scan": "s1", "path": ["a", "b"], "heading": 0.5,
            "instruction": instruction, "language": language, "split": "val_seen", "annotator_id": 7,
            "edit_distance": 0.1, "timed_instruction": [{"word": "Walk", "start_time": 0.0, "end_time": 0.4}]}


def write_guide(root: Path, split: str, records: list[dict], gz: bool = True) -> Path:
    name = "rxr_test_standard_public_guide" if split == "test" else f"rxr_{split}_guide"
    path = root / "RxR" / (name + (".jsonl.gz" if gz else ".jsonl"))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


LANGS = ["en-US", "hi-IN", "en-IN", "te-IN", "hi-IN"]


@pytest.mark.parametrize("gz", [True, False])
def test_load_and_filter_languages(tmp_path, gz):
    write_guide(tmp_path, "val_seen", [record(i, lang) for i, lang in enumerate(LANGS)], gz=gz)
    episodes = load_rxr(tmp_path, "val_seen")
    assert [e.instr_id for e in episodes] == ["0", "1", "2", "3", "4"]
    first = episodes[0]
    assert (first.path_id, first.scan, first.path, first.heading, first.language) == (100, "s1", ["a", "b"], 0.5, "en-US")
    assert first.distance is None and first.extra == {"split": "val_seen", "annotator_id": 7, "edit_distance": 0.1}
    assert [e.language for e in load_rxr(tmp_path, "val_seen", "en")] == ["en-US", "en-IN"]
    assert [e.instr_id for e in load_rxr(tmp_path, "val_seen", ["hi", "te"])] == ["1", "3", "4"]
    assert [e.instr_id for e in load_rxr(tmp_path, "val_seen", "en-IN")] == ["2"]
    assert expand_languages(None) is None


def test_test_split_file_name_and_errors(tmp_path):
    write_guide(tmp_path, "test", [record(0, "te-IN")])
    assert load_rxr(tmp_path, "test")[0].language == "te-IN"
    with pytest.raises(DataError, match=r"rxr_train_guide\.jsonl\.gz: RxR train split not found"):
        load_rxr(tmp_path, "train")
    bad = record(1, "en-US")
    del bad["scan"]
    write_guide(tmp_path, "val_unseen", [record(0, "en-US"), bad])
    with pytest.raises(DataError, match=r"rxr_val_unseen_guide\.jsonl\.gz: line 2 \(instruction_id 1\) has no field 'scan'"):
        load_rxr(tmp_path, "val_unseen")
    path = write_guide(tmp_path, "train", [record(0, "en-US")], gz=False)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DataError, match=r"line 2 is not valid JSON"):
        load_rxr(path, "train")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"broken\.jsonl\.gz: cannot be read"):
        load_rxr(broken, "train")


def check_indic_tokens(text: str, tokens: list[str]) -> None:
    """No token starts with a combining mark, and the word tokens rebuild every word of the text."""
    for token in tokens:
        assert unicodedata.category(token[0])[0] != "M", f"token {token!r} starts with a combining mark"
    words = [t for t in tokens if unicodedata.category(t[0])[0] in "LN"]
    text = unicodedata.normalize("NFC", text)
    expected = [w for chunk in text.lower().split() for w in "".join(
        c if unicodedata.category(c)[0] in "LMN" or c in "\u200c\u200d" else " " for c in chunk).split()]
    assert words == expected


def test_telugu_keeps_vowel_signs_and_viramas():
    tokens = split_multilingual(TELUGU)
    check_indic_tokens(TELUGU, tokens)
    assert tokens[:5] == ["వంటగది", "దాటి", "కుడి", "వైపు", "తిరగండి"]
    assert tokens[5] == "," and tokens[-1] == "!" and "తర్వాత" in tokens  # virama kept inside the word
    # the regex \W split (EnvDrop's) tears the same words apart: the reason for a second tokenizer
    assert any(unicodedata.category(t[0])[0] == "M" for t in split_sentence(TELUGU))


def test_multilingual_matches_envdrop_on_plain_english():
    text = "Walk past the sofa... then turn LEFT,(into) the room's door!?"
    assert split_multilingual(text) == split_sentence(text)


def test_real_hindi_record(shared_data):
    episodes = load_rxr(shared_data / SAMPLE, "test")
    assert sorted(e.language for e in episodes) == ["en-US", "hi-IN"]
    (hindi,) = load_rxr(shared_data / SAMPLE, "test", languages="hi")
    assert hindi.instr_id == "6" and hindi.path_id == 3 and hindi.scan == "8WUmhLawc2A" and len(hindi.path) == 5
    split = splitter_for(hindi.language)
    tokens = split(hindi.instruction)
    check_indic_tokens(hindi.instruction, tokens)
    assert tokens[:4] == ["भोजनकक्ष", "के", "कोने", "में"] and "।" in tokens
    # the record spells this with precomposed U+095C; NFC gives the decomposed letter + nukta either way
    assert "\u092e\u0941\u095c\u093f\u092f\u0947" in hindi.instruction
    assert "\u092e\u0941\u0921\u093c\u093f\u092f\u0947" in tokens  # nukta + vowel signs stay in one word
    assert split("\u092e\u0941\u0921\u093c\u093f\u092f\u0947") == split("\u092e\u0941\u095c\u093f\u092f\u0947")
    vocab = build_rxr_vocab(episodes, "hi", min_count=1)
    assert "के" in vocab and "walk" not in vocab  # only the Hindi record counted
    ids = vocab.encode(hindi.instruction, RXR_MAX_LEN)
    assert ids.shape == (160,) and vocab.decode(ids).split() == tokens
    english = build_rxr_vocab(episodes, "en-US", min_count=1)
    assert "you're" not in english and "washroom" in english  # EnvDrop's tokenizer for English


def test_real_records_score_on_the_real_graphs(shared_data):
    """Both real records (en-US, hi-IN) score on the real navigation graphs: their own path, walked with a turn
    in place at each viewpoint as an agent's trajectory records it, has nDTW 1; the start alone does not."""
    from envs.kernel.navgraph import load_graph
    from eval.metrics import score_episodes

    episodes = load_rxr(shared_data / SAMPLE, "test")
    graphs = [load_graph(shared_data / "connectivity", e.scan) for e in episodes]
    walked = [[vp for vp in e.path for _ in range(2)] for e in episodes]  # each viewpoint twice
    rows = score_episodes(walked, [e.path for e in episodes], graphs)
    assert [r["ndtw"] for r in rows] == [1.0, 1.0] and [r["success"] for r in rows] == [1.0, 1.0]
    stay = score_episodes([e.path[:1] for e in episodes], [e.path for e in episodes], graphs)
    assert all(r["ndtw"] < 0.7 for r in stay)  # staying put does not follow the path (the en-US one is 2.6 m)
    assert {e.language for e in episodes} == {"en-US", "hi-IN"}


def test_unknown_language_codes_are_named(tmp_path):
    from envs.datadir import DataError

    guide = tmp_path / "rxr_val_seen_guide.jsonl"
    record = {"instruction_id": 1, "path_id": 1, "scan": "s", "path": ["a"], "heading": 0.0, "instruction": "go",
              "language": "xx-XX"}
    guide.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"line 1 \(instruction_id 1\) field 'language' is 'xx-XX', not an RxR language code"):
        load_rxr(guide, "val_seen")
    guide.write_text(json.dumps(record | {"language": "hi-IN"}) + "\n")
    with pytest.raises(DataError, match="unknown RxR language 'fr'"):
        load_rxr(guide, "val_seen", languages=["fr"])
