"""What the replay page shows of each episode: maps, paths, metrics, the agent's decisions and its views.

:func:`replay_data` validates a results file against its split (as ``python -m eval`` does), picks the
episodes, scores them, and gathers one JSON-ready record per episode, one map per house and the view images
(deduplicated: a view seen twice is stored once). Images come from pre-rendered views (``--views-dir``,
``{scan}/{viewpoint}_rgb/{view}.jpg`` as EnvDrop's) or from the data directory's skyboxes through the
project's renderer; without either the page shows the map only.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.datadir import DataDir, data_error
from envs.kernel.grid import R2R_CAMERA, VIEW_COUNT, snap_elevation_index, snap_heading_index
from envs.kernel.navgraph import NavGraph, load_graphs
from envs.kernel.topdown import find_floors
from eval.metrics import SUCCESS_DISTANCE
from eval.score import DETAIL_KEYS, as_references, read_results, score_results
from tasks.splits import check_task, load_split

IMAGE_WIDTH, IMAGE_HEIGHT = 320, 240  # the R2R camera's field of view at half its resolution
JPEG_QUALITY = 72
METRICS = ("success", "spl", "nav_error", "ndtw", "sdtw", "oracle_success", "length", "steps")


@dataclass
class Selection:
    """Which episodes of the results file to show."""

    instr_ids: Sequence[str] = ()  # these, in this order
    worst: int | None = None  # the N worst: failures first, then by nDTW, then by navigation error
    limit: int = 100  # otherwise the first N of the results file


@dataclass
class ReplayData:
    """Everything the page embeds."""

    title: str
    episodes: list[dict]
    maps: dict[str, dict]  # scan -> nodes, edges, floors
    images: dict[str, str] = field(default_factory=dict)  # key -> data URI
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"title": self.title, "episodes": self.episodes, "maps": self.maps, "images": self.images,
                "success_distance": SUCCESS_DISTANCE}


def replay_data(task: str, results_path: Path, data_dir: Path, split: str, selection: Selection,
                views_dir: Path | None = None, images: bool = True, languages: Sequence[str] | None = None,
                progress: Callable[[Sequence], Sequence] = lambda items: items) -> ReplayData:
    """Read, validate, select and score; gather maps and images (see the module docstring)."""
    results = read_results(results_path)
    if not results:
        raise data_error(results_path, "holds no episodes", "Pass a results file with at least one entry")
    episodes = {ep.instr_id: ep for ep in load_split(data_dir, check_task(task), split, languages)}
    references = as_references(task, episodes.values())
    data = DataDir(data_dir)
    graphs = load_graphs(data.require(data.connectivity, "connectivity folder"), sorted({r.scan for r in references}))
    by_id = {str(r["instr_id"]): r for r in results}
    chosen = _choose(results, by_id, selection, results_path)
    has_goals = all(len(episodes[i].path) > 1 for i in chosen if i in episodes)
    report = score_results([by_id[i] for i in chosen], references, graphs, allow_missing=True,
                           scored=[r for r in references if r.instr_id in set(chosen)] if has_goals else [],
                           source=str(results_path))
    rows = {row["instr_id"]: row for row in report.rows}
    if selection.worst:
        chosen = sorted(chosen, key=lambda i: (rows[i]["success"], rows[i]["ndtw"], -rows[i]["nav_error"]))
        chosen = chosen[: selection.worst]
    records = [_record(episodes[i], by_id[i], rows.get(i), graphs[episodes[i].scan]) for i in chosen]
    maps = {scan: _house_map(graphs[scan]) for scan in sorted({r["scan"] for r in records})}
    replay = ReplayData(f"{task.upper()} {split}: {Path(results_path).name}", records, maps)
    if images:
        source = _image_source(data, views_dir, graphs)
        if source is None:
            replay.notes.append(f"no view images: neither --views-dir nor {data.skyboxes} has them; the page "
                                "shows maps only")
        else:
            replay.images = _views(records, source, progress)
    return replay


def _choose(results: list[dict], by_id: dict[str, dict], selection: Selection, path: Path) -> list[str]:
    if selection.instr_ids:
        unknown = [i for i in selection.instr_ids if i not in by_id]
        if unknown:
            raise data_error(path, f"has no trajectory for --instr-id {', '.join(unknown[:5])}",
                             "Pick ids that the results file holds (its instr_id fields)")
        return list(dict.fromkeys(selection.instr_ids))
    ids = [str(r["instr_id"]) for r in results]
    return ids if selection.worst else ids[: selection.limit]


def _record(episode, result: dict, row: dict | None, graph: NavGraph) -> dict:
    """One episode as the page reads it."""
    trajectory = [[str(step[0]), float(step[1]), float(step[2])] if isinstance(step, (list, tuple)) and len(step) >= 3
                  else [str(step[0] if isinstance(step, (list, tuple)) else step), 0.0, 0.0]
                  for step in result["trajectory"]]
    record = {
        "id": episode.instr_id, "scan": episode.scan, "language": episode.language,
        "instruction": episode.instruction, "reference": list(episode.path) if len(episode.path) > 1 else [],
        "trajectory": trajectory,
        "metrics": {k: _finite(row[k]) for k in METRICS} if row else {},
        "views": [_view_key(episode.scan, vp, h, e) for vp, h, e in trajectory],
    }
    for key in DETAIL_KEYS:
        if key in result:
            record[key] = result[key]
    return record


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def _view_key(scan: str, viewpoint: str, heading: float, elevation: float) -> str:
    ix = int(snap_heading_index(heading)) + 12 * int(snap_elevation_index(elevation))
    return f"{scan}/{viewpoint}/{ix}"


def _house_map(graph: NavGraph) -> dict:
    """The house's included viewpoints (x, y, floor), its edges between them, and its floors' heights."""
    floors = find_floors(graph)
    included = np.flatnonzero(graph.included)
    position = {int(ix): k for k, ix in enumerate(included)}
    src, dst = np.nonzero(np.triu(graph.unobstructed | graph.unobstructed.T))
    return {
        "ids": [graph.ids[ix] for ix in included],
        "xy": np.round(graph.positions[included, :2].astype(np.float64), 2).tolist(),
        "floor": floors.of[included].tolist(),
        "floors": np.round(floors.levels, 2).tolist(),
        "edges": [[position[int(a)], position[int(b)]] for a, b in zip(src, dst)],
    }


# -------------------------------------------------------------------------------------------------- images
ImageSource = Callable[[str, str, list[int]], dict[int, np.ndarray]]  # (scan, vp, views) -> view -> HxWx3


def _image_source(data: DataDir, views_dir: Path | None, graphs: dict[str, NavGraph]) -> ImageSource | None:
    if views_dir is not None:
        if not Path(views_dir).is_dir():
            raise data_error(views_dir, "views folder not found", "Pass --views-dir a folder of {scan}/{vp}_rgb/")
        return lambda scan, vp, views: _read_views(Path(views_dir), scan, vp, views)
    if data.skyboxes.is_dir():
        return lambda scan, vp, views: _render_views(data.skyboxes, graphs[scan], vp, views)
    return None


def _read_views(views_dir: Path, scan: str, viewpoint: str, views: list[int]) -> dict[int, np.ndarray]:
    from PIL import Image

    from envs.kernel.skybox import read_rgb
    from features.views import view_file, view_folder

    folder = view_folder(views_dir, scan, viewpoint)
    out = {}
    for ix in views if folder is not None else []:
        path = view_file(folder, ix)
        if path is not None:
            out[ix] = np.asarray(Image.fromarray(read_rgb(path)).resize((IMAGE_WIDTH, IMAGE_HEIGHT)))
    return out


def _render_views(skyboxes: Path, graph: NavGraph, viewpoint: str, views: list[int]) -> dict[int, np.ndarray]:
    from envs.kernel.grid import VIEW_ELEVATIONS, VIEW_HEADINGS
    from envs.kernel.skybox import has_skybox, load_skybox, render_views

    if not has_skybox(skyboxes, graph.scan, viewpoint):
        return {}
    faces = load_skybox(skyboxes, graph.scan, viewpoint)[None]  # (1, 6, 3, S, S)
    rotation = graph.poses[graph.ix(viewpoint)][None, :3, :3]
    rendered = render_views(faces, VIEW_HEADINGS[views][None], VIEW_ELEVATIONS[views][None], rotation,
                            IMAGE_WIDTH, IMAGE_HEIGHT, R2R_CAMERA.vfov)  # (1, V, 3, H, W)
    return {ix: rendered[0, k].permute(1, 2, 0).numpy() for k, ix in enumerate(views)}


def _views(records: list[dict], source: ImageSource, progress: Callable[[Sequence], Sequence]) -> dict[str, str]:
    """Data URIs of every view the records show, one per (scan, viewpoint, view)."""
    wanted: dict[tuple[str, str], set[int]] = {}
    for record in records:
        for key in record["views"]:
            scan, vp, ix = key.split("/")
            wanted.setdefault((scan, vp), set()).add(int(ix))
    images = {}
    for (scan, vp), views in progress(list(wanted.items())):
        for ix, array in source(scan, vp, sorted(v for v in views if 0 <= v < VIEW_COUNT)).items():
            images[f"{scan}/{vp}/{ix}"] = _jpeg_uri(array)
    return images


def _jpeg_uri(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
