"""Choose the simulator backend: this package's pure-Python simulator or the real MatterSim.

Both expose MatterSim's batched API (``setNavGraphPath`` ... ``initialize``, ``newEpisode``, ``makeAction``,
``getState``, ``close``) and state objects with the same attribute names, so the rest of the toolkit runs on
either. The real one is useful to cross-check numbers or to render images; it needs the compiled
``MatterSim`` module (https://github.com/peteanderson80/Matterport3DSimulator) on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence

from envs.kernel.grid import R2R_CAMERA
from envs.kernel.simulator import Simulator

BACKENDS = ("python", "mattersim", "auto")


class MatterSimSimulator:
    """The real ``MatterSim.Simulator`` behind this package's interface.

    Differences it smooths over: paths may be ``Path`` objects; batches may be numpy arrays (pybind11 wants
    plain ``int``/``float`` lists); rendering starts disabled, as in :class:`envs.kernel.simulator.Simulator`
    (MatterSim's own default is on). Everything else is forwarded unchanged, errors included.
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self.sim = module.Simulator()
        self.sim.setRenderingEnabled(False)

    def __getattr__(self, name: str) -> Any:  # setters and anything else MatterSim offers
        return getattr(self.sim, name)

    def setNavGraphPath(self, path: str | Path) -> None:  # noqa: N802
        self.sim.setNavGraphPath(str(path))

    def setDatasetPath(self, path: str | Path) -> None:  # noqa: N802
        self.sim.setDatasetPath(str(path))

    def newEpisode(self, scanIds: Sequence[str], viewpointIds: Sequence[str],  # noqa: N802, N803
                   headings: Sequence[float], elevations: Sequence[float]) -> None:  # noqa: N803
        self.sim.newEpisode([str(s) for s in scanIds], [str(v) for v in viewpointIds],
                            [float(h) for h in headings], [float(e) for e in elevations])

    def makeAction(self, index: Sequence[int], heading: Sequence[float],  # noqa: N802
                   elevation: Sequence[float]) -> None:
        self.sim.makeAction([int(i) for i in index], [float(h) for h in heading], [float(e) for e in elevation])

    def getState(self) -> list:  # noqa: N802
        return list(self.sim.getState())


def _import_mattersim() -> Any:
    try:
        return importlib.import_module("MatterSim")
    except ImportError as exc:
        raise ImportError(
            "backend='mattersim' needs the compiled MatterSim module, which could not be imported "
            f"({exc}). Build Matterport3DSimulator and put its build folder on PYTHONPATH, or use "
            "backend='python' (the pure-Python simulator, same rules and numbers)") from None


def make_simulator(backend: str = "python") -> Simulator | MatterSimSimulator:
    """An unconfigured simulator: ``"python"`` (this package), ``"mattersim"`` (the real one; ImportError
    with instructions if it is missing) or ``"auto"`` (the real one when importable, else Python)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown simulator backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "python":
        return Simulator()
    if backend == "auto":
        try:
            module = _import_mattersim()
        except ImportError:
            return Simulator()
        return MatterSimSimulator(module)
    return MatterSimSimulator(_import_mattersim())


def make_r2r_simulator(conn_dir: str | Path, batch_size: int = 1, backend: str = "python",
                       initialize: bool = True) -> Simulator | MatterSimSimulator:
    """A simulator configured as R2R tasks use it (the R2R camera: 640x480, VFOV 60 degrees; discretized
    views; no rendering) on the chosen backend, initialized unless ``initialize`` is False."""
    sim = make_simulator(backend)
    sim.setNavGraphPath(conn_dir)
    sim.setCameraResolution(R2R_CAMERA.width, R2R_CAMERA.height)
    sim.setCameraVFOV(R2R_CAMERA.vfov)
    sim.setDiscretizedViewingAngles(True)
    sim.setBatchSize(batch_size)
    if initialize:
        sim.initialize()
    return sim
