"""A stand-in for the compiled ``MatterSim`` module: its API, recording every call, delegating to ours."""

from __future__ import annotations

import types

from envs.simulator import Simulator as PythonSimulator


class Simulator:
    """Records ``(method, args)`` in ``calls`` and checks argument types as pybind11 would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self._inner = PythonSimulator()

    def _call(self, name: str, *args):
        self.calls.append((name, args))
        return getattr(self._inner, name)(*args)

    def setRenderingEnabled(self, value):  # noqa: N802
        self.calls.append(("setRenderingEnabled", (value,)))  # the real one can render; ours cannot

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
