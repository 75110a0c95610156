"""Shortest paths of a navigation graph sampled by a rule: the one sampler for episodes and augmentation.

R2R's paths (Anderson et al. 2018) and the augmentation paths of Fried et al. 2018 (which EnvDrop's
``aug_paths.json`` reuses) are shortest paths between included viewpoints that are 4-6 moves apart and longer
than 5 m; the built-in world keeps paths of 3-6 moves for its smaller houses. A :class:`PathRule` states such a
rule; :func:`sample_paths` draws paths that meet it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.kernel.navgraph import NavGraph


@dataclass(frozen=True)
class PathRule:
    """Which shortest paths qualify: ``min_edges``..``max_edges`` moves and longer than ``min_distance`` metres."""

    min_edges: int = 4
    max_edges: int = 6
    min_distance: float = 5.0


R2R_PATHS = PathRule(4, 6, 5.0)


def hop_counts(graph: NavGraph) -> np.ndarray:
    """[N, N] number of moves on the (distance-)shortest path between every pair (-1: unreachable)."""
    n = len(graph)
    nxt = graph.next_hop_table
    goal = np.broadcast_to(np.arange(n)[None, :], (n, n))
    cur = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
    hops = np.where(nxt >= 0, 0, -1)
    moving = (cur != goal) & (hops >= 0)
    while moving.any():  # every pair walks one hop per round, all pairs at once
        cur = np.where(moving, nxt[cur, goal], cur)
        hops = hops + moving
        moving = (cur != goal) & (hops >= 0)
    return hops


def eligible_pairs(graph: NavGraph, rule: PathRule) -> np.ndarray:
    """``[P, 2]`` (start ix, goal ix) of every pair of included viewpoints whose shortest path meets ``rule``,
    in row-major order (start, then goal, in the file's order)."""
    hops = hop_counts(graph)
    ok = (hops >= rule.min_edges) & (hops <= rule.max_edges) & (graph.distances > rule.min_distance)
    ok &= graph.included[:, None] & graph.included[None, :]
    return np.argwhere(ok)


def sample_paths(graph: NavGraph, rng: np.random.Generator, rule: PathRule, count: int | None = None,
                 shuffle: bool = False) -> list[list[str]]:
    """Up to ``count`` distinct shortest paths meeting ``rule`` (all of them when ``count`` is None).

    ``shuffle=False`` keeps the chosen paths in the graph's order (a random subset when there are more than
    ``count``); ``shuffle=True`` returns them in a random order (the first ``count`` of a permutation of all).
    """
    pairs = eligible_pairs(graph, rule)
    if shuffle:
        pairs = pairs[rng.permutation(len(pairs))[:count]]
    elif count is not None and len(pairs) > count:
        pairs = pairs[np.sort(rng.choice(len(pairs), count, replace=False))]
    return [graph.shortest_path(graph.ids[a], graph.ids[b]) for a, b in pairs]


@dataclass(frozen=True)
class DetourRule:
    """Paths that are not shortest paths (as RxR's are): the shortest path to a waypoint, then on to the goal,
    visiting no viewpoint twice, ``min_length``..``max_length`` metres long, at most ``max_edges`` moves, and at
    least ``min_detour`` times the shortest distance from start to goal."""

    min_length: float = 12.0
    max_length: float = 30.0
    max_edges: int = 14
    min_detour: float = 1.4


def sample_detours(graph: NavGraph, rng: np.random.Generator, rule: DetourRule, count: int) -> list[list[str]]:
    """Up to ``count`` distinct detour paths (start -> waypoint -> goal, see :class:`DetourRule`), in random order.

    Every (start, waypoint, goal) triple of included viewpoints whose lengths fit the rule is a candidate; they
    are tried in a random order and kept when the joined path is simple and short enough in moves.
    """
    d = graph.distances
    ok = graph.included
    total = d[:, :, None] + d[None, :, :]  # [start, waypoint, goal]: length through the waypoint
    direct = d[:, None, :]
    with np.errstate(invalid="ignore"):
        fits = (total >= rule.min_length) & (total <= rule.max_length) & (total >= rule.min_detour * direct)
    fits &= ok[:, None, None] & ok[None, :, None] & ok[None, None, :] & np.isfinite(total) & (direct > 0)
    candidates = np.argwhere(fits)
    paths: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for a, w, b in candidates[rng.permutation(len(candidates))]:
        if len(paths) == count:
            break
        first = graph.shortest_path(graph.ids[a], graph.ids[w])
        path = first + graph.shortest_path(graph.ids[w], graph.ids[b])[1:]
        if len(path) - 1 > rule.max_edges or len(set(path)) != len(path) or tuple(path) in seen:
            continue
        seen.add(tuple(path))
        paths.append(path)
    return paths
