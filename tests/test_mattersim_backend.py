"""The MatterSim backend forwards every call to the real module (here a stand-in with its API)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from envs.kernel.backends import MatterSimSimulator, make_r2r_simulator, make_simulator
from envs.kernel.simulator import Simulator
from tests import mattersim_standin


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setitem(sys.modules, "MatterSim", mattersim_standin.module())


@pytest.fixture
def absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "MatterSim", None)  # makes `import MatterSim` raise ImportError


def test_python_backend_and_unknown_name():
    assert isinstance(make_simulator("python"), Simulator)
    with pytest.raises(ValueError, match="unknown simulator backend 'cpp'"):
        make_simulator("cpp")


def test_missing_mattersim_is_a_clear_error(absent):
    with pytest.raises(ImportError, match="needs the compiled MatterSim module.*backend='python'"):
        make_simulator("mattersim")
    assert isinstance(make_simulator("auto"), Simulator)


def test_auto_prefers_mattersim_when_importable(standin):
    sim = make_simulator("auto")
    assert isinstance(sim, MatterSimSimulator)
    assert sim.sim.calls == [("setRenderingEnabled", (False,))]


def test_calls_are_forwarded_and_results_match(standin, shared_data):
    conn = shared_data / "connectivity"
    real = make_r2r_simulator(conn, batch_size=2, backend="mattersim")
    ours = make_r2r_simulator(conn, batch_size=2, backend="python")
    names = [name for name, _ in real.sim.calls]
    assert names == ["setRenderingEnabled", "setNavGraphPath", "setCameraResolution", "setCameraVFOV",
                     "setDiscretizedViewingAngles", "setBatchSize", "initialize"]
    assert real.sim.calls[1] == ("setNavGraphPath", (str(conn),))
    assert real.sim.calls[3] == ("setCameraVFOV", (math.radians(60),))
    episode = (np.array(["2t7WUuJeko7", "17DRP5sb8fy"]), ["cc34e9176bfe47ebb23c58c165203134",
                                                          "5b9b2794954e4694a45fc424a8643081"],
               np.array([0.2, 4.0]), np.zeros(2))
    for sim in (real, ours):
        sim.newEpisode(*episode)
    assert real.sim.calls[-1][1][2] == [0.2, 4.0]
    for step in range(5):
        index = np.array([min(1, len(s.navigableLocations) - 1) for s in ours.getState()])
        for sim in (real, ours):
            sim.makeAction(index, np.array([1, -1]), [0.0, float(step % 2)])
        assert real.sim.calls[-1][0] == "makeAction" and real.sim.calls[-1][1][0] == index.tolist()
        for a, b in zip(real.getState(), ours.getState()):
            assert (a.location.viewpointId, a.heading, a.elevation, a.viewIndex, a.step) == \
                   (b.location.viewpointId, b.heading, b.elevation, b.viewIndex, b.step)
            assert [n.viewpointId for n in a.navigableLocations] == [n.viewpointId for n in b.navigableLocations]
    real.close()
    assert real.sim.calls[-1] == ("close", ())
