"""A stand-in for the compiled ``MatterSim`` module: its API, recording every call, delegating to ours.

With rendering enabled, states carry ``rgb`` as MatterSim's do (``[H, W, 3]`` uint8, BGR), drawn from the
dataset path's skyboxes by :mod:`envs.kernel.skybox` at the state's heading and elevation.
"""

from __future__ import annotations

import types

import numpy as np
import torch

from envs.kernel.navgraph import load_graph
from envs.kernel.skybox import load_skybox, render_views
from envs.kernel.simulator import Simulator as PythonSimulator


class _RenderedState:
    """A state with an ``rgb`` image; every other attribute is the wrapped state's."""

    def __init__(self, state, rgb: np.ndarray) -> None:
        self._state, self.rgb = state, rgb

    def __getattr__(self, name):
        return getattr(self._state, name)


class Simulator:
    """Records ``(method, args)`` in ``calls`` and checks argument types as pybind11 would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self._inner = PythonSimulator()

    def _call(self, name: str, *args):
        self.calls.append((name, args))
        return getattr(self._inner, name)(*args)

    def setRenderingEnabled(self, value):  # noqa: N802
        self.calls.append(("setRenderingEnabled", (value,)))  # ours cannot render: the stand-in does
        self._rendering = bool(value)

    def getState(self):  # noqa: N802
        states = self._call("getState")
        if not getattr(self, "_rendering", False):
            return states
        inner = self._inner
        out = []
        for state in states:
            scan, vp = state.scanId, state.location.viewpointId
            graph = load_graph(inner.nav_graph_path, scan)
            pose = torch.from_numpy(graph.poses[graph.ix(vp), :3, :3].copy()).float()
            faces = load_skybox(inner.dataset_path, scan, vp)
            rgb = render_views(faces[None], torch.tensor([state.heading]), torch.tensor([state.elevation]), pose[None],
                               inner.width, inner.height, inner.vfov)[0, 0]  # [3, H, W]
            out.append(_RenderedState(state, rgb.flip(0).permute(1, 2, 0).numpy()))  # BGR, HWC
        return out

    def setNavGraphPath(self, path):  # noqa: N802
        assert type(path) is str, "pybind11 takes std::string"
        return self._call("setNavGraphPath", path)

    def newEpisode(self, scans, viewpoints, headings, elevations):  # noqa: N802
        assert all(type(h) is float for h in headings + elevations), "std::vector<double>"
        assert all(type(s) is str for s in scans + viewpoints), "std::vector<std::string>"
        return self._call("newEpisode", scans, viewpoints, headings, elevations)

    def makeAction(self, index, headings, elevations):  # noqa: N802
        assert all(type(i) is int for i in index), "std::vector<unsigned int>"
        assert all(type(h) is float for h in headings + elevations), "std::vector<double>"
        return self._call("makeAction", index, headings, elevations)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)


def module() -> types.ModuleType:
    mod = types.ModuleType("MatterSim")
    mod.Simulator = Simulator
    return mod
