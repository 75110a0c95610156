"""The world: navigation graphs, the MatterSim-exact simulator, panoramic candidates and Gymnasium envs.

Importing this package registers ``VLN-R2R-v0`` and ``VLN-RxR-v0`` (by string entry point, so it stays cheap)::

    import gymnasium, envs
    env = gymnasium.make("VLN-R2R-v0", data_dir=None, split="val_unseen", features="none")
"""

import gymnasium

MAX_EPISODE_STEPS = 35  # EnvDrop's maximum number of actions per episode

for _task, _id in (("r2r", "VLN-R2R-v0"), ("rxr", "VLN-RxR-v0")):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="envs.vln_env:VLNEnv", max_episode_steps=MAX_EPISODE_STEPS,
                           kwargs={"task": _task})
