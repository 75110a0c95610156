"""The simulator kernel: what MatterSim does, in pure Python, and nothing that depends on a task.

- :mod:`~envs.kernel.grid`: the 36-view grid (12 headings x 3 elevations) and the R2R camera, defined once.
- :mod:`~envs.kernel.navgraph`: navigation graphs from the connectivity files, shortest distances and hops.
- :mod:`~envs.kernel.paths`: shortest paths sampled by a rule (episode and augmentation paths).
- :mod:`~envs.kernel.geometry`: MatterSim's float32 edge geometry (field-of-view test, relative headings).
- :mod:`~envs.kernel.state`, :mod:`~envs.kernel.simulator`: MatterSim's ``Simulator`` API and state objects.
- :mod:`~envs.kernel.backends`: this simulator or the compiled MatterSim behind one factory.
- :mod:`~envs.kernel.skybox`: perspective views rendered from skybox cube faces, as MatterSim's OpenGL does.

The kernel imports only the data-directory helpers (:mod:`envs.datadir`); every other layer stands on it.
"""
