"""The Gymnasium layer: R2R and RxR as environments, in EnvDrop's panoramic action space.

- :mod:`~envs.gym.candidates`: the 36 views' angle features, each viewpoint's panoramic candidates, turns.
- :mod:`~envs.gym.tables`: per-viewpoint tables of a split's houses (features, candidates, distances).
- :mod:`~envs.gym.batch`: the episode rules on a batch of episodes (actions, rewards, trajectories, metrics).
- :mod:`~envs.gym.data`: everything an env loads from a data directory, once per process.
- :mod:`~envs.gym.spaces`: the observation spaces.
- :mod:`~envs.gym.vector_env`, :mod:`~envs.gym.env`: the batched vector env and the single ``gymnasium.Env``.

It stands on the kernel, ``tasks`` (episodes, vocabularies), ``features`` (feature files), ``eval.metrics``
and the built-in world (the default data directory).
"""
