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
