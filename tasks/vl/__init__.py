"""What the V&L tasks (:mod:`tasks.vqa`, :mod:`tasks.captioning`) share: where their data and grid features
are (:mod:`tasks.vl.sources`) and the plumbing of a training run (:mod:`tasks.vl.run`).

These packages sit in the top layer (beside ``agents``): they use the CLIP encoders (:mod:`features`) and the
built-in world's V&L data (:mod:`envs.world.vl`) as their default data.
"""
