"""Where the agent acts: the simulator kernel, the built-in world and the Gymnasium envs.

Layers, lowest first: ``datadir``, ``atomic``, ``cli`` (data-directory layout and errors, atomic writes,
command lines; used by every package); ``kernel`` (MatterSim's rules, graphs, the view grid, the skybox
renderer); ``world`` (the built-in synthetic world); ``gym`` (R2R/RxR as Gymnasium envs).

Importing this package registers ``VLN-R2R-v0`` and ``VLN-RxR-v0`` (by string entry point, so it stays cheap)::

    import gymnasium, envs
    env = gymnasium.make("VLN-R2R-v0", data_dir=None, split="val_unseen", features="none")
"""

import gymnasium

MAX_EPISODE_STEPS = 35  # EnvDrop's maximum number of actions per episode

for _task, _id in (("r2r", "VLN-R2R-v0"), ("rxr", "VLN-RxR-v0")):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="envs.gym.env:VLNEnv", max_episode_steps=MAX_EPISODE_STEPS,
                           kwargs={"task": _task})
