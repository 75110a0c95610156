"""Everything an env needs from a data directory, loaded once per process and shared.

``load_task_data(data_dir, split, task, features)`` resolves the data directory (the built-in world when none
is given), loads the split's episodes, the graphs of their scans, the vocabulary (built from the training
split by EnvDrop's rule, as the agent's own), the view features and the per-viewpoint tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from envs.datadir import DataDir, DataError, data_error, read_json
from envs.gym.tables import FeatureBank, ViewpointTables, build_tables
from envs.kernel.navgraph import load_graphs
from envs.world.builtin import resolve_data_dir
from features.store import open_features
from tasks.r2r import Episode
from tasks.rxr import language_group
from tasks.splits import JOINT, build_joint_vocab, build_vocabs, check_task, load_split

DEFAULT_MAX_INSTR_LEN = {"r2r": 80, "rxr": 160}
BLIND_FEATURE_DIM = 640  # the size of the zero features of --features none (CLIP RN50x4's)


@dataclass
class TaskData:
    """A split's episodes with the world tables and vocabulary they are played in."""

    data_dir: Path
    task: str
    split: str
    episodes: list[Episode]
    tables: ViewpointTables
    vocabs: dict[str, object]  # language group -> tasks Vocab
    max_instr_len: int
    features_path: Path | None
    # instr_id -> (instruction, its ids up to <EOS> as int32): a quarter of the padded int64 rows' memory
    _encoded: dict = field(default_factory=dict, repr=False)

    def encode(self, episode: Episode) -> np.ndarray:
        """Token ids of an episode's instruction, [max_instr_len] int64 padded with 0 (its own encoding if it
        has one)."""
        if episode.instr_encoding is None:
            cached = self._encoded.get(episode.instr_id)
            if cached is None or cached[0] != episode.instruction:
                ids = self.vocab_for(episode).encode(episode.instruction, max_len=self.max_instr_len)
                # <PAD> is id 0 in every Vocab (its first word), and only trails the ids
                cached = (episode.instruction, ids[: np.count_nonzero(ids)].astype(np.int32))
                self._encoded[episode.instr_id] = cached
            encoded = cached[1]
        else:
            encoded = np.asarray(episode.instr_encoding, dtype=np.int64)[: self.max_instr_len]
        out = np.zeros(self.max_instr_len, dtype=np.int64)
        out[: len(encoded)] = encoded
        return out

    def encode_all(self) -> None:
        """Tokenise every episode of the split once, up front, so resets only look encodings up."""
        for episode in self.episodes:
            self.encode(episode)

    @property
    def vocab(self):
        """The vocabulary (an RxR env over several language groups must be given one group to have one)."""
        if len(self.vocabs) != 1:
            raise DataError(f"this {self.task} env mixes languages {sorted(self.vocabs)}, each with its own "
                            "vocabulary; pass languages=[one of them] (CLIP-ViL trains one model per language)")
        return next(iter(self.vocabs.values()))

    @property
    def vocab_size(self) -> int:
        return max(len(v) for v in self.vocabs.values())

    def vocab_for(self, episode: Episode):
        if self.task == "r2r":
            return self.vocabs["en"]
        if JOINT in self.vocabs:
            return self.vocabs[JOINT]
        group = language_group(episode.language)
        if group not in self.vocabs:
            raise DataError(f"no {group} vocabulary: the training split has no {group} instructions")
        return self.vocabs[group]


def resolve_features(data: DataDir, features: str | None) -> Path | None:
    """``"none"`` -> None (zero features); a name or path -> the file; None -> the file a built-in world's
    manifest names, else the directory's only feature file."""
    if features == "none":
        return None
    if features is None:
        manifest = data.root / "world.json"
        named = read_json(manifest, "world manifest", "") if manifest.exists() else {}
        if isinstance(named, dict) and isinstance(named.get("features"), dict) and "file" in named["features"]:
            return data.require(data.root / named["features"]["file"], "the built-in world's feature file")
        folder = data.root / "features"
        found = sorted(p for p in folder.glob("*") if p.suffix in (".h5", ".hdf5", ".tsv")) if folder.is_dir() else []
        if len(found) == 1:
            return found[0]
        if not found:
            raise data_error(folder, "no feature file found",
                             "Put {name}.h5 there, pass --features PATH, or --features none for zero features")
        raise data_error(folder, f"several feature files ({', '.join(p.name for p in found)})",
                         "Choose one with --features NAME")
    return data.require(data.features(features), f"feature file {features!r}")


@lru_cache(maxsize=8)
def _load_cached(root: str, task: str, split: str, features, languages: tuple[str, ...] | None,
                 feature_dtype: str, joint: bool) -> TaskData:
    data = DataDir(Path(root))
    episodes = load_split(data, task, split, languages)
    if not episodes:
        raise data_error(data.root, f"the {task} {split} split has no episodes"
                         + (f" in languages {languages}" if languages else ""))
    conn = data.require(data.connectivity, "connectivity folder")
    graphs = load_graphs(conn, sorted({ep.scan for ep in episodes}))
    tables = build_tables(graphs, _bank(data, features, feature_dtype))
    vocabs = _cached_vocabs(str(data.root), task, languages, joint)
    source = tables.bank.source
    out = TaskData(data.root, task, split, episodes, tables, vocabs, DEFAULT_MAX_INSTR_LEN[task],
                   source.path if isinstance(source, FeatureFile) else None)
    out.encode_all()
    return out


class FeatureFile:
    """A feature file as a :class:`FeatureBank` source: opened for each read, closed after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._layout: tuple[int, int] | None = None

    def layout(self) -> tuple[int, int]:
        """(number of panoramas in the file, D): the bank reserves room for all of them at once."""
        if self._layout is None:
            with open_features(self.path) as store:
                self._layout = (len(store), store.dim)
        return self._layout

    def fill(self, keys: list[str], out: np.ndarray) -> None:
        """Read ``keys`` straight into ``out`` ``[K, 36, D]`` (rows of the bank)."""
        with open_features(self.path) as store:
            store.table(keys, out=out)


_BANKS: dict[tuple, FeatureBank] = {}


def _bank(data: DataDir, features, feature_dtype: str) -> FeatureBank:
    """The process's bank for this feature source and dtype (every split of a run shares it): an in-memory
    source with ``.table()``, a file named or found as :func:`resolve_features` says, or zeros (``"none"``)."""
    if features is not None and not isinstance(features, str):
        key, source = ("memory", features, feature_dtype), features
    else:
        path = resolve_features(data, features)
        path = path and path.resolve()  # the bank outlives this data directory: it keeps the file's own path
        key, source = ("file", str(path) if path else None, feature_dtype), path and FeatureFile(path)
    if key not in _BANKS:
        _BANKS[key] = FeatureBank(source, BLIND_FEATURE_DIM, feature_dtype)
    return _BANKS[key]


@lru_cache(maxsize=8)
def _cached_vocabs(root: str, task: str, languages: tuple[str, ...] | None, joint: bool) -> dict[str, object]:
    """The training split's vocabularies, built once per process (every split's env shares them)."""
    train = load_split(DataDir(Path(root)), task, "train", languages, check_graphs=False)  # its words only
    return {JOINT: build_joint_vocab(train)} if joint else build_vocabs(task, train)


def load_task_data(data_dir: str | Path | None = None, split: str = "train", task: str = "r2r",
                   features: str | None = None, languages: list[str] | tuple[str, ...] | None = None,
                   feature_dtype: str = "float32", joint: bool = False) -> TaskData:
    """Load (once per process for the same arguments) what an env needs; see the module docstring.

    ``joint`` (RxR): one vocabulary over every language of the training split instead of one per group.
    """
    check_task(task)
    if joint and task != "rxr":
        raise DataError("a joint multilingual vocabulary is for RxR; R2R has one language")
    root = resolve_data_dir(data_dir)
    langs = tuple(languages) if languages else None
    return _load_cached(str(root.resolve()), task, split, features, langs, feature_dtype, joint)
