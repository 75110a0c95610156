"""``--png DIR``: one PNG per episode of the map with both paths (a panel per floor they visit), for papers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from envs.atomic import atomic_path
from envs.kernel.navgraph import NavGraph
from envs.kernel.topdown import draw_map, find_floors
from eval.metrics import SUCCESS_DISTANCE


def episode_figure(record: dict, graph: NavGraph) -> np.ndarray:
    """The map(s) of one replay record: reference and walked path, start, goal and the agent where it ended."""
    walked = [step[0] for step in record["trajectory"]]
    final_vp, final_heading = record["trajectory"][-1][0], record["trajectory"][-1][1]
    floors = find_floors(graph)
    visited = sorted({int(floors.of[graph.ix(vp)]) for vp in walked + record["reference"]})
    metrics = record.get("metrics") or {}
    title = record["id"]
    if metrics.get("success") is not None:
        title += f"  SR {metrics['success']:.0f}  NE {metrics['nav_error']:.2f} m  nDTW {metrics['ndtw']:.2f}"
    panels = [draw_map(graph, floor=f, reference=record["reference"] or None, walked=walked,
                       agent=(final_vp, final_heading), success_radius=SUCCESS_DISTANCE,
                       title=title + (f"  (floor {f + 1})" if len(visited) > 1 else ""))
              for f in visited]
    return np.concatenate(panels, axis=1)


def write_figures(records: list[dict], graphs: dict[str, NavGraph], out_dir: Path) -> list[Path]:
    """One ``{instr_id}.png`` per record in ``out_dir`` (written atomically); returns the paths."""
    from PIL import Image

    paths = []
    for record in records:
        path = Path(out_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', record['id'])}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(episode_figure(record, graphs[record["scan"]])).save(tmp, format="PNG")
        paths.append(path)
    return paths
