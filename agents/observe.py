"""The env's numpy observations as tensors on the agent's device, in either observation mode.

``features`` mode hands out the feature arrays themselves: views (B, 36, D+128) and candidates (B, K, D+128),
gathered on the host at every step and copied to the device. ``indices`` mode hands out only which panorama,
heading and candidate views each slot has, and :func:`observe` gathers the same arrays on the agent's device
from one copy of the env's feature table held there (:func:`device_tables`): on a GPU a step then moves a few
hundred bytes per slot instead of ~100 KB, and on a CPU the features are copied once instead of twice.

On CUDA every host-to-device copy goes through pinned memory without waiting (``non_blocking``), so a
rollout step waits for the device once, when the env needs the chosen actions; :func:`host_waits` counts the
waits of any piece of code, and where they happen.
"""

from __future__ import annotations

import warnings
import weakref
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from agents.follower import angle_feature

_TABLES: dict[tuple[int, str], tuple[int, torch.Tensor, torch.Tensor]] = {}


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the CPU) moved to ``device``; to CUDA without making the host wait."""
    if device.type == "cuda" and tensor.device.type == "cpu":  # staged in pinned memory, kept until copied
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def upload(array: Any, device: torch.device) -> torch.Tensor:
    """A tensor on ``device`` holding a copy of ``array`` (the env may reuse its buffers, and autograd keeps some
    inputs for backward). On CUDA the copy does not make the host wait."""
    return to_device(torch.from_numpy(np.array(array, copy=True)), device)


def rows(array: Any, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows ``idx`` (an index array: numpy copies them) of an observation array, on ``device``."""
    return to_device(torch.from_numpy(np.asarray(array)[idx]), device)


def device_tables(env: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The env's feature table [R, 36, D] (its own dtype) and view-angle table [12, 36, 128] on ``device``.

    On the CPU they are the env's arrays themselves. On another device one copy is kept per feature store
    (the splits of one source share it) and per device, and is copied again when a split has added rows or
    the store was replaced; it is dropped with the store.
    """
    table = env.feature_table
    if device.type == "cpu":
        return torch.from_numpy(table), torch.from_numpy(env.view_angle_table)
    store = table.base if table.base is not None else table  # the array that owns the memory
    key = (id(store), str(device))
    held = _TABLES.get(key)
    if held is None or held[0] != len(table):
        if held is None:
            weakref.finalize(store, _TABLES.pop, key, None)
        _TABLES[key] = held = (len(table), torch.from_numpy(table).to(device),
                               torch.from_numpy(env.view_angle_table).to(device))
    return held[1], held[2]


def observe(env: Any, obs: dict, idx: np.ndarray, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views (n, 36, D+128), candidates (n, K, D+128) and action mask (n, K+1) of env slots ``idx``.

    In ``indices`` mode they are gathered on ``device`` and equal what ``features`` mode copies: padding
    candidates and finished slots (whose STOP is masked) are zeros; angle features are computed in float64
    and rounded to float32, as the env does. All three are new tensors, the caller's to overwrite.
    """
    mask = rows(obs["action_mask"], idx, device)
    if "view_features" in obs:
        return rows(obs["view_features"], idx, device), rows(obs["candidate_features"], idx, device), mask
    table, view_angles = device_tables(env, device)
    here = rows(obs["viewpoint"], idx, device)  # (n,) rows of the table
    seen_from = rows(obs["candidate_view"], idx, device)  # (n, K) view of each candidate
    angles = rows(obs["candidate_angles"], idx, device).double()  # (n, K, 2) relative heading, elevation
    (n, k), (_, V, D), A = seen_from.shape, table.shape, view_angles.shape[-1]
    # each part is gathered straight into its columns of the result, not gathered and then concatenated
    views = torch.empty(n, V, D + A, device=device)
    _gather_into(views[..., :D], table, here)
    _gather_into(views[..., D:], view_angles, rows(obs["heading_index"], idx, device))
    cands = torch.empty(n, k, D + A, device=device)
    _gather_into(cands.view(n * k, D + A)[:, :D], table.flatten(0, 1), (here.unsqueeze(1) * V + seen_from).view(-1))
    cands[..., D:] = angle_feature(angles[..., 0].reshape(-1), angles[..., 1].reshape(-1), A).view(n, k, A)
    finished = ~mask[:, :1, None]
    if device.type != "cpu" or bool(finished.any()):  # a rollout observes running slots only: skipped on a CPU
        views.masked_fill_(finished, 0.0)
    cands.masked_fill_(~mask[:, 1:, None], 0.0)
    return views, cands, mask


def _gather_into(out: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> None:
    """``out[:] = table[index]`` (float32) without an intermediate tensor when the table is float32 too."""
    if table.dtype == out.dtype:
        torch.index_select(table, 0, index, out=out)
    else:  # a float16 table: gathered, then widened as it is copied in
        out.copy_(table.index_select(0, index))


def host_waits(run: Callable[[], Any]) -> tuple[Counter, Any]:
    """Run ``run()`` on CUDA, counting where the host waits for the GPU: ``folder/file.py:line`` -> waits (torch's
    sync debug mode warns at each wait), and ``run``'s result."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return Counter(f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}" for w in caught
                   if "synchroniz" in str(w.message)), out
