"""The built-in synthetic world: small houses written in exactly the real on-disk formats.

``python -m envs.world --out DIR`` (or :func:`build_world`) writes a data directory::

    DIR/connectivity/{scan}_connectivity.json, scans.txt
    DIR/R2R/R2R_{train,val_seen,val_unseen,test}.json
    DIR/RxR/rxr_{train,val_seen,val_unseen}_guide.jsonl.gz, rxr_test_standard_public_guide.jsonl.gz
    DIR/features/world.h5                      # [36, D] view features per included viewpoint
    DIR/skyboxes/{scan}/matterport_skybox_images/{viewpoint}_skybox{0..5}_sami.jpg
    DIR/world.json                             # manifest: seed, config, houses, counts, vocabulary

so every loader reads it through the same code paths as the Matterport data. Modules: ``layout``
(houses, rooms, objects, viewpoints, graph), ``raycast`` (ray casting, skybox faces), ``concepts`` (what each
view sees, as features), ``language`` and ``lexicon`` (instructions in en/hi/te), ``writer`` (the build),
``builtin`` (the default data directory: the world built once into the cache).
"""

from envs.world.builtin import default_world_dir, resolve_data_dir
from envs.world.writer import WorldConfig, WorldSummary, build_world

__all__ = ["WorldConfig", "WorldSummary", "build_world", "default_world_dir", "resolve_data_dir"]
